"""labkit vs smalldiffusion: training wall time to reach the MMD^2 noise floor on ring8, side by side.

labkit: the time-to-quality walk of ``time_to_quality.py`` on ring8 (default recipe, complete
runs of increasing length, Heun-16 and DDPM-1000 both at the floor). smalldiffusion (PyPI): its
own toy recipe, model, ``training_loop`` and sampler (``peer_smalldiffusion.py``), run in its own
virtual environment, which this script creates on first use (smalldiffusion imports torchvision,
which imports only beside the torch release it was built for, so the peer gets torch 2.14.1 and
torchvision 0.29.1 instead of touching labkit's torch). Both are judged by the same check: the
same noise, the same fresh ring8 batches and the same floor (benchmarks/common.py, seed 0).
Bar (COURSE.md section 5): labkit >= 5x faster. Also reported: smalldiffusion's MMD^2 after the
same training time as labkit needed.

    python benchmarks/vs_smalldiffusion.py [--budget 120]
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

from common import HERE, write_result
from time_to_quality import RING8_LADDER, time_to_quality, train_timed

from labkit import schedules, targets

PEER = Path(os.environ.get("LABKIT_BENCH_PEER", HERE / ".venv-peer"))
PEER_PACKAGES = ["smalldiffusion==0.5.0", "torch==2.14.1", "torchvision==0.29.1"]
BAR_SPEEDUP = 5.0


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default=RING8_LADDER)
    parser.add_argument("--budget", type=float, default=120.0, help="smalldiffusion training seconds at most")
    parser.add_argument("--every", type=int, default=100, help="smalldiffusion steps between checks")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)

    python = peer_python()
    print("labkit (default recipe) on ring8:")
    ladder = [int(s) for s in args.ladder.split(",")]
    ours = time_to_quality("ring8", ladder, n=args.n, seeds=args.seeds, repeats=3)
    both_s = ours["seconds_to_quality"]  # Heun-16 and DDPM-1000 at the floor; median of 3 timings
    heun_run = next((r for r in ours["runs"] if r["heun16"]["at_floor"]), None)
    heun_s = None
    if heun_run is not None:  # the like-for-like criterion: labkit's fast sampler alone, timed 3 times
        times = [heun_run["train_s"]] + [train_timed(targets.get("ring8"), schedules.cosine(), heun_run["steps"])[1]
                                         for _ in range(2)]
        heun_s = statistics.median(times)
        print(f"  labkit Heun-16 alone at the floor after {heun_run['steps']} steps: {heun_s:.2f} s (median of "
              f"{', '.join(f'{t:.2f}' for t in times)})")
    print("smalldiffusion (its toy recipe) on ring8:")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        cmd = [str(python), str(HERE / "peer_smalldiffusion.py"), "--out", str(out), "--budget", str(args.budget),
               "--every", str(args.every), "--n", str(args.n), "--seeds", str(args.seeds), "--also-at",
               *[str(t) for t in (heun_s, both_s) if t is not None]]
        subprocess.run(cmd, check=True, cwd=HERE, env={**os.environ, "TQDM_DISABLE": "1"})
        peer = json.loads(out.read_text())

    checks = peer["checkpoints"]
    first = next((c for c in checks if c["at_floor"]), None)
    peer_s = first["train_s"] if first else None
    reached = peer_s if peer_s is not None else checks[-1]["train_s"]  # else a lower bound: the budget spent

    def at_time(seconds):  # smalldiffusion's last check at or before ``seconds`` of training
        c = max((c for c in checks if seconds is not None and c["train_s"] <= seconds * 1.02),
                key=lambda c: c["train_s"], default=None)
        return None if c is None else {"train_s": c["train_s"], "steps": c["steps"], "mmd2_mean": c["mmd2_mean"]}

    comparisons = []
    for label, ours_s, steps in (("labkit Heun-16 (31 NFE) vs smalldiffusion's 20-step sampler", heun_s,
                                  heun_run["steps"] if heun_run else None),
                                 ("labkit Heun-16 and DDPM-1000 both vs smalldiffusion's 20-step sampler", both_s,
                                  ours["steps_to_quality"])):
        speedup = None if ours_s is None else reached / ours_s
        comparisons.append({"name": label, "labkit_s": ours_s, "labkit_steps": steps, "speedup": speedup,
                            "speedup_is_lower_bound": peer_s is None,
                            "pass": speedup is not None and speedup >= BAR_SPEEDUP,
                            "smalldiffusion_at_labkit_time": at_time(ours_s)})
    summary = {"smalldiffusion_s": peer_s, "smalldiffusion_steps": first["steps"] if first else None,
               "smalldiffusion_reached": first is not None, "smalldiffusion_budget_s": args.budget,
               "threshold": ours["runs"][-1]["heun16"]["threshold"], "comparisons": comparisons}
    bars = [{"name": f"labkit >= 5x faster than smalldiffusion to the floor, ring8 ({c['name']})",
             "limit": BAR_SPEEDUP, "value": c["speedup"], "lower_bound": c["speedup_is_lower_bound"], "pass": c["pass"]}
            for c in comparisons]
    print(json.dumps(summary, indent=1))
    write_result("vs_smalldiffusion", {"labkit": ours, "smalldiffusion": peer, "summary": summary, "bars": bars})


if __name__ == "__main__":
    main()
