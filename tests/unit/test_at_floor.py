"""metrics.at_floor: the detail-scale statistic, the cached floors, the one decision rule, and a fast
version of the calibration in benchmarks/at_floor_calibration.py (AT_FLOOR.md has the full one)."""

import time

import pytest
import torch

from labkit import metrics, perturbed, targets
from tests.helpers import gen, rejects


def _direct_precision_recall(x, y, k):
    """Precision and recall with k-NN balls, written out point by point."""
    def radius(s, i):
        return sorted(float((s[i] - s[j]).norm()) for j in range(len(s)) if j != i)[k - 1]

    r_x = [radius(x, i) for i in range(len(x))]
    r_y = [radius(y, j) for j in range(len(y))]
    inside = [any(float((x[i] - y[j]).norm()) <= r_y[j] for j in range(len(y))) for i in range(len(x))]
    covered = [any(float((y[j] - x[i]).norm()) <= r_x[i] for i in range(len(x))) for j in range(len(y))]
    return sum(inside) / len(x), sum(covered) / len(y)


def test_precision_recall_equals_a_direct_loop():
    x = torch.randn(25, 2, generator=gen(0))
    y = torch.randn(30, 2, generator=gen(1)) * 1.5 + 0.5
    for k in (1, 3, 5):
        assert metrics.precision_recall(x, y, k) == pytest.approx(_direct_precision_recall(x, y, k), abs=1e-12)


def test_detail_miss_counts_points_off_the_target_and_target_points_not_covered():
    y = torch.randn(400, 2, generator=gen(0))
    assert metrics.detail_miss(y, y.clone()) == 0.0
    x = y.clone()
    x[:40] += 50.0  # 10% of the sample far from every target point
    assert metrics.precision_recall(x, y) == pytest.approx((0.9, 1.0), abs=1e-12)
    left = y[y[:, 0] < 0]  # a sample that misses the right half of the target
    precision, recall = metrics.precision_recall(left, y)
    assert precision == 1.0 and recall < 0.5 + 0.1
    assert metrics.detail_miss(left, y) == pytest.approx(1 - recall)


def test_detail_miss_works_in_64_dimensions():
    g = gen(0)
    fresh = [metrics.detail_miss(torch.randn(500, 64, generator=g), torch.randn(500, 64, generator=g))
             for _ in range(3)]
    wide = [metrics.detail_miss(2.0 * torch.randn(500, 64, generator=g), torch.randn(500, 64, generator=g))
            for _ in range(3)]
    assert max(fresh) < min(wide)


def test_floor_is_cached_per_target_n_and_statistic_and_the_second_call_is_free(ring8):
    first = metrics.noise_floor(ring8, 200, repeats=20, statistic="detail_miss")
    t0 = time.perf_counter()
    again = metrics.noise_floor(ring8, 200, repeats=20, statistic="detail_miss")
    assert again is first and time.perf_counter() - t0 < 0.01
    assert metrics.noise_floor(ring8, 200, repeats=20) is not first              # another statistic
    assert metrics.noise_floor(ring8, 201, repeats=20, statistic="detail_miss") is not first
    # With a generator the draw is the caller's: two generators give two floors, neither cached.
    a = metrics.noise_floor(ring8, 200, repeats=20, generator=gen(1), statistic="detail_miss")
    b = metrics.noise_floor(ring8, 200, repeats=20, generator=gen(2), statistic="detail_miss")
    assert a.values != b.values and a is not first


@pytest.fixture
def quick_floors(monkeypatch):
    """Floors of 30 pairs instead of FLOOR_REPEATS, to keep the suite fast (the benchmark uses the default)."""
    monkeypatch.setattr(metrics, "FLOOR_REPEATS", 30)


