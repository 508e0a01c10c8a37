"""Per-target recipe diagnosis for the 30 s bar (NOTES.md section 0, "Per-target recipes"; not part of run_all).

    python benchmarks/target_recipes.py train text steps=12000,t_lognormal=0.8 steps=8000
    python benchmarks/target_recipes.py exact moons          # the exact score, as a Gaussian mixture
    python benchmarks/target_recipes.py robust moons         # the exact score over 5 judging seeds (15 batches)
    python benchmarks/target_recipes.py heldout spirals exact steps=8000 steps=8000,seed=1   # judging seeds 1-4

``train``: a model trained with each SPEC (``key=value,...`` over the target's recipe, ``seed=`` the
training seed; as ``experiments.py recipe``), judged by ``common.quality_check`` (3 seeds x n = 1000,
labels drawn at the target's frequencies, as ``time_to_quality.py``) with each sampler in ``$SAMPLERS``
(default dpm16k,dpm16t,ddpm); prints the per-seed detail_miss and MMD^2 and the training CPU seconds.
``exact``: the same judgement of the exact eps: the curve targets are Gaussian mixtures (``K`` points
per class on the noise-free curve, u on a uniform grid, the target's noise sd), text nearly one (grid
points inside the glyphs, spacing and sd 0.025): what a sampler reaches with a perfect network.
``robust``: the exact eps judged over ``common.quality_check``'s seeds 0-4 (5 x 3 = 15 batches of
n = 1000) with each sampler in ``$SAMPLERS`` (default fresh,dpm64k,dpm16k,dpm16k20), where ``fresh`` is
a fresh sample of the target itself: how often a perfect sampler passes, the criterion's own noise.
``heldout``: each SPEC's model (or ``exact``) judged on ``quality_check``'s seeds 1-4 (12 batches), which
time_to_quality.py's walk (seed 0) never sees, with each sampler in ``$SAMPLERS`` (default
dpm16k20,sde16k20,ddpm): mean detail_miss, batches and 3-batch runs at the floor.
One torch thread, CPU time (``time.process_time``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
from common import quality_check, sample_labels
from experiments import train_spec
from time_to_quality import FAST

from labkit import oracle, samplers, schedules, targets

torch.set_num_threads(1)
RUNS = {"dpm16k": ("dpmpp_2m", 16, "karras"), "dpm16t": ("dpmpp_2m", 16, "trailing"), "heun8k": ("heun", 8, "karras"),
        "dpm32k": ("dpmpp_2m", 32, "karras"), "dpm64k": ("dpmpp_2m", 64, "karras"), "ddpm": ("ddpm", None, None),
        "dpm16k20": FAST["dpmpp_2m-16-karras-rho20"],  # Karras's grid with rho 20 and sigma_min 0.02
        "sde16k20": FAST["dpmpp_2m_sde-16-karras-rho20"], "sde16k": ("dpmpp_2m_sde", 16, "karras"),
        "sde16t": ("dpmpp_2m_sde", 16, "trailing"), "ea16k": ("euler_a", 16, "karras")}


def runner(name, eps_fn, run, seed: int = 0):
    """samples_fn for ``common.quality_check``: sampler ``run`` of :data:`RUNS` on ``eps_fn``, or, for
    ``fresh``, the target's own samples (generator seeded by 99 + ``seed``)."""
    target, schedule = targets.get(name), schedules.cosine()
    if run == "fresh":
        g = torch.Generator().manual_seed(99 + seed)
        return lambda z: target.sample(len(z), g)[0]
    sampler, steps, grid, *options = RUNS[run]
    kwargs = {"grid": grid, **(options[0] if options else {})} if grid else {}
    # a stochastic sampler (DDPM, the SDE solvers) draws from time_to_quality's generator
    return lambda z: samplers.run(sampler, eps_fn, schedule, z, steps, keep_trajectory=False,
                                  generator=torch.Generator().manual_seed(1), **kwargs).x


