import torch

from labkit import oracle, schedules
from tests.conftest import gen


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
