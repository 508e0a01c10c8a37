"""Time to quality: training wall time of labkit's default recipe until samples are at the strict floor.

For each target, complete training runs of increasing length (``train(steps=S)`` with every other
setting the target's recipe, ``labkit.train.recipe``, a fresh model each time, so each run has its
full learning-rate decay) are timed. After each run the model's samples (n = 1000 per seed, 3
seeds, the same noise and reference batches for every run: benchmarks/common.py) are judged by
``labkit.metrics.floor_report`` per seed: the seed's MMD^2 and detail_miss, each at or below its
noise floor's threshold (mean + 3 sd, labkit's shipped floors), in every seed. Samplers: the fast
ones at <= 16 NFE (DPM-Solver++(2M) with 16 steps and Heun with 8 steps = 15 NFE, each on both sigma
grids; DPM-Solver++(2M) and its SDE variant on Karras's grid with rho 20), and DDPM over every timestep
below sigma_max = 80 (991 steps on the cosine schedule), run after every run too. The time to quality is
the training time of the shortest run at which DDPM and at least one fast sampler are at the floor; the
first run at which each is, is recorded too.

Samples are class-conditional by default, with labels drawn at the target's own label frequencies
(c ~ p(c), then x ~ p(x | c), a sample of the whole target: ``--labels drawn``); ``--labels null``
asks the null token (unconditional samples of the same model). Bars (COURSE.md section 5): ring8
<= 10 s, every 2-D target <= 30 s.

    python benchmarks/time_to_quality.py [--targets ring8,moons] [--ladder 1000,2000,4000] [--threads 1]
                                         [--recipe t_lognormal=0.8] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import parse_spec, quality_check, sample_labels, write_result

from labkit import samplers, schedules, targets, train

BAR_RING8_S = 10.0
BAR_TARGET_S = 30.0
RING8_LADDER = "1000,1250,1500,2000,3000,4000,6000"
LADDER = "1000,2000,4000,6000,8000,12000"
FAST = {  # name -> (sampler, steps, grid, grid options): the few-NFE samplers a walk may ask
    "dpmpp_2m-16-karras": ("dpmpp_2m", 16, "karras", {}),
    # Karras's grid with its steps moved toward small sigma (rho 20) and stopped at sigma_min 0.02,
    # below which nothing a 2-D target's detail statistic sees changes (benchmarks/NOTES.md section 0)
    "dpmpp_2m-16-karras-rho20": ("dpmpp_2m", 16, "karras", {"rho": 20.0, "sigma_min": 0.02}),
    "dpmpp_2m-16-trailing": ("dpmpp_2m", 16, "trailing", {}),
    # the same grid with DPM-Solver++(2M)'s SDE variant: its fresh noise corrects a learned model's errors where
    # the ODE keeps them (the curve targets' stray points, NOTES.md section 0)
    "dpmpp_2m_sde-16-karras-rho20": ("dpmpp_2m_sde", 16, "karras", {"rho": 20.0, "sigma_min": 0.02}),
    "heun-8-karras": ("heun", 8, "karras", {}),
    "heun-8-trailing": ("heun", 8, "trailing", {}),
    "dpmpp_2m-32-karras": ("dpmpp_2m", 32, "karras", {}),
    "heun-16-karras": ("heun", 16, "karras", {}),
}
AT_16_NFE = ("dpmpp_2m-16-karras", "dpmpp_2m-16-karras-rho20", "dpmpp_2m-16-trailing", "heun-8-karras",
             "heun-8-trailing", "dpmpp_2m_sde-16-karras-rho20")  # the bar's


def train_timed(target, schedule, steps: int, seed: int = 0, **recipe):
    """A fresh model trained for ``steps`` with the target's recipe (``recipe`` overrides its settings);
    returns (model, wall seconds, CPU seconds)."""
    full = {**train.recipe(target), **recipe, "steps": steps}
    model = train.new_model(target, schedule, seed=seed, **{k: full[k] for k in train.MODEL_KEYS if k in full})
    start, cpu = time.perf_counter(), time.process_time()
    train.train(model, target, schedule, seed=seed, progress=False,
                **{k: v for k, v in full.items() if k not in train.MODEL_KEYS})
    return model, time.perf_counter() - start, time.process_time() - cpu


def evaluate(model, target, schedule, *, n: int, seeds: int, labels: str = "drawn", fast=AT_16_NFE) -> dict:
    """The fast samplers' and (if one of them is at the floor) DDPM's quality of ``model``'s samples."""
    eps_fn = model.eps_fn(sample_labels(target, seeds * n) if labels == "drawn" else None)
    out = {"fast": {}, "ddpm": None}
    for name in fast:
        sampler, steps, grid, options = FAST[name]
        out["fast"][name] = quality_check(
            lambda z, sampler=sampler, steps=steps, grid=grid, options=options: samplers.run(
                sampler, eps_fn, schedule, z, steps, grid=grid, keep_trajectory=False,
                generator=torch.Generator().manual_seed(1), **options).x,  # (a stochastic sampler's draws)
            target, n=n, seeds=seeds)
        out["fast"][name]["nfe"] = 2 * steps - 1 if sampler == "heun" else steps
    passing = [k for k, q in out["fast"].items() if q["at_floor"]]
    # the best: fewest NFE among those at the floor, then the lowest detail_miss
    out["best"] = min(passing, key=lambda k: (out["fast"][k]["nfe"], out["fast"][k]["detail_miss_mean"]),
                      default=None)
    g = torch.Generator().manual_seed(1)
    out["ddpm"] = quality_check(lambda z: samplers.ddpm(eps_fn, schedule, z, generator=g,
                                                        keep_trajectory=False).x, target, n=n, seeds=seeds)
    out["at_floor"] = bool(out["best"] is not None and out["ddpm"]["at_floor"])
    return out


