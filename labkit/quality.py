"""Sample quality against the number of sampler steps: the seed's MMD^2, the detail-scale statistic
and ``metrics.at_floor``.

The experiment behind chapter 7 and ``python -m labkit quality``: for each sampler and step
count, both statistics of ``labkit.metrics`` between n samples and n fresh target points, over
several seeds, beside their noise floors (the statistic between two fresh target batches). All
samplers share each seed's noise and reference batch, so their differences are not drowned by
sampling noise. A record is at the floor when ``metrics.floor_report`` says so for every seed.
"""

from __future__ import annotations

import inspect

import torch
from tqdm.auto import tqdm

from . import metrics
from . import samplers as _samplers
from ._checks import check_int, check_seed
from .schedules import Schedule
from .targets import Target

DEFAULT_STEPS = (4, 8, 16, 32, 64, 128)


def parse_samplers(names) -> list[str]:
    """Sampler names (a comma-separated string or a sequence), each a key of ``samplers.SAMPLERS``."""
    names = names.split(",") if isinstance(names, str) else list(names)
    names = [s.strip() for s in names if s.strip()]
    if not names or any(s not in _samplers.SAMPLERS for s in names):
        raise ValueError(f"samplers must be a non-empty subset of {list(_samplers.SAMPLERS)}, got {names}")
    return names


def _grid_of(name: str, grid: str | None) -> str | None:
    """The grid ``name`` runs on: ``grid``, else its own default (None for a sampler without steps)."""
    if not _samplers.SAMPLERS[name].takes_steps:
        return None
    return grid or inspect.signature(_samplers.SAMPLERS[name].fn).parameters["grid"].default


def run_quality(eps_fn, target: Target, schedule: Schedule, samplers=("ddim", "heun"),
                steps=DEFAULT_STEPS, n: int = 1000, seeds: int = 3, seed: int = 0, progress: bool = True,
                grid: str | None = None, callback=None, stop=None) -> dict:
    """MMD^2 per (sampler, steps), mean and sd over ``seeds``; returns a JSON-ready dict.

    Keys: target, schedule, n, seeds, grid, floor {mean, sd}, records [{sampler, grid, steps, nfe,
    mmd2_mean, mmd2_sd, mmd2}], where a sampler that takes no step count (``ddpm``) has one record.
    ``grid`` (None: each sampler's own default) goes to every sampler that takes steps.
    ``callback(done, total)`` runs after each (sampler, steps, seed); when ``stop`` (an Event or a
    callable) becomes true the run ends early and the result, over the seeds completed, has
    ``cancelled: True``.
    """
    names = parse_samplers(samplers)
    steps = sorted({check_int("steps", s, 1, _samplers.MAX_STEPS) for s in steps})
    if not steps:
        raise ValueError("steps must hold at least one step count")
    if grid is not None:
        _samplers.check_grid(grid)
    if any(_samplers.SAMPLERS[s].takes_steps for s in names) and grid in (None, "trailing"):
        _samplers.ddim_timesteps(schedule, max(steps))  # fail early if too many for the schedule
    n = check_int("n", n, metrics.DETAIL_K + 1, 100_000)
    seeds = check_int("seeds", seeds, 1, 1000)
    seed = check_seed(seed)
    should_stop = getattr(stop, "is_set", stop) or (lambda: False)
    g = torch.Generator().manual_seed(seed)
    floors = {s: metrics.noise_floor(target, n, statistic=s) for s in metrics.STATISTICS}
    jobs = [(s, k) for s in names for k in (steps if _samplers.SAMPLERS[s].takes_steps else [None])]
    values: dict = {job: [] for job in jobs}
    nfe, done, cancelled = {}, 0, False
    bar = tqdm(total=len(jobs) * seeds, desc=f"quality {target.name}", disable=not progress)
    for i in range(seeds):
        g.manual_seed(seed + 1000 * (i + 1))
        noise = torch.randn(n, target.dim, generator=g)
        reference = target.sample(n, g)[0]
        for name, k in jobs:
            if should_stop():
                cancelled = True
                break
            kwargs = {"grid": grid} if grid is not None and k is not None else {}
            result = _samplers.run(name, eps_fn, schedule, noise, k, generator=g, keep_trajectory=False, **kwargs)
            values[(name, k)].append(_measure(result.x, reference, target))
            nfe[(name, k)] = result.nfe
            done += 1
            bar.update(1)
            if callback is not None:
                callback(done, len(jobs) * seeds)
        if cancelled:
            break
    bar.close()
    records = []
    for name, k in jobs:
        if not values[(name, k)]:
            continue
        record = {"sampler": name, "grid": _grid_of(name, grid),
                  "steps": k if k is not None else nfe[(name, k)], "nfe": nfe[(name, k)]}
        for stat in metrics.STATISTICS:
            v = torch.tensor([m[stat] for m in values[(name, k)]], dtype=torch.float64)
            record.update({f"{stat}_mean": float(v.mean()), f"{stat}_sd": float(v.std()) if len(v) > 1 else 0.0,
                           stat: v.tolist()})
        verdicts = [m["at_floor"] for m in values[(name, k)]]
        record["at_floor_seeds"] = None if None in verdicts else sum(verdicts)
        record["at_floor"] = None if None in verdicts else all(verdicts)
        records.append(record)
    out = {"target": target.name, "schedule": schedule.name, "n": n, "seeds": seeds, "grid": grid,
           **{_FLOOR_KEYS[s]: {"mean": f.mean, "sd": f.sd, "threshold": f.threshold} for s, f in floors.items()},
           "records": records}
    if cancelled:
        out["cancelled"] = True
    return out


