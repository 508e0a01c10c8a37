"""Score fields on a grid, for quiver plots.

The score of the noised data at timestep t follows from an eps-prediction (Ho et al. 2020;
Song et al. 2021): s(x, t) = grad log p_t(x) = -eps(x, t) / sqrt(1 - abar_t).

Near t = 0 the score is huge away from the data (|s| ~ distance / (1 - abar_t)), so arrows are
drawn at a common display length: :func:`display_arrows` rescales them so the longest arrow
spans about one grid cell, and reports the factor, instead of letting a few arrows cover the plot.
"""

from __future__ import annotations

import torch

from ._checks import check_float, check_int
from .schedules import Schedule


def grid(lim: float = 3.0, size: int = 16) -> torch.Tensor:
    """A size x size grid of points over [-lim, lim]^2 as a (size^2, 2) float32 tensor (row-major, y outer)."""
    lim = check_float("lim", lim, 0.0, 1e6, low_open=True)
    size = check_int("size", size, 2, 1000)
    axis = torch.linspace(-lim, lim, size)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


@torch.inference_mode()
def score_field(eps_fn, schedule: Schedule, t: float, points: torch.Tensor) -> torch.Tensor:
    """s(x, t) = -eps_fn(x, t) / sqrt(1 - abar_t) at ``points`` (t may be fractional)."""
    t = check_float("t", t, 0.0, schedule.T - 1)
    tt = torch.full((len(points),), t, dtype=points.dtype)
    abar = float(schedule.abar(torch.tensor(t, dtype=torch.float64)))
    return -eps_fn(points, tt) / (1.0 - abar) ** 0.5


def display_arrows(vectors: torch.Tensor, cell: float) -> tuple[torch.Tensor, float]:
    """Scale ``vectors`` so the longest has length ``cell`` (0.9 grid cell); returns (scaled, factor).

    Non-finite vectors are drawn as zero-length arrows rather than breaking the plot.
    """
    v = torch.nan_to_num(vectors.detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    longest = float(v.norm(dim=1).max()) if len(v) else 0.0
    factor = 0.9 * cell / longest if longest > 0 else 1.0
    return (v * factor).to(torch.float32), factor