def time_to_quality(name: str, ladder, *, n: int = 1000, seeds: int = 3, repeats: int = 1, seed: int = 0,
                    recipe: dict | None = None, labels: str = "drawn", fast=AT_16_NFE, log=print) -> dict:
    """Walk up ``ladder`` (training steps) until DDPM and a fast sampler reach the floor; time the passing run.

    ``seed`` seeds the model's initialisation and its training; ``recipe`` overrides the target's recipe.
    """
    target, schedule = targets.get(name), schedules.cosine()
    recipe = recipe or {}
    runs = []
    passed = None
    for steps in ladder:
        model, seconds, cpu = train_timed(target, schedule, steps, seed, **recipe)
        quality = evaluate(model, target, schedule, n=n, seeds=seeds, labels=labels, fast=fast)
        runs.append({"steps": steps, "train_s": seconds, "train_cpu_s": cpu, **quality})
        cells = "  ".join(f"{k} {q['detail_miss_mean']:.4f}" for k, q in quality["fast"].items())
        ddpm = quality["ddpm"]
        threshold = next(iter(quality["fast"].values()))["detail_miss_threshold"]
        log(f"  {name:<12} steps {steps:>5}: train {seconds:6.2f} s (CPU {cpu:6.2f} s)  detail_miss {cells}  "
            f"ddpm {ddpm['detail_miss_mean']:.4f}{' ok' if ddpm['at_floor'] else ''}  (threshold {threshold:.4f})  "
            f"{'AT FLOOR with ' + quality['best'] + ' and DDPM' if quality['at_floor'] else 'not yet'}", flush=True)
        if quality["at_floor"]:
            passed = steps
            break
    first = {"fast": next((r["steps"] for r in runs if r["best"] is not None), None),
             "ddpm": next((r["steps"] for r in runs if r["ddpm"]["at_floor"]), None)}
    result = {"target": name, "seed": seed, "labels": labels, "recipe": {**train.recipe(target), **recipe},
              "ladder": list(ladder), "runs": runs, "steps_to_quality": passed, "best": runs[-1]["best"],
              "first_at_floor_steps": first,
              "seconds_to_quality": None, "timing_repeats": []}
    if passed is not None:
        times = [runs[-1]["train_s"]] + [train_timed(target, schedule, passed, seed, **recipe)[1]
                                         for _ in range(repeats - 1)]
        result["timing_repeats"] = times
        result["seconds_to_quality"] = statistics.median(times)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(n for n in targets.names() if targets.get(n).dim == 2))
    parser.add_argument("--ladder", default=LADDER, help="training steps to try, increasing")
    parser.add_argument("--ring8-ladder", default=RING8_LADDER, help="the ladder for ring8")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labels", choices=("drawn", "null"), default="drawn",
                        help="drawn: class-conditional, labels at the target's frequencies; null: the null token")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats of ring8's passing run (median)")
    parser.add_argument("--recipe", default="", help="key=value,... overriding every target's recipe")
    parser.add_argument("--seed", type=int, default=0, help="training seed (initial weights and batches)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own setting)")
    parser.add_argument("--result", default="time_to_quality", help="name of the JSON file in benchmarks/results")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    recipe = parse_spec(args.recipe) if args.recipe else {}
    results = []
    for name in args.targets.split(","):
        ladder = args.ring8_ladder if name == "ring8" else args.ladder
        repeats = args.repeats if name == "ring8" else 1
        results.append(time_to_quality(name, [int(s) for s in ladder.split(",")], n=args.n, seeds=args.seeds,
                                       repeats=repeats, labels=args.labels, recipe=recipe, seed=args.seed))
        write(args, results, complete=False)  # after every target, so a stopped run keeps what it measured
    write(args, results, complete=True)


def write(args, results, complete: bool):
    bars = []
    for r in results:
        limit = BAR_RING8_S if r["target"] == "ring8" else BAR_TARGET_S
        value = r["seconds_to_quality"]
        bars.append({"name": f"{r['target']} time to quality", "limit_s": limit, "value_s": value,
                     "pass": value is not None and value <= limit})
    ring8 = next((b for b in bars if b["name"].startswith("ring8")), None)
    write_result(args.result, {"n": args.n, "seeds": args.seeds, "labels": args.labels,
                                     "torch_threads": torch.get_num_threads(), "defaults": train.DEFAULTS,
                                     "targets": results, "bar": ring8, "bars": bars, "complete": complete})


if __name__ == "__main__":
    main()
