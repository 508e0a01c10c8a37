"""Kernel maximum mean discrepancy (Gretton et al. 2012) between two samples.

Unbiased estimator (Lemma 6), diagonal terms excluded:

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
              - 2/(mn) sum_{i,j} k(x_i, y_j),

with k the sum of RBF kernels exp(-d^2 / (2 h^2)), h = scale x the median pairwise distance of
the pooled sample (the median heuristic), for each scale in ``scales``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._checks import check_generator, check_int, check_points


def median_distance(z: torch.Tensor) -> float:
    """Median of the pairwise distances between distinct rows of ``z``.

    Falls back to the mean distance when more than half the pairs coincide, and to 1 when all
    points are identical, so that the bandwidth is never zero.
    """
    # pdist gives each pair once; its (lower) median equals that of the symmetric off-diagonal
    # matrix, at a quarter of the cost of building and masking that matrix.
    off = torch.pdist(z)
    med = float(off.median())
    if med > 0:
        return med
    mean = float(off.mean())
    return mean if mean > 0 else 1.0


def mmd2(x: torch.Tensor, y: torch.Tensor, scales=(0.5, 1.0, 2.0)) -> float:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d), m, n >= 2, computed in float64."""
    check_points("x", x, dim=None)
    check_points("y", y, dim=None)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    for name, s in (("x", x), ("y", y)):
        if len(s) < 2:
            raise ValueError(f"{name} must have at least 2 rows for the unbiased MMD, got {len(s)}")
    try:
        scales = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise TypeError(f"scales must be a sequence of numbers, got {scales!r}") from None
    if not scales or any(not s > 0 or s == float("inf") for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of finite numbers > 0, got {scales}")
    x, y = x.to(torch.float64), y.to(torch.float64).to(x.device)
    # With the median bandwidth MMD^2 does not change when both samples are scaled by one factor:
    # dividing by the largest |coordinate| keeps squared distances clear of overflow and underflow.
    size = float(torch.cat([x, y]).abs().max())
    if size > 0:
        x, y = x / size, y / size
    m, n = len(x), len(y)
    h = median_distance(torch.cat([x, y]))
    d_xx, d_yy, d_xy = (torch.cdist(a, b).square() for a, b in ((x, x), (y, y), (x, y)))
    total = 0.0
    for s in scales:
        gamma = 1.0 / (2.0 * (s * h) ** 2)
        k_xx = torch.exp(-gamma * d_xx)
        k_yy = torch.exp(-gamma * d_yy)
        k_xy = torch.exp(-gamma * d_xy)
        total += float((k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
                       + (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
                       - 2.0 * k_xy.mean())
    return total


class Floor(NamedTuple):
    """MMD^2 between two fresh target batches: its mean, its sd and the individual values."""
    mean: float
    sd: float
    values: list[float]

    @property
    def threshold(self) -> float:
        """mean + 2 sd: a sample whose MMD^2 is below this is 'at the floor'."""
        return self.mean + 2.0 * self.sd


def noise_floor(target, n: int, repeats: int = 5, generator: torch.Generator | None = None) -> Floor:
    """The MMD^2 noise floor: mmd2 of two independent batches of ``n`` target points, ``repeats`` times."""
    if not hasattr(target, "sample"):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    n = check_int("n", n, 2, 1_000_000)
    repeats = check_int("repeats", repeats, 2, 10_000)
    check_generator(generator)
    values = [mmd2(target.sample(n, generator)[0], target.sample(n, generator)[0]) for _ in range(repeats)]
    v = torch.tensor(values, dtype=torch.float64)
    return Floor(float(v.mean()), float(v.std()), values)
