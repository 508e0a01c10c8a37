"""Sample quality against a target: the seed's kernel MMD and a criterion at the target's detail scale.

``mmd2`` is the unbiased MMD^2 of Gretton et al. 2012 (Lemma 6), diagonal terms excluded:

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
              - 2/(mn) sum_{i,j} k(x_i, y_j),

with k the sum of RBF kernels exp(-d^2 / (2 h^2)), h = scale x the median pairwise distance of
the pooled sample (the median heuristic), for each scale in ``scales``. Those bandwidths (about
1.4 to 5.6 on ring8) are blind to the shape of ring8's modes (sd 0.1).

``detail_miss`` looks at the target's own detail scale: the k-nearest-neighbour radius of each
point of a target sample (Kynkaenniemi et al. 2019, improved precision and recall). Precision is
the fraction of x inside some target point's k-NN ball, recall the fraction of target points
inside some x point's k-NN ball; detail_miss = (1 - precision) + (1 - recall). Points between the
modes, modes too wide or too narrow, and missing modes all raise it.

``noise_floor`` gives either statistic's null distribution (two fresh target batches of the same
n), cached; ``Floor.threshold`` is the one decision rule; ``at_floor`` asks both statistics.
"""


from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ._checks import check_generator, check_int, check_points


def median_distance(z: torch.Tensor) -> float:
    """Median of the pairwise distances between distinct rows of ``z``.

    Falls back to the mean distance when more than half the pairs coincide, and to 1 when all
    points are identical, so that the bandwidth is never zero.
    """
    # pdist gives each pair once; its (lower) median equals that of the symmetric off-diagonal
    # matrix, at a quarter of the cost of building and masking that matrix.
    off = torch.pdist(z).numpy()
    lower = (len(off) - 1) // 2  # the lower middle, as torch.median takes it
    med = float(np.partition(off, lower)[lower])  # a selection, 3-4x faster than torch.median here
    if med > 0:
        return med
    mean = float(off.mean())
    return mean if mean > 0 else 1.0


def _check_pair(x, y, min_rows: int, why: str) -> None:
    check_points("x", x, dim=None)
    check_points("y", y, dim=None)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    for name, s in (("x", x), ("y", y)):
        if len(s) < min_rows:
            raise ValueError(f"{name} must have at least {min_rows} rows {why}, got {len(s)}")


def mmd2(x: torch.Tensor, y: torch.Tensor, scales=(0.5, 1.0, 2.0)) -> float:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d), m, n >= 2, computed in float64."""
    _check_pair(x, y, 2, "for the unbiased MMD")
    try:
        scales = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise TypeError(f"scales must be a sequence of numbers, got {scales!r}") from None
    if not scales or any(not s > 0 or s == float("inf") for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of finite numbers > 0, got {scales}")
    return _mmd2(x, y, scales)


def _mmd2(x: torch.Tensor, y: torch.Tensor, scales=(0.5, 1.0, 2.0)) -> float:
    """mmd2 without the input checks (for loops over fresh target batches)."""
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




DETAIL_K = 10        # neighbours per k-NN ball: the detail scale is each target point's 10-NN radius
FLOOR_REPEATS = 100  # fresh pairs of target batches per floor (benchmarks/AT_FLOOR.md)
FLOOR_Z = 3.0        # a statistic is at the floor when <= mean + FLOOR_Z sd of its null (Floor.threshold)
MIN_N, MAX_N = 500, 10_000  # the sample sizes at_floor decides on


def knn_radius(z: torch.Tensor, k: int = DETAIL_K) -> torch.Tensor:
    """Distance from each row of z to its k-th nearest other row: the sample's own detail scale there."""
    return torch.cdist(z, z).topk(k + 1, largest=False).values[:, k]  # column 0 is the row itself