def test_threshold_is_the_one_rule(ring8, quick_floors):
    floor = metrics.noise_floor(ring8, 200, repeats=20)
    assert floor.sd > 0
    assert floor.threshold == pytest.approx(floor.mean + metrics.FLOOR_Z * floor.sd)
    report = metrics.floor_report(ring8.sample(500, gen(3))[0], ring8, generator=gen(4))
    for name in metrics.STATISTICS:
        again = metrics.noise_floor(ring8, 500, 30, statistic=name).threshold
        assert report[f"{name}_threshold"] == pytest.approx(again, rel=1e-9)  # threads may change the last bits
        assert report[f"{name}_at_floor"] == (report[name] <= report[f"{name}_threshold"])
    assert report["at_floor"] == (report["mmd2_at_floor"] and report["detail_miss_at_floor"])


def test_at_floor_rejects_bad_input(ring8):
    x = ring8.sample(499, gen(0))[0]
    assert "500" in rejects(lambda: metrics.at_floor(x, ring8), "x")
    rejects(lambda: metrics.at_floor(torch.zeros(600, 3), ring8), "x")
    rejects(lambda: metrics.at_floor(torch.full((600, 2), float("nan")), ring8), "x")
    rejects(lambda: metrics.at_floor(ring8.sample(600)[0], "ring8"), "target")
    rejects(lambda: metrics.at_floor(ring8.sample(600)[0], ring8, generator=0), "generator")
    rejects(lambda: metrics.noise_floor(ring8, 100, statistic="fid"), "statistic")
    rejects(lambda: metrics.precision_recall(torch.zeros(5, 2), torch.zeros(20, 2), k=10), "x")


RING8_BAD = ["ring8 modes 2x too wide", "ring8 modes at half width", "ring8 one mode missing",
             "ring8 one mode 3x the weight", "ring8 10% between modes"]


def _passes(case, table, n, trials, seed):
    name, _, draw = table[case]
    target, g = targets.get(name), gen(seed)
    return sum(metrics.at_floor(draw(n, g).float(), target, generator=g) for _ in range(trials))


def test_calibration_ring8_at_n_1000(quick_floors):
    """Fresh ring8 samples pass; each of the five defects fails (the full run: AT_FLOOR.md)."""
    assert _passes("ring8 fresh", perturbed.FRESH, 1000, 6, seed=10) >= 5
    for case in RING8_BAD:
        assert _passes(case, perturbed.PERTURBATIONS, 1000, 3, seed=11) == 0, case


def test_calibration_moons_at_n_500(quick_floors):
    assert _passes("moons fresh", perturbed.FRESH, 500, 6, seed=12) >= 5
    assert _passes("moons curve noise doubled", perturbed.PERTURBATIONS, 500, 3, seed=13) == 0


def test_the_seed_mmd_is_blind_to_modes_2_3x_too_wide_and_the_detail_criterion_is_not(ring8, quick_floors):
    g = gen(14)
    for _ in range(3):
        report = metrics.floor_report(perturbed.ring8_like(1000, g, sd=0.23).float(), ring8, generator=g)
        assert report["mmd2_at_floor"] and not report["detail_miss_at_floor"] and not report["at_floor"]


def test_the_shipped_floors_are_what_labkit_computes():
    # labkit/floors.json (scripts/compute_floors.py) holds FLOOR_REPEATS seeded pairs per target, n and
    # statistic; the first pairs of the same seeded draw, recomputed here, must be the shipped ones.
    for name in targets.names(2):
        for n in (300, 500, 1000):
            for statistic in metrics.STATISTICS:
                shipped = metrics._shipped_floor(targets.get(name), n, statistic)
                assert shipped is not None and len(shipped.values) == metrics.FLOOR_REPEATS, (name, n, statistic)
    for statistic in metrics.STATISTICS:
        again = metrics.noise_floor(targets.get("moons"), 500, repeats=3, generator=gen(0), statistic=statistic)
        assert again.values == pytest.approx(metrics._shipped_floor(targets.get("moons"), 500, statistic).values[:3],
                                             rel=1e-9, abs=1e-12)
    # A look-alike target (another ring8) gets no shipped floor.
    assert metrics._shipped_floor(targets.ring(8, 2.0, 0.2), 500, "mmd2") is None
