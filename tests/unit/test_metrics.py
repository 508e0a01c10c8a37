import itertools
import math

import pytest
import torch

from labkit import metrics, targets
from tests.helpers import gen


def _direct_mmd2(x, y, scales):
    """Double-loop unbiased MMD^2 with the median heuristic, written out term by term."""
    x, y = x.double(), y.double()
    z = torch.cat([x, y])
    dists = sorted(float((z[i] - z[j]).norm()) for i, j in itertools.permutations(range(len(z)), 2))
    mid = len(dists) // 2
    med = dists[mid] if len(dists) % 2 else dists[mid - 1]  # torch.median takes the lower middle
    total = 0.0
    for s in scales:
        h = s * med

        def k(a, b, h=h):
            return math.exp(-float((a - b).norm()) ** 2 / (2 * h * h))

        m, n = len(x), len(y)
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
        total += xx + yy - 2 * xy
    return total


def test_equals_a_direct_double_loop_on_small_inputs():
    x = torch.randn(7, 2, generator=gen(0))
    y = torch.randn(5, 2, generator=gen(1)) + 0.5
    for scales in [(0.5, 1.0, 2.0), (1.0,)]:
        assert metrics.mmd2(x, y, scales) == pytest.approx(_direct_mmd2(x, y, scales), rel=1e-9, abs=1e-12)


def test_symmetric():
    x = torch.randn(30, 2, generator=gen(0))
    y = torch.randn(40, 2, generator=gen(1)) * 2
    assert metrics.mmd2(x, y) == pytest.approx(metrics.mmd2(y, x), rel=1e-12)


def test_near_zero_in_expectation_for_equal_distributions():
    ring8 = targets.get("ring8")
    g = gen(0)
    values = [metrics.mmd2(ring8.sample(200, g)[0], ring8.sample(200, g)[0]) for _ in range(40)]
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    assert abs(mean) < 3 * sd / len(values) ** 0.5  # unbiased: zero within 3 standard errors
    assert min(values) < 0  # the unbiased estimate can go negative (a biased one cannot)


def test_large_for_different_distributions():
    ring8, moons = targets.get("ring8"), targets.get("moons")
    floor = metrics.noise_floor(ring8, 300, repeats=30, generator=gen(0))
    assert metrics.mmd2(ring8.sample(300, gen(1))[0], moons.sample(300, gen(2))[0]) > 5 * floor.threshold


def test_noise_floor_reports_mean_and_spread():
    ring8 = targets.get("ring8")
    floor = metrics.noise_floor(ring8, 200, repeats=8, generator=gen(0))
    assert len(floor.values) == 8
    assert floor.mean == pytest.approx(sum(floor.values) / 8)
    assert floor.sd > 0 and floor.threshold == pytest.approx(floor.mean + metrics.FLOOR_Z * floor.sd)


def test_identical_points_do_not_give_a_zero_bandwidth():
    x = torch.zeros(5, 2)
    assert metrics.mmd2(x, x.clone()) == pytest.approx(0.0, abs=1e-12)
    assert math.isfinite(metrics.mmd2(x, torch.ones(5, 2)))


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_points_is_an_error(n):
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mmd2(torch.zeros(n, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mmd2(torch.randn(5, 2), torch.zeros(n, 2))
