import math

import pytest
import torch

from labkit import dsm, fields, oracle, targets
from tests.helpers import gen


def _noised(target, sigma, n, seed):
    x0, _ = target.sample(n, gen(seed))
    return x0 + sigma * torch.randn(x0.shape, generator=gen(seed + 1))


@pytest.fixture(scope="module")
def medium(ring8):
    return dsm.train_single_sigma(ring8, 0.5, steps=1000, seed=0)


@pytest.fixture(scope="module")
def small(ring8):
    return dsm.train_single_sigma(ring8, 0.05, steps=600, seed=0)


@pytest.mark.parametrize("sigma", [0.0, 0.05, 0.7, 4.0])
def test_mixture_score_is_the_gradient_of_mixture_log_prob_at_added_variance_sigma2(ring8, sigma):
    x = (3 * torch.rand(64, 2, generator=gen(0), dtype=torch.float64) - 1.5).requires_grad_()
    (grad,) = torch.autograd.grad(oracle.mixture_log_prob(ring8, x, sigma**2).sum(), x)
    torch.testing.assert_close(oracle.mixture_score(ring8, x.detach(), sigma**2), grad, rtol=1e-9, atol=1e-9)


def test_smoothed_log_prob_is_a_normalised_density(ring8):
    # Riemann sum of p_sigma over a box that holds all but a negligible part of its mass.
    axis = torch.linspace(-5, 5, 401, dtype=torch.float64)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    x = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    mass = oracle.mixture_log_prob(ring8, x, 0.5**2).exp().sum() * (axis[1] - axis[0]) ** 2
    assert float(mass) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("t", [5, 120, 400, 800])
def test_smoothed_score_is_the_vp_oracle_rescaled(ring8, cosine, t):
    # x_t = sqrt(abar_t) x~ with sigma = sigma_t, so
    # grad log p_t(x) = grad log p_sigma(x / sqrt(abar_t)) / sqrt(abar_t).
    abar, sigma = float(cosine.alphas_cumprod[t]), float(cosine.sigmas[t])
    x = 3 * torch.randn(100, 2, generator=gen(1), dtype=torch.float64)
    vp = oracle.MixtureEps(ring8, cosine).score(x, torch.full((100,), float(t), dtype=torch.float64))
    ve = oracle.mixture_score(ring8, x / math.sqrt(abar), sigma**2) / math.sqrt(abar)
    torch.testing.assert_close(vp, ve, rtol=1e-7, atol=1e-9)


def test_dsm_loss_minus_its_value_at_the_exact_score_is_the_explicit_score_matching_error(ring8):
    # Vincent 2011: E||sigma s(x~) + z||^2 = E||sigma (s(x~) - grad log p_sigma(x~))||^2 + C.
    sigma, n = 0.4, 100_000
    x0, _ = ring8.sample(n, gen(2))
    x0 = x0.double()
    z = torch.randn(x0.shape, generator=gen(3), dtype=torch.float64)

    def exact(x):
        return oracle.mixture_score(ring8, x, sigma**2)

    def off(x):
        return 0.8 * exact(x) + torch.tensor([0.3, -0.2], dtype=torch.float64)

    gap = dsm.dsm_loss(off, x0, sigma, z) - dsm.dsm_loss(exact, x0, sigma, z)
    xt = x0 + sigma * z
    esm = (sigma * (off(xt) - exact(xt))).square().sum(1).mean()
    assert float(gap) > 0
    assert float(gap) == pytest.approx(float(esm), rel=0.05)


def test_at_medium_sigma_the_learned_score_approximates_the_smoothed_score(ring8, medium):
    model, history = medium
    assert len(history) == 1000 and all(math.isfinite(v) for v in history)
    x = _noised(ring8, 0.5, 2000, seed=10)
    err = dsm.score_error(model, ring8, 0.5, x).mean()
    scale = (0.5 * oracle.mixture_score(ring8, x, 0.5**2)).norm(dim=1).mean()  # the error of s = 0
    assert float(err) < 0.25 * float(scale)


def test_at_small_sigma_the_learned_score_has_no_signal_far_from_the_data(ring8, small, medium):
    pts = fields.grid(3.0, 25)
    edges = [0.0, 0.3, 1.5, 4.0]
    near_s, _, far_s = dsm.error_by_distance(small[0], ring8, 0.05, pts, edges).tolist()
    _, _, far_m = dsm.error_by_distance(medium[0], ring8, 0.5, pts, edges).tolist()
    assert far_s > 3 * near_s  # the small-sigma net is wrong where no noised sample ever lands
    assert far_s > 3 * far_m   # the medium-sigma net, trained there, is not


def test_at_large_sigma_the_ring_merges_into_one_central_mode(ring8):
    angle = torch.linspace(0, 2 * math.pi, 721, dtype=torch.float64)[:-1]
    ring = 2.0 * torch.stack([angle.cos(), angle.sin()], 1)

    def contrast(sigma):  # log density between modes vs at the modes, along the ring
        lp = oracle.mixture_log_prob(ring8, ring, sigma**2)
        return float(lp.max() - lp.min())

    assert contrast(0.1) > 10 and contrast(3.0) < 1e-3
    radial = (oracle.mixture_score(ring8, ring, 3.0**2) * ring).sum(1) / 2.0
    assert (radial < 0).all()  # every arrow on the ring points inwards, towards the centre
    centre = torch.zeros(1, 2, dtype=torch.float64)
    assert oracle.mixture_log_prob(ring8, centre, 3.0**2) > oracle.mixture_log_prob(ring8, ring, 3.0**2).max()
    assert oracle.mixture_log_prob(ring8, centre, 0.1**2) < oracle.mixture_log_prob(ring8, ring, 0.1**2).max()


def test_training_is_deterministic_given_the_seed(ring8):
    a, ha = dsm.train_single_sigma(ring8, 1.0, steps=20, seed=5)
    b, hb = dsm.train_single_sigma(ring8, 1.0, steps=20, seed=5)
    x = torch.randn(10, 2, generator=gen(0))
    assert ha == hb
    torch.testing.assert_close(a(x), b(x))


def test_bad_input_names_the_parameter(ring8):
    with pytest.raises(ValueError, match="sigma"):
        dsm.train_single_sigma(ring8, 0.0, steps=1)
    with pytest.raises(ValueError, match="steps"):
        dsm.train_single_sigma(ring8, 0.5, steps=0)
    with pytest.raises(TypeError, match="target"):
        dsm.train_single_sigma("ring8", 0.5, steps=1)
    with pytest.raises(TypeError, match="Gaussian mixture"):
        oracle.mixture_score(targets.get("moons"), torch.zeros(3, 2), 0.25)
    with pytest.raises(ValueError, match="noise_var"):
        oracle.mixture_score(ring8, torch.zeros(3, 2), -1.0)
    with pytest.raises(ValueError, match="edges"):
        dsm.error_by_distance(lambda x: x, ring8, 0.5, torch.zeros(3, 2), [1.0, 0.5])
    out = dsm.error_by_distance(lambda x: x, ring8, 0.5, torch.zeros(3, 2), [0.0, 1.0, 3.0])
    assert math.isnan(out[0]) and math.isfinite(out[1])  # origin is at distance 2 from every mean


def test_training_restores_the_thread_setting(ring8):
    before = torch.get_num_threads()
    dsm.train_single_sigma(ring8, 1.0, steps=2)
    assert torch.get_num_threads() == before
