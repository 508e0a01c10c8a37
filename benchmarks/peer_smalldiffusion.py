"""smalldiffusion's own toy recipe trained on ring8; runs in the peer virtual environment.

Called by ``vs_smalldiffusion.py`` with the peer interpreter (smalldiffusion, its torch and
torchvision). The recipe is the one smalldiffusion's README gives for its 2-D toy example:
``TimeInputMLP(hidden_dims=(16, 128, 128, 128, 128, 16))``, ``ScheduleLogLinear(N=200,
sigma_min=0.005, sigma_max=10)``, a DataLoader with batch size 2048, its ``training_loop``
(AdamW, lr 1e-3) and its ``samples`` sampler with 20 steps and gam = 2 (its accelerated DDIM).
The only change is the data: a pool of ring8 points drawn by labkit (the same pool size and seed
labkit's training draws).

Training is timed on its own: at each checkpoint the clock stops, samples are drawn and MMD^2
against fresh ring8 batches is measured exactly as for labkit (benchmarks/common.py), then the
clock restarts. Writes a JSON list of checkpoints to the path given.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import quality_check
from smalldiffusion import ScheduleLogLinear, TimeInputMLP, samples, training_loop
from torch.utils.data import DataLoader

from labkit import targets
from labkit.train import POOL_SIZE


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds before giving up")
    parser.add_argument("--every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--also-at", type=float, nargs="*", default=[], help="also check at these training times (s)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seeds the model's initialisation and the data order")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # as labkit's side of the comparison
    torch.manual_seed(args.seed)
    target = targets.get("ring8")
    pool = target.sample(POOL_SIZE, torch.Generator().manual_seed(args.seed))[0]
    loader = DataLoader(pool, batch_size=2048, shuffle=True)
    model = TimeInputMLP(hidden_dims=(16, 128, 128, 128, 128, 16))
    schedule = ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10)
    sigmas = schedule.sample_sigmas(args.sample_steps)

    def draw(noise):  # smalldiffusion's sampler from the given noise (deterministic with gam=2, mu=0)
        *_, x0 = samples(model, sigmas, gam=2, mu=0, xt=noise * sigmas[0])
        return x0

    checkpoints = []
    trainer = training_loop(loader, model, schedule, epochs=10**9)
    marks = sorted(args.also_at)  # training times still to check at
    train_s, step = 0.0, 0
    start = time.perf_counter()
    for _ in trainer:
        step += 1
        if step % args.every == 0 or (marks and time.perf_counter() - start + train_s >= marks[0]):
            train_s += time.perf_counter() - start
            marks = [m for m in marks if m > train_s]
            q = quality_check(draw, target, n=args.n, seeds=args.seeds)
            checkpoints.append({"steps": step, "train_s": train_s, "nfe": args.sample_steps, **q})
            print(f"  smalldiffusion step {step:>6}: train {train_s:7.2f} s  MMD^2 {q['mmd2_mean']:.5f}  "
                  f"threshold {q['threshold']:.5f}  {'AT FLOOR' if q['at_floor'] else ''}", flush=True)
            if q["at_floor"] and not marks or train_s >= args.budget:
                break
            start = time.perf_counter()
    import smalldiffusion

    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "smalldiffusion": getattr(smalldiffusion, "__version__", None) or _dist_version("smalldiffusion"),
            "seed": args.seed, "budget_s": args.budget, "every": args.every, "sample_steps": args.sample_steps,
            "recipe": "TimeInputMLP(16,128,128,128,128,16), ScheduleLogLinear(N=200, 0.005, 10), batch 2048, "
                      "AdamW lr 1e-3, samples(gam=2, mu=0, 20 steps)",
            "checkpoints": checkpoints}
    with open(args.out, "w") as f:
        json.dump(info, f, indent=1)


def _dist_version(name):
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