def judge(name, eps_fn, names) -> None:
    target = targets.get(name)
    for run in names:
        q = quality_check(runner(name, eps_fn, run), target)
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


def heldout(name: str, specs, names, judging_seeds=(1, 2, 3, 4)) -> None:
    """Each SPEC's model (or, for ``exact``, the exact eps) judged on judging seeds the walk of
    time_to_quality.py never sees (it uses seed 0): the mean and worst detail_miss over the 12 batches, the
    batches at the floor, and the runs at the floor in all 3 of their batches (time_to_quality's rule)."""
    target, schedule = targets.get(name), schedules.cosine()
    for spec in specs:
        if spec == "exact":
            label, chosen = "exact", ["fresh", *(n for n in names if n != "ddpm")]
            eps_fn = oracle.MixtureEps(exact_mixture(name), schedule).eps_fn(sample_labels(target, 3000))
        else:
            model, seed, full, cpu = train_spec(target, schedule, spec)
            label, chosen, eps_fn = f"{spec} (CPU {cpu:.1f} s)", names, model.eps_fn(sample_labels(target, 3000))
        cells = []
        for run in chosen:
            batches, runs, misses, _ = tally(name, eps_fn, run, judging_seeds)
            cells.append(f"{run} {1000 * sum(misses) / len(misses):.2f} (worst {1000 * max(misses):.0f}) "
                         f"{batches}/{len(misses)} {runs}/{len(judging_seeds)}")
        print(f"{name} {label}: detail_miss x 1000 mean (worst), batches, runs at the floor: {'; '.join(cells)}",
              flush=True)


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


def tally(name: str, eps_fn, run, judging_seeds) -> tuple[int, int, list[float], float]:
    """``run`` judged by ``quality_check`` with each judging seed (3 batches each): the batches at the floor,
    the seeds with all 3 batches at the floor, every batch's detail_miss, and detail_miss's threshold."""
    target = targets.get(name)
    batches, runs, misses = 0, 0, []
    for seed in judging_seeds:
        q = quality_check(runner(name, eps_fn, run, seed), target, seed=seed)
        ok = [a and b for a, b in zip(q["detail_miss_at_floor"], q["mmd2_at_floor"], strict=True)]
        batches, runs, misses = batches + sum(ok), runs + all(ok), misses + q["detail_miss"]
    return batches, runs, misses, q["detail_miss_threshold"]


def robust(name: str, eps_fn, names, judging_seeds: int = 5) -> None:
    for run in names:
        passed, _, misses, threshold = tally(name, eps_fn, run, range(judging_seeds))
        print(f"   {run:9s} {passed}/{len(misses)} batches at the floor; detail_miss mean "
              f"{sum(misses) / len(misses):.4f}, worst {max(misses):.3f} (<= {threshold:.4f})", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("train", "exact", "robust", "heldout"):
        raise SystemExit(__doc__)
    default = {"robust": "fresh,dpm64k,dpm16k,dpm16k20", "heldout": "dpm16k20,sde16k20,ddpm"}.get(
        sys.argv[1], "dpm16k,dpm16t,ddpm")
    names = os.environ.get("SAMPLERS", default).split(",")
    if sys.argv[1] == "train":
        train_and_judge(sys.argv[2], sys.argv[3:], names)
    elif sys.argv[1] == "heldout":
        heldout(sys.argv[2], sys.argv[3:], names)
    else:
        mixture = exact_mixture(sys.argv[2])
        print(f"{sys.argv[2]}: exact eps of a {len(mixture.means)}-component mixture", flush=True)
        eps = oracle.MixtureEps(mixture, schedules.cosine()).eps_fn(sample_labels(targets.get(sys.argv[2]), 3000))
        (judge if sys.argv[1] == "exact" else robust)(sys.argv[2], eps, [n for n in names if n != "ddpm"])
