import pytest
import torch

from labkit import oracle, schedules, targets
from tests.helpers import gen


def _log_p_t(target, schedule, x, t, c=None):
    """log p_t(x) of the noised mixture written directly with torch.distributions."""
    abar = float(schedule.abar(torch.tensor(float(t), dtype=torch.float64)))
    keep = torch.ones(len(target.means), dtype=torch.bool) if c is None else target.component_classes == c
    comps = torch.distributions.Independent(torch.distributions.Normal(
        abar**0.5 * target.means[keep], (abar * target.stds[keep] ** 2 + 1 - abar).sqrt()[:, None].expand(-1, 2)), 1)
    mix = torch.distributions.Categorical(probs=target.weights[keep] / target.weights[keep].sum())
    return torch.distributions.MixtureSameFamily(mix, comps).log_prob(x)


def test_exact_score_equals_autograd_of_the_noised_log_density(ring8):
    s = schedules.cosine()
    eps = oracle.MixtureEps(ring8, s)
    x = 3 * torch.randn(64, 2, generator=gen(0), dtype=torch.float64)
    for t in (0.0, 3.5, 100.0, 600.25, 999.0):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_log_p_t(ring8, s, xr, t).sum(), xr)
        tt = torch.full((64,), t, dtype=torch.float64)
        assert torch.allclose(eps.score(x, tt), grad, rtol=1e-8, atol=1e-8)
        abar = float(s.abar(torch.tensor(t, dtype=torch.float64)))
        assert torch.allclose(eps(x, tt), -((1 - abar) ** 0.5) * grad, rtol=1e-8, atol=1e-8)


def test_class_conditional_score_uses_only_that_class(ring8):
    s = schedules.linear()
    eps = oracle.MixtureEps(ring8, s)
    x = torch.randn(32, 2, generator=gen(1), dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_log_p_t(ring8, s, xr, 50, c=3).sum(), xr)
    got = eps.score(x, torch.full((32,), 50.0, dtype=torch.float64), torch.full((32,), 3))
    assert torch.allclose(got, grad, rtol=1e-8, atol=1e-8)
    null = eps.score(x, torch.full((32,), 50.0, dtype=torch.float64), torch.full((32,), ring8.num_classes))
    assert torch.allclose(null, eps.score(x, torch.full((32,), 50.0, dtype=torch.float64)))


def test_ideal_eps_is_the_posterior_mean_of_the_noise(ring8):
    # E[eps | x_t] = eps*(x_t): regress eps on x_t by averaging over many draws landing near a point.
    s = schedules.cosine()
    t = 600
    x0, _ = ring8.sample(1_000_000, gen(2))
    noise = torch.randn(x0.shape, generator=gen(3))
    xt = s.q_sample(x0.double(), t, noise.double())
    probe = torch.tensor([[0.6, 0.3]], dtype=torch.float64)
    near = (xt - probe).norm(dim=1) < 0.1
    assert near.sum() > 200
    exact = oracle.MixtureEps(ring8, s)(probe, torch.tensor([float(t)], dtype=torch.float64))
    assert torch.allclose(noise[near].double().mean(0), exact[0], atol=0.1)


def test_mixture_score_is_autograd_of_the_mixture_log_density_at_any_added_variance_and_scale(ring8):
    x = 3 * torch.randn(40, 2, generator=gen(4), dtype=torch.float64)
    for noise_var, scale in ((0.0, 1.0), (0.01, 1.0), (0.7, 1.0), (25.0, 1.0), (0.36, 0.8), (0.99, 0.1)):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(oracle.mixture_log_prob(ring8, xr, noise_var, scale).sum(), xr)
        torch.testing.assert_close(oracle.mixture_score(ring8, x, noise_var, scale), grad, rtol=1e-9, atol=1e-9)
        # ... and the density is the mixture of N(a mu_k, (a^2 s_k^2 + v) I) written with torch.distributions.
        comps = torch.distributions.Independent(torch.distributions.Normal(
            scale * ring8.means, (scale**2 * ring8.stds**2 + noise_var).sqrt()[:, None].expand(-1, 2)), 1)
        mix = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=ring8.weights), comps)
        torch.testing.assert_close(oracle.mixture_log_prob(ring8, x, noise_var, scale), mix.log_prob(x))


def test_the_vp_oracle_is_the_mixture_at_scale_sqrt_abar_and_noise_variance_one_minus_abar(ring8, cosine):
    x = torch.randn(30, 2, generator=gen(5), dtype=torch.float64)
    for t in (10, 500):
        abar = float(cosine.alphas_cumprod[t])
        vp = oracle.MixtureEps(ring8, cosine).score(x, torch.full((30,), float(t), dtype=torch.float64))
        torch.testing.assert_close(vp, oracle.mixture_score(ring8, x, 1 - abar, abar**0.5), rtol=1e-9, atol=1e-9)


def test_nearest_mode_gives_the_index_and_distance_of_the_closest_mean(ring8):
    k = torch.tensor([0, 3, 7, 5])
    offset = torch.tensor([[0.1, 0.0], [0.0, -0.2], [0.05, 0.05], [0.0, 0.0]], dtype=torch.float64)
    index, distance = oracle.nearest_mode(ring8, ring8.means[k] + offset)
    assert torch.equal(index, k)
    torch.testing.assert_close(distance, offset.norm(dim=1))
    with pytest.raises(TypeError, match="Gaussian mixture"):
        oracle.nearest_mode(targets.get("moons"), torch.zeros(2, 2))


def test_bad_mixture_arguments_are_named(ring8):
    with pytest.raises(ValueError, match="noise_var"):
        oracle.mixture_log_prob(ring8, torch.zeros(2, 2), -0.1)
    with pytest.raises(ValueError, match="scale"):
        oracle.mixture_score(ring8, torch.zeros(2, 2), 0.1, 0.0)
    with pytest.raises(ValueError, match="x"):
        oracle.mixture_score(ring8, torch.zeros(2, 3), 0.1)
    with pytest.raises(ValueError, match="classes"):
        exact = oracle.MixtureEps(ring8, schedules.cosine())
        exact(torch.zeros(2, 2), torch.zeros(2), torch.zeros(3, dtype=torch.long))
