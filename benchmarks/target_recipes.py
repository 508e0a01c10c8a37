"""Per-target recipe diagnosis for the 30 s bar (NOTES.md section 0, "Per-target recipes"; not part of run_all).

    python benchmarks/target_recipes.py train text steps=12000,t_lognormal=0.8 steps=8000
    python benchmarks/target_recipes.py exact moons          # the exact score, as a Gaussian mixture

``train``: a model trained with each SPEC (``key=value,...`` over the target's recipe, ``seed=`` the
training seed; as ``experiments.py recipe``), judged by ``common.quality_check`` (3 seeds x n = 1000,
labels drawn at the target's frequencies, as ``time_to_quality.py``) with each sampler in ``$SAMPLERS``
(default dpm16k,dpm16t,ddpm); prints the per-seed detail_miss and MMD^2 and the training CPU seconds.
``exact``: the same judgement of the exact eps: the curve targets are Gaussian mixtures (``K`` points
per class on the noise-free curve, u on a uniform grid, the target's noise sd), text nearly one (grid
points inside the glyphs, spacing and sd 0.025): what a sampler reaches with a perfect network.
One torch thread, CPU time (``time.process_time``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
from common import quality_check, sample_labels
from experiments import train_spec

from labkit import oracle, samplers, schedules, targets

torch.set_num_threads(1)
RUNS = {"dpm16k": ("dpmpp_2m", 16, "karras"), "dpm16t": ("dpmpp_2m", 16, "trailing"), "heun8k": ("heun", 8, "karras"),
        "dpm32k": ("dpmpp_2m", 32, "karras"), "ddpm": ("ddpm", None, None)}


def judge(name, eps_fn, names) -> None:
    target, schedule = targets.get(name), schedules.cosine()
    for run in names:
        sampler, steps, grid = RUNS[run]
        kwargs = {"grid": grid} if grid else {"generator": torch.Generator().manual_seed(1)}  # as time_to_quality
        q = quality_check(lambda z, sampler=sampler, steps=steps, kwargs=kwargs: samplers.run(
            sampler, eps_fn, schedule, z, steps, keep_trajectory=False, **kwargs).x, target)
        print(f"   {run:7s} detail_miss {' '.join(f'{v:.4f}' for v in q['detail_miss'])} "
              f"(<= {q['detail_miss_threshold']:.4f})  mmd2 {' '.join(f'{v:.4f}' for v in q['mmd2'])} "
              f"(<= {q['mmd2_threshold']:.4f})  {'AT FLOOR' if q['at_floor'] else ''}", flush=True)


def train_and_judge(name: str, specs, names) -> None:
    target, schedule = targets.get(name), schedules.cosine()
    for spec in specs:
        model, seed, full, cpu = train_spec(target, schedule, spec)
        print(f"{name} {spec} seed {seed}: CPU {cpu:.1f} s ({cpu / full['steps'] * 1e3:.2f} ms/step), "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        judge(name, model.eps_fn(sample_labels(target, 3000)), names)


def exact_mixture(name: str, K: int = 600, h: float = 0.025) -> targets.GaussianMixture:
    target = targets.get(name)
    means, classes = [], []
    if name == "text":
        for k, (path, box) in enumerate(zip(target._paths, target._boxes, strict=True)):
            xs, ys = (np.arange(float(box[0, i]) + h / 2, float(box[1, i]), h) for i in (0, 1))
            grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
            means.append(torch.from_numpy(grid[path.contains_points(grid)]))
            classes.append(torch.full((len(means[-1]),), k))
        sd = h
    else:  # a curve target: x = curve_c(u) + noise sd * z
        u = (torch.arange(K, dtype=torch.float64) + 0.5) / K
        for k in range(target.num_classes):
            classes.append(torch.full((K,), k))
            means.append(target._curve(u, classes[-1]))
        sd = target._noise
    return targets.GaussianMixture(f"{name} (exact)", torch.cat(means), sd, component_classes=torch.cat(classes))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("train", "exact"):
        raise SystemExit(__doc__)
    names = os.environ.get("SAMPLERS", "dpm16k,dpm16t,ddpm").split(",")
    if sys.argv[1] == "train":
        train_and_judge(sys.argv[2], sys.argv[3:], names)
    else:
        mixture = exact_mixture(sys.argv[2])
        print(f"{sys.argv[2]}: exact eps of a {len(mixture.means)}-component mixture", flush=True)
        eps = oracle.MixtureEps(mixture, schedules.cosine())
        judge(sys.argv[2], eps.eps_fn(sample_labels(targets.get(sys.argv[2]), 3000)),
              [n for n in names if n != "ddpm"])