def precision_recall(x: torch.Tensor, y: torch.Tensor, k: int = DETAIL_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of a sample x against target points y.

    precision: the fraction of x inside some target k-NN ball B(y_j, r_k(y_j)); recall: the fraction
    of y inside some ball B(x_i, r_k(x_i)). Both are near 1 when x and y come from one distribution.
    """
    k = check_int("k", k, 1, 1000)
    _check_pair(x, y, k + 1, f"for {k}-nearest-neighbour balls")
    return _precision_recall(x, y, k)


def _precision_recall(x, y, k=DETAIL_K):
    x, y = x.to(torch.float64), y.to(torch.float64).to(x.device)
    d = torch.cdist(x, y)                                         # d[i, j] = |x_i - y_j|
    r_x, r_y = knn_radius(x, k), knn_radius(y, k)
    precision = (d <= r_y[None, :]).any(dim=1).to(torch.float64).mean()
    recall = (d <= r_x[:, None]).any(dim=0).to(torch.float64).mean()
    return float(precision), float(recall)


def detail_miss(x: torch.Tensor, y: torch.Tensor, k: int = DETAIL_K) -> float:
    """(1 - precision) + (1 - recall) of x against target points y at the k-NN scale (0 is perfect)."""
    precision, recall = precision_recall(x, y, k)
    return (1.0 - precision) + (1.0 - recall)


def _detail_miss(x, y):
    precision, recall = _precision_recall(x, y)
    return (1.0 - precision) + (1.0 - recall)


# name -> (label for charts, statistic(x, y) without input checks); at_floor asks every one.
STATISTICS = {
    "mmd2": ("MMD² (RBF at 0.5, 1, 2 x median distance)", _mmd2),
    "detail_miss": (f"detail miss: (1 - precision) + (1 - recall), {DETAIL_K}-NN balls", _detail_miss),
}


class Floor(NamedTuple):
    """A statistic between two fresh target batches: its mean, its sd and the individual values."""
    mean: float
    sd: float
    values: list[float]

    @property
    def threshold(self) -> float:
        """mean + FLOOR_Z sd: a sample whose statistic is at or below this is 'at the floor'.

        labkit's one decision rule. Both nulls are skewed to the right: mean + 2 sd rejects about
        5% of fresh samples per statistic, mean + 3 sd about 1% (benchmarks/AT_FLOOR.md).
        """
        return self.mean + FLOOR_Z * self.sd


_FLOORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # target -> {(n, statistic, repeats): Floor}


def noise_floor(target, n: int, repeats: int = FLOOR_REPEATS, generator: torch.Generator | None = None,
                statistic: str = "mmd2") -> Floor:
    """The noise floor of ``statistic``: its value on two independent batches of ``n`` target points,
    ``repeats`` times. Without a generator the draw is seeded and cached per (target, n, statistic,
    repeats), so a second call is free; with one it comes from that generator and is not cached."""
    if not hasattr(target, "sample"):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
    n = check_int("n", n, DETAIL_K + 1 if statistic == "detail_miss" else 2, 1_000_000)
    repeats = check_int("repeats", repeats, 2, 10_000)
    check_generator(generator)
    key = (n, statistic, repeats)
    if generator is None and key not in _FLOORS.get(target, {}) and repeats == FLOOR_REPEATS:
        shipped = _shipped_floor(target, n, statistic)
        if shipped is not None:
            _FLOORS.setdefault(target, {})[key] = shipped
    if generator is None and key in _FLOORS.get(target, {}):
        return _FLOORS[target][key]
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    fn = STATISTICS[statistic][1]
    values = [fn(target.sample(n, g)[0], target.sample(n, g)[0]) for _ in range(repeats)]
    v = torch.tensor(values, dtype=torch.float64)
    floor = Floor(float(v.mean()), float(v.std()), values)
    if generator is None:
        _FLOORS.setdefault(target, {})[key] = floor
    return floor


FLOORS_FILE = Path(__file__).with_name("floors.json")  # written by scripts/compute_floors.py
_SHIPPED: dict | None = None


def _shipped_floor(target, n: int, statistic: str) -> Floor | None:
    """The floor of a registered target (``targets.get(name)``, not a look-alike) at a common n, as
    computed by scripts/compute_floors.py with this very code (the default seeded draw)."""
    global _SHIPPED
    from . import targets

    if target.name not in targets.names() or targets.get(target.name) is not target:
        return None
    if _SHIPPED is None:
        _SHIPPED = json.loads(FLOORS_FILE.read_text()) if FLOORS_FILE.exists() else {}
    values = _SHIPPED.get(target.name, {}).get(str(n), {}).get(statistic)
    if values is None:
        return None
    v = torch.tensor(values, dtype=torch.float64)
    return Floor(float(v.mean()), float(v.std()), values)


def floor_report(x: torch.Tensor, target, *, generator: torch.Generator | None = None,
                 reference: torch.Tensor | None = None) -> dict:
    """The numbers behind :func:`at_floor`: each statistic of x against a fresh target batch of the
    same n (or ``reference``, target points of that n, e.g. one batch shared by several samplers),
    its floor's threshold and its verdict, and the joint verdict ``at_floor``."""
    if not hasattr(target, "sample"):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    check_points("x", x, dim=target.dim)
    n = len(x)
    if not MIN_N <= n <= MAX_N:
        raise ValueError(f"x must have between {MIN_N} and {MAX_N} rows (points) for at_floor, got {n}")
    check_generator(generator)
    if reference is None:
        y = target.sample(n, generator)[0]
    else:
        y = check_points("reference", reference, dim=target.dim)
        if len(y) != n:
            raise ValueError(f"reference must have as many rows as x ({n}), got {len(y)}")
    report = {"n": n}
    for name, (_, statistic) in STATISTICS.items():
        threshold = noise_floor(target, n, statistic=name).threshold
        value = statistic(x, y)
        report.update({name: value, f"{name}_threshold": threshold, f"{name}_at_floor": value <= threshold})
    report["at_floor"] = all(report[f"{name}_at_floor"] for name in STATISTICS)
    return report


def at_floor(x: torch.Tensor, target, *, generator: torch.Generator | None = None) -> bool:
    """True only when x (n in [500, 10000] points) is indistinguishable from ``target`` both by the
    seed's ``mmd2`` and by ``detail_miss``, each at or below its noise floor's threshold at the same n."""
    return floor_report(x, target, generator=generator)["at_floor"]
