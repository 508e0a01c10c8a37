"""Sample quality against the number of sampler steps, measured by kernel MMD^2.

The experiment behind chapter 7 and ``python -m labkit quality``: for each sampler and step
count, MMD^2 between n samples and n fresh target points, over several seeds, beside the noise
floor (MMD^2 between two fresh target batches). All samplers share each seed's noise, so their
differences are not drowned by sampling noise.
"""

from __future__ import annotations

import inspect

import torch
from tqdm.auto import tqdm

from . import samplers as _samplers
from ._checks import check_int
from .metrics import mmd2, noise_floor
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
    if grid is not None and grid not in _samplers.GRIDS:
        raise ValueError(f"grid must be None or one of {list(_samplers.GRIDS)}, got {grid!r}")
    if any(_samplers.SAMPLERS[s].takes_steps for s in names) and grid in (None, "trailing"):
        _samplers.ddim_timesteps(schedule, max(steps))  # fail early if too many for the schedule
    n = check_int("n", n, 2, 100_000)
    seeds = check_int("seeds", seeds, 1, 1000)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    should_stop = getattr(stop, "is_set", stop) or (lambda: False)
    g = torch.Generator().manual_seed(seed)
    floor = noise_floor(target, n, repeats=max(5, seeds), generator=g)
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
            values[(name, k)].append(mmd2(result.x, reference))
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
        v = torch.tensor(values[(name, k)], dtype=torch.float64)
        if len(v) == 0:
            continue
        records.append({"sampler": name, "grid": _grid_of(name, grid),
                        "steps": k if k is not None else nfe[(name, k)], "nfe": nfe[(name, k)],
                        "mmd2_mean": float(v.mean()), "mmd2_sd": float(v.std()) if len(v) > 1 else 0.0,
                        "mmd2": v.tolist()})
    out = {"target": target.name, "schedule": schedule.name, "n": n, "seeds": seeds, "grid": grid,
           "floor": {"mean": floor.mean, "sd": floor.sd}, "records": records}
    if cancelled:
        out["cancelled"] = True
    return out


def at_floor(result: dict, sampler: str, steps: int) -> bool:
    """Whether ``sampler`` at ``steps`` is within 2 floor spreads of the floor (mean over seeds)."""
    floor = result["floor"]
    rec = next((r for r in result["records"] if r["sampler"] == sampler and r["steps"] == steps), None)
    if rec is None:
        raise ValueError(f"no record for sampler={sampler!r}, steps={steps}")
    return rec["mmd2_mean"] <= floor["mean"] + 2 * floor["sd"]


def format_table(result: dict) -> str:
    """The records as a fixed-width text table, with the floor underneath."""
    lines = [f"{'sampler':<8}{'steps':>6}{'NFE':>6}{'MMD^2 mean':>13}{'sd':>11}  at floor"]
    for r in result["records"]:
        lines.append(f"{r['sampler']:<8}{r['steps']:>6}{r['nfe']:>6}{r['mmd2_mean']:>13.5f}"
                     f"{r['mmd2_sd']:>11.5f}  {'yes' if at_floor(result, r['sampler'], r['steps']) else 'no'}")
    f = result["floor"]
    lines.append(f"noise floor: {f['mean']:.5f} +- {f['sd']:.5f} (n = {result['n']}, "
                 f"at floor means <= mean + 2 sd = {f['mean'] + 2 * f['sd']:.5f})")
    return "\n".join(lines)
