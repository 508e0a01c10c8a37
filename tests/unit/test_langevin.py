import math

import pytest
import torch

from labkit import metrics, oracle
from labkit.langevin import annealed_langevin, noise_levels
from tests.helpers import gen


def test_noise_levels_are_geometric_from_sigma_max_to_sigma_min():
    sig = noise_levels(5, 10.0, 0.01)
    assert sig[0] == pytest.approx(10.0) and sig[-1] == pytest.approx(0.01)
    ratios = [b / a for a, b in zip(sig[:-1], sig[1:], strict=True)]
    assert ratios == pytest.approx([ratios[0]] * 4)
    assert noise_levels(1, 10.0, 0.01) == [0.01]


N = 1000  # MMD^2 at n = 500 spreads over several floor widths; n = 1000 separates good from bad


@pytest.fixture(scope="module")
def floor(ring8):
    return metrics.noise_floor(ring8, N, 4, gen(3))


def test_annealed_langevin_on_the_exact_ring8_score_reaches_the_noise_floor(ring8, cosine, floor):
    eps = oracle.eps_fn(ring8, cosine)
    noise = torch.randn(N, 2, generator=gen(1))
    ref = ring8.sample(N, gen(2))[0]
    good = annealed_langevin(eps, cosine, noise, levels=10, steps_per_level=30, generator=gen(4))
    assert metrics.mmd2(good.x, ref) < floor.threshold
    # The same chain with a step far too small never leaves the neighbourhood of its start.
    stuck = annealed_langevin(eps, cosine, noise, levels=10, steps_per_level=30, step_size=1e-9, generator=gen(4))
    assert metrics.mmd2(stuck.x, ref) > 10 * floor.threshold


def test_langevin_at_one_level_samples_the_noised_marginal(ring8, cosine, floor):
    # At sigma = 1 (abar = 1/2) the marginal of x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps has
    # E|x_t|^2 = abar (r^2 + 2 s^2) + 2 (1 - abar) with r = 2, s = 0.1.
    n = N
    eps = oracle.eps_fn(ring8, cosine)
    res = annealed_langevin(eps, cosine, torch.randn(n, 2, generator=gen(5)), levels=1, steps_per_level=300,
                            step_size=0.05, sigma_max=1.0, sigma_min=1.0, generator=gen(6))
    expected = 0.5 * (4 + 2 * 0.01) + 2 * 0.5
    assert res.x.square().sum(1).mean().item() == pytest.approx(expected, rel=0.05)
    t = cosine.sigma_to_t(1.0).round().long().item()
    x0 = ring8.sample(n, gen(7))[0]
    noised = cosine.q_sample(x0, t, torch.randn(n, 2, generator=gen(8)))
    assert metrics.mmd2(res.x, noised) < floor.threshold


def test_nfe_and_trajectory_count_every_langevin_step(ring8, cosine):
    calls = []

    def eps_fn(x, t):
        calls.append(t[0].item())
        return torch.zeros_like(x)

    noise = torch.randn(7, 2, generator=gen(0))
    res = annealed_langevin(eps_fn, cosine, noise, levels=3, steps_per_level=4, generator=gen(1))
    assert res.nfe == len(calls) == 12
    assert len(res.trajectory) == 13
    # Levels are visited from the noisiest down, each for steps_per_level calls.
    assert calls[0] == calls[3] > calls[4] == calls[7] > calls[8] == calls[11]
    assert torch.allclose(res.trajectory[0], noise * math.sqrt(1 - 1 / (1 + 10.0**2)))
    assert torch.equal(res.x, res.trajectory[-1])


def test_annealed_langevin_is_reproducible_with_a_generator(ring8, cosine):
    eps = oracle.eps_fn(ring8, cosine)
    noise = torch.randn(50, 2, generator=gen(0))
    a = annealed_langevin(eps, cosine, noise, levels=3, steps_per_level=5, generator=gen(1))
    b = annealed_langevin(eps, cosine, noise, levels=3, steps_per_level=5, generator=gen(1))
    assert torch.equal(a.x, b.x)


@pytest.mark.parametrize("kwargs, name", [
    ({"levels": 0}, "levels"),
    ({"steps_per_level": 0}, "steps_per_level"),
    ({"step_size": 0.0}, "step_size"),
    ({"sigma_max": 1e6}, "sigma_max"),
    ({"sigma_min": 1e-6}, "sigma_min"),
    ({"sigma_max": 0.1, "sigma_min": 1.0}, "sigma_max"),
])
def test_annealed_langevin_rejects_bad_arguments_by_name(ring8, cosine, kwargs, name):
    eps = oracle.eps_fn(ring8, cosine)
    with pytest.raises(ValueError, match=name):
        annealed_langevin(eps, cosine, torch.zeros(3, 2), **kwargs)


def test_annealed_langevin_rejects_bad_types(ring8, cosine):
    eps = oracle.eps_fn(ring8, cosine)
    with pytest.raises(TypeError, match="eps_fn"):
        annealed_langevin(None, cosine, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="noise"):
        annealed_langevin(eps, cosine, [[0.0, 0.0]])
    with pytest.raises(TypeError, match="schedule"):
        annealed_langevin(eps, "cosine", torch.zeros(3, 2))
