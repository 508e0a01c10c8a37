"""Time to quality: wall time of labkit's default training recipe until samples reach the noise floor.

For each target, complete training runs of increasing length (``train(steps=S)`` with every
other setting at labkit.train's defaults, a fresh model each time, so each run has its full
cosine learning-rate decay) are timed; after each run Heun-16 and DDPM-1000 samples (n = 1000
per seed, 3 seeds) are compared with the MMD^2 noise floor. The time to quality is the training
time of the shortest run whose samples from both samplers are within 2 floor spreads of the
floor (mean over seeds <= floor mean + 2 floor sd). DDPM is skipped for a run where Heun already
misses. Bar (COURSE.md section 5): ring8 <= 15 s.

    python benchmarks/time_to_quality.py [--targets ring8,moons] [--ladder 1000,2000,4000,8000]

ring8, the target with the bar, walks a finer ladder (RING8_LADDER) than the others.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import quality_check, write_result

from labkit import samplers, schedules, targets, train

BAR_RING8_S = 15.0
RING8_LADDER = "500,750,1000,1250,1500,2000,3000,4000,8000"


def train_timed(target, schedule, steps: int, seed: int = 0, **recipe):
    """A fresh model trained for ``steps`` with the default recipe (``recipe`` overrides train()'s
    other arguments); returns (model, seconds)."""
    model = train.new_model(target, schedule, seed=seed)
    start = time.perf_counter()
    train.train(model, target, schedule, steps=steps, seed=seed, progress=False, **recipe)
    return model, time.perf_counter() - start


def evaluate(model, target, schedule, *, n: int, seeds: int, heun_steps: int = 16) -> dict:
    """Heun-``heun_steps`` and (if Heun is at the floor) DDPM-T quality of ``model``'s unconditional samples."""
    eps_fn = model.eps_fn()
    heun = quality_check(lambda z: samplers.heun(eps_fn, schedule, z, heun_steps).x, target, n=n, seeds=seeds)
    out = {f"heun{heun_steps}": heun, "ddpm": None}
    if heun["at_floor"]:
        g = torch.Generator().manual_seed(1)
        out["ddpm"] = quality_check(lambda z: samplers.ddpm(eps_fn, schedule, z, generator=g).x, target,
                                    n=n, seeds=seeds)
    out["at_floor"] = bool(heun["at_floor"] and out["ddpm"] is not None and out["ddpm"]["at_floor"])
    return out


def time_to_quality(name: str, ladder, *, n: int = 1000, seeds: int = 3, repeats: int = 1, seed: int = 0,
                    recipe: dict | None = None, log=print) -> dict:
    """Walk up ``ladder`` (training steps) until both samplers reach the floor; time the passing run.

    ``seed`` seeds the model's initialisation and its training; ``recipe`` overrides train()'s defaults.
    """
    target, schedule = targets.get(name), schedules.cosine()
    recipe = recipe or {}
    runs = []
    passed = None
    for steps in ladder:
        model, seconds = train_timed(target, schedule, steps, seed, **recipe)
        quality = evaluate(model, target, schedule, n=n, seeds=seeds)
        runs.append({"steps": steps, "train_s": seconds, **quality})
        ddpm = quality["ddpm"]
        log(f"  {name:<12} steps {steps:>5}: train {seconds:6.2f} s  heun16 {quality['heun16']['mmd2_mean']:.5f}"
            f"  ddpm {ddpm['mmd2_mean'] if ddpm else float('nan'):.5f}  threshold"
            f" {quality['heun16']['threshold']:.5f}  {'AT FLOOR' if quality['at_floor'] else 'not yet'}")
        if quality["at_floor"]:
            passed = steps
            break
    result = {"target": name, "seed": seed, "recipe": {**train.DEFAULTS, **recipe}, "ladder": list(ladder),
              "runs": runs, "steps_to_quality": passed,
              "seconds_to_quality": None, "timing_repeats": []}
    if passed is not None:
        times = [runs[-1]["train_s"]] + [train_timed(target, schedule, passed, seed, **recipe)[1]
                                         for _ in range(repeats - 1)]
        result["timing_repeats"] = times
        result["seconds_to_quality"] = statistics.median(times)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(targets.names()))
    parser.add_argument("--ladder", default="1000,2000,4000,8000", help="training steps to try, increasing")
    parser.add_argument("--ring8-ladder", default=RING8_LADDER, help="the ladder for ring8")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats of ring8's passing run (median)")
    args = parser.parse_args(argv)
    results = []
    for name in args.targets.split(","):
        ladder = args.ring8_ladder if name == "ring8" else args.ladder
        repeats = args.repeats if name == "ring8" else 1
        results.append(time_to_quality(name, [int(s) for s in ladder.split(",")], n=args.n, seeds=args.seeds,
                                       repeats=repeats))
        write(args, results, complete=False)  # after every target, so a stopped run keeps what it measured
    write(args, results, complete=True)


def write(args, results, complete: bool):
    ring8 = next((r for r in results if r["target"] == "ring8"), None)
    bar = None
    if ring8 is not None:
        value = ring8["seconds_to_quality"]
        bar = {"name": "ring8 time to quality", "limit_s": BAR_RING8_S, "value_s": value,
               "pass": value is not None and value <= BAR_RING8_S}
    write_result("time_to_quality", {"n": args.n, "seeds": args.seeds, "defaults": train.DEFAULTS,
                                     "targets": results, "bar": bar, "complete": complete})


if __name__ == "__main__":
    main()
