import pytest
import torch

from labkit import oracle
from labkit.diagnostics import dsm_loss_by_t, eps_error_by_t, mode_stats
from tests.helpers import gen


def test_a_constant_eps_offset_shows_as_that_error_at_every_t(ring8, cosine):
    exact = oracle.eps_fn(ring8, cosine)

    def off(x, t):
        return exact(x, t) + 0.1

    ts = [0, 100, 500, 999]
    err = eps_error_by_t(off, exact, cosine, ring8, ts, n=200, generator=gen(0))
    assert err.t.tolist() == ts
    assert err.eps_mse.tolist() == pytest.approx([0.01] * 4, rel=1e-4)
    # In score space the same eps error is amplified by 1 / (1 - abar_t), most at small t.
    expected = 0.01 / (1 - cosine.alphas_cumprod[ts])
    assert torch.allclose(err.score_mse, expected, rtol=1e-4)
    assert err.score_mse[0] > 100 * err.score_mse[-1]


def test_the_exact_eps_has_zero_error_and_a_zero_eps_does_not(ring8, cosine):
    exact = oracle.eps_fn(ring8, cosine)
    ts = [500, 999]
    assert eps_error_by_t(exact, exact, cosine, ring8, ts, n=100, generator=gen(0)).eps_mse.tolist() == [0.0, 0.0]
    # At t = T - 1, x_t is almost pure noise and eps*(x_t) is almost x_t itself, of unit variance.
    zero = eps_error_by_t(lambda x, t: torch.zeros_like(x), exact, cosine, ring8, ts, n=1000, generator=gen(0))
    assert zero.eps_mse[0] > 0.2
    assert zero.eps_mse[1] == pytest.approx(1.0, abs=0.1)


def test_dsm_loss_of_the_exact_eps_matches_the_gaussian_closed_form_at_small_t(ring8, cosine):
    # While the modes are far apart, p_t is locally one Gaussian of variance v = abar s^2 + 1 - abar
    # and the least achievable loss per coordinate is E Var[eps | x_t] = abar s^2 / v.
    exact = oracle.eps_fn(ring8, cosine)
    ts = [0, 20, 50]
    loss = dsm_loss_by_t(exact, cosine, ring8, ts, n=4000, generator=gen(1))
    abar = cosine.alphas_cumprod[ts]
    bound = abar * 0.01 / (abar * 0.01 + 1 - abar)
    assert torch.allclose(loss, bound, rtol=0.08)
    # A predictor of zero pays the full variance of eps, E eps^2 = 1.
    zero = dsm_loss_by_t(lambda x, t: torch.zeros_like(x), cosine, ring8, [300], n=4000, generator=gen(2))
    assert zero.item() == pytest.approx(1.0, abs=0.05)


def test_diagnostics_reject_bad_timesteps_and_sizes(ring8, cosine):
    exact = oracle.eps_fn(ring8, cosine)
    with pytest.raises(ValueError, match="ts"):
        eps_error_by_t(exact, exact, cosine, ring8, [0, 1000])
    with pytest.raises(TypeError, match="ts"):
        dsm_loss_by_t(exact, cosine, ring8, [0.5])
    with pytest.raises(TypeError, match="ts"):
        dsm_loss_by_t(exact, cosine, ring8, [])
    with pytest.raises(ValueError, match="n"):
        dsm_loss_by_t(exact, cosine, ring8, [0], n=0)
    with pytest.raises(TypeError, match="target"):
        dsm_loss_by_t(exact, cosine, "ring8", [0])


def test_mode_stats_recover_the_weights_and_sd_of_ring8_and_see_blur(ring8):
    x, _ = ring8.sample(8000, gen(4))
    stats = mode_stats(x, ring8)
    assert stats.shares.sum().item() == pytest.approx(1.0)
    assert torch.allclose(stats.shares, ring8.weights, atol=0.015)
    assert stats.rms_distance == pytest.approx(0.1, rel=0.03)
    blurred = mode_stats(x + 0.2 * torch.randn(x.shape, generator=gen(5)), ring8)
    assert blurred.rms_distance == pytest.approx((0.1**2 + 0.2**2) ** 0.5, rel=0.05)
    collapsed = mode_stats(ring8.means[torch.zeros(10, dtype=torch.long)].float(), ring8)
    assert collapsed.rms_distance == 0.0 and collapsed.shares[0] == 1.0
    with pytest.raises(TypeError, match="target"):
        mode_stats(x, "ring8")