_FLOOR_KEYS = {"mmd2": "floor", "detail_miss": "detail_floor"}


def _measure(x: torch.Tensor, reference: torch.Tensor, target) -> dict:
    """Both statistics of x against ``reference`` and the verdict of :func:`metrics.floor_report`
    (None below the n it is calibrated for; False, with NaN statistics, for a non-finite sample)."""
    if not torch.isfinite(x).all():
        return {**{s: float("nan") for s in metrics.STATISTICS}, "at_floor": False}
    if len(x) >= metrics.MIN_N:
        report = metrics.floor_report(x, target, reference=reference)
        return {**{s: report[s] for s in metrics.STATISTICS}, "at_floor": report["at_floor"]}
    return {**{s: fn(x, reference) for s, (_, fn) in metrics.STATISTICS.items()}, "at_floor": None}


def at_floor(result: dict, sampler: str, steps: int) -> bool | None:
    """Whether ``sampler`` at ``steps`` is at the floor (``metrics.floor_report``) in every seed; None
    when n is below the sample size at_floor is calibrated for."""
    rec = next((r for r in result["records"] if r["sampler"] == sampler and r["steps"] == steps), None)
    if rec is None:
        raise ValueError(f"no record for sampler={sampler!r}, steps={steps}")
    return rec["at_floor"]


def first_at_floor(result: dict, sampler: str, grid: str | None = None, seeds: int | None = None) -> dict | None:
    """The record of ``sampler`` (on ``grid``; None: any) from whose N on it is at the floor at every larger N
    of ``result``: in every seed (``at_floor``), or in at least ``seeds`` seeds. None if not at the largest N."""
    recs = sorted((r for r in result["records"] if r["sampler"] == sampler and grid in (None, r["grid"])),
                  key=lambda r: r["steps"])
    if not recs:
        raise ValueError(f"no record for sampler={sampler!r}, grid={grid!r}")
    ok = [bool(r["at_floor"]) if seeds is None else (r["at_floor_seeds"] or 0) >= seeds for r in recs]
    return next((r for i, r in enumerate(recs) if all(ok[i:])), None)


def format_table(result: dict) -> str:
    """The records as a fixed-width text table, with both floors underneath."""
    lines = [f"{'sampler':<13}{'grid':>9}{'steps':>6}{'NFE':>6}{'MMD^2 mean':>12}{'sd':>10}"
             f"{'detail mean':>13}{'sd':>8}  at floor"]
    for r in result["records"]:
        verdict = "n/a" if r["at_floor"] is None else f"{'yes' if r['at_floor'] else 'no'} ({r['at_floor_seeds']}/" \
            f"{len(r['mmd2'])} seeds)"
        lines.append(f"{r['sampler']:<13}{r['grid'] or '-':>9}{r['steps']:>6}{r['nfe']:>6}{r['mmd2_mean']:>12.5f}"
                     f"{r['mmd2_sd']:>10.5f}{r['detail_miss_mean']:>13.4f}{r['detail_miss_sd']:>8.4f}  {verdict}")
    f, d = result["floor"], result["detail_floor"]
    lines.append(f"noise floor (n = {result['n']}): MMD^2 {f['mean']:.5f} +- {f['sd']:.5f}, detail "
                 f"{d['mean']:.4f} +- {d['sd']:.4f}; at the floor = both at or below mean + "
                 f"{metrics.FLOOR_Z:g} sd ({f['threshold']:.5f}, {d['threshold']:.4f}) in every seed")
    return "\n".join(lines)
