"""labkit vs smalldiffusion: training wall time to reach the strict floor on ring8, side by side.

smalldiffusion (PyPI): its own toy recipe, model, ``training_loop`` and sampler
(``peer_smalldiffusion.py``), in its own virtual environment, which this script creates on first
use (smalldiffusion imports torchvision, which imports only beside the torch release it was built
for, so the peer gets torch 2.14.1 and torchvision 0.29.1 instead of touching labkit's torch). Its
model is unconditional, and it is checked every ``--every`` steps of one run.

labkit, like for like: an unconditional model (``train(..., p_uncond=1.0)``: every label is the
null token; every other setting is the default recipe), walked up a ladder of complete runs of
100, 200, ... steps (each a fresh model with its full learning-rate decay), the same step
granularity as smalldiffusion's checks, sampled through the null token. Two criteria: a fast ODE
sampler alone at the floor (Heun-16 or DPM-Solver++(2M)-32 on the Karras grid, 31-32 NFE: on
ring8's exact unconditional score no sampler at <= 24 NFE is at the strict floor in every seed,
benchmarks/NOTES.md; smalldiffusion's own is its 20-step sampler) and that sampler and DDPM (991
steps) both. labkit's default, class-conditional recipe is walked too and reported beside it, with
labels drawn at ring8's frequencies and the samplers at <= 16 NFE (time_to_quality.py's criterion).

Both sides run on one torch thread and are judged by the same check: ``labkit.metrics.floor_report``
in each of 3 seeds of n = 1000 (the seed MMD^2 and detail_miss, each at or below its noise floor's
threshold), with the same noise and fresh ring8 batches (benchmarks/common.py). Both are repeated
for ``--train-seeds`` seeds (model initialisation, data pool and order); a side's time is the median
over seeds, labkit's per seed the median of 3 timings of the passing run. Bar (COURSE.md section 5):
labkit >= 5x faster. Also reported: smalldiffusion's MMD^2 after the same training time as labkit
needed. Timings are wall seconds: run it on an otherwise idle machine (the load is recorded).

    python benchmarks/vs_smalldiffusion.py [--train-seeds 3] [--budget 120]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import HERE, write_result
from time_to_quality import AT_16_NFE, time_to_quality, train_timed

from labkit import schedules, targets, train

PEER = Path(os.environ.get("LABKIT_BENCH_PEER", HERE / ".venv-peer"))
PEER_PACKAGES = ["smalldiffusion==0.5.0", "torch==2.14.1", "torchvision==0.29.1"]
BAR_SPEEDUP = 5.0
UNCONDITIONAL = {"p_uncond": 1.0}
UNCONDITIONAL_FAST = ("heun-16-karras", "dpmpp_2m-32-karras")  # at the exact score's strict floor (31-32 NFE)
LADDER = ",".join(str(k) for k in range(100, 4100, 100))  # smalldiffusion is checked every 100 steps too


def peer_python() -> Path:
    """The peer environment's interpreter, creating the environment if it is missing or broken."""
    python = PEER / "bin" / "python"
    check = [str(python), "-c", "import smalldiffusion, torchvision"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating the peer environment {PEER} ({' '.join(PEER_PACKAGES)}); this takes a few minutes")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    subprocess.run(check, check=True)
    return python


def labkit_side(seed: int, recipe: dict, ladder, n: int, seeds: int, labels: str, fast) -> dict:
    """labkit's walk for one training seed, with the first run where a fast sampler alone is at the
    floor timed 3 times too."""
    ours = time_to_quality("ring8", ladder, n=n, seeds=seeds, repeats=3, seed=seed, recipe=recipe, labels=labels,
                           fast=fast)
    heun_run = next((r for r in ours["runs"] if r["best"] is not None), None)
    heun_times = []
    if heun_run is not None and heun_run["steps"] == ours["steps_to_quality"]:
        heun_times = ours["timing_repeats"]  # the same run: reuse its 3 timings
    elif heun_run is not None:
        heun_times = [heun_run["train_s"]] + [train_timed(targets.get("ring8"), schedules.cosine(),
                                                          heun_run["steps"], seed, **recipe)[1] for _ in range(2)]
    return {"seed": seed, "walk": ours, "fast_sampler": heun_run["best"] if heun_run else None,
            "heun_steps": heun_run["steps"] if heun_run else None,
            "heun_s": statistics.median(heun_times) if heun_times else None, "heun_times": heun_times,
            "both_steps": ours["steps_to_quality"], "both_s": ours["seconds_to_quality"],
            **first_any(ours)}


def first_any(walk: dict) -> dict:
    """The first run of a walk at which any of labkit's samplers (a fast one or DDPM) is at the floor."""
    run = next((r for r in walk["runs"] if r["best"] is not None or r["ddpm"]["at_floor"]), None)
    return {"any_steps": run["steps"] if run else None, "any_s": run["train_s"] if run else None,
            "any_sampler": None if run is None else run["best"] or "ddpm"}


def peer_side(python: Path, seed: int, args, also_at) -> dict:
    """smalldiffusion's run for one seed: its checkpoints and the first one at the floor."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        cmd = [str(python), str(HERE / "peer_smalldiffusion.py"), "--out", str(out), "--budget", str(args.budget),
               "--every", str(args.every), "--n", str(args.n), "--seeds", str(args.seeds), "--seed", str(seed),
               "--also-at", *[str(t) for t in also_at if t is not None]]
        subprocess.run(cmd, check=True, cwd=HERE, env={**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})
        peer = json.loads(out.read_text())
    first = next((c for c in peer["checkpoints"] if c["at_floor"]), None)
    peer["first_at_floor"] = first
    # Not reached within the budget: the time spent is a lower bound.
    peer["reached_s"] = first["train_s"] if first else peer["checkpoints"][-1]["train_s"]
    return peer


def at_time(checks, seconds):
    """smalldiffusion's check made at labkit's time ``seconds``: the check nearest to it, if within 10%
    (a check asked for at a time lands at the end of the step running then)."""
    if seconds is None:
        return None
    c = min(checks, key=lambda c: abs(c["train_s"] - seconds))
    if abs(c["train_s"] - seconds) > 0.1 * seconds:
        return None
    return {"train_s": c["train_s"], "steps": c["steps"], "mmd2_mean": c["mmd2_mean"]}


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default=LADDER)
    parser.add_argument("--budget", type=float, default=120.0, help="smalldiffusion training seconds at most")
    parser.add_argument("--every", type=int, default=100, help="smalldiffusion steps between checks")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3, help="sample seeds per quality check")
    parser.add_argument("--train-seeds", type=int, default=3, help="training seeds per side")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ladder = [int(s) for s in args.ladder.split(",")]

    python = peer_python()
    uncond, default, peers = [], [], []
    for seed in range(args.train_seeds):
        print(f"seed {seed}: labkit, unconditional (p_uncond = 1), null-token samples:")
        uncond.append(labkit_side(seed, UNCONDITIONAL, ladder, args.n, args.seeds, "null", UNCONDITIONAL_FAST))
        print(f"seed {seed}: labkit, default recipe (class-conditional, p_uncond = {train.DEFAULTS['p_uncond']}), "
              "drawn labels:")
        default.append(labkit_side(seed, {}, ladder, args.n, args.seeds, "drawn", AT_16_NFE))
        print(f"seed {seed}: smalldiffusion (its toy recipe):")
        labkit_times = [side[key] for side in (uncond[-1], default[-1]) for key in ("heun_s", "both_s", "any_s")]
        peers.append(peer_side(python, seed, args, labkit_times))

    peer_s = median_or_none([p["reached_s"] for p in peers])
    lower_bound = any(p["first_at_floor"] is None for p in peers)
    comparisons = []
    for recipe_name, sides, fast in (
            ("unconditional (p_uncond = 1), like smalldiffusion's model", uncond, "Heun-16 or DPM++(2M)-32, Karras"),
            (f"default recipe (class-conditional, p_uncond = {train.DEFAULTS['p_uncond']}, drawn labels)", default,
             "a sampler at <= 16 NFE")):
        for criterion, key in ((f"{fast} or DDPM-991 at the strict floor (each side's first sampler there)", "any"),
                               (f"{fast} at the strict floor", "heun"),
                               (f"{fast} and DDPM-991 at the strict floor", "both")):
            ours_s = median_or_none([side[f"{key}_s"] for side in sides])
            speedup = None if ours_s is None or peer_s is None else peer_s / ours_s
            comparisons.append({
                "recipe": recipe_name, "criterion": criterion, "labkit_s": ours_s,
                "labkit_steps": [side[f"{key}_steps"] for side in sides],
                "labkit_s_per_seed": [side[f"{key}_s"] for side in sides],
                "speedup": speedup, "speedup_is_lower_bound": lower_bound,
                "pass": speedup is not None and speedup >= BAR_SPEEDUP,
                "smalldiffusion_at_labkit_time": [at_time(p["checkpoints"], side[f"{key}_s"])
                                                  for p, side in zip(peers, sides)]})
    summary = {"smalldiffusion_s": peer_s, "smalldiffusion_s_per_seed": [p["reached_s"] for p in peers],
               "smalldiffusion_steps_per_seed": [p["first_at_floor"]["steps"] if p["first_at_floor"] else None
                                                 for p in peers],
               "smalldiffusion_reached": not lower_bound, "smalldiffusion_budget_s": args.budget,
               "threshold": next(iter(uncond[0]["walk"]["runs"][-1]["fast"].values()))["mmd2_threshold"],
               "detail_miss_threshold": next(iter(uncond[0]["walk"]["runs"][-1]["fast"].values()))[
                   "detail_miss_threshold"], "train_seeds": args.train_seeds,
               "comparisons": comparisons}
    # The bar is judged like for like: unconditional models, each side's first sampler at the floor
    # (labkit: Heun-16 / DPM++(2M)-32 or DDPM-991, one timing; smalldiffusion: its 20-step sampler).
    like = comparisons[0]
    bars = [{"name": "labkit >= 5x faster than smalldiffusion to the strict floor, ring8 (unconditional models, "
                     "labkit Heun-16 / DPM++(2M)-32 / DDPM-991 vs smalldiffusion's 20-step sampler, median of "
                     f"{args.train_seeds} training seeds each)",
             "limit": BAR_SPEEDUP, "value": like["speedup"], "lower_bound": lower_bound, "pass": like["pass"]}]
    print(json.dumps(summary, indent=1))
    write_result("vs_smalldiffusion", {"labkit_unconditional": uncond, "labkit_default": default,
                                       "smalldiffusion": peers, "summary": summary, "bars": bars})


if __name__ == "__main__":
    main()
