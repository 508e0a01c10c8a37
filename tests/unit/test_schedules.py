import math

import pytest
import torch

from labkit import schedules


def test_linear_betas_are_the_closed_form():
    s = schedules.linear(T=1000, beta_start=1e-4, beta_end=0.02)
    expected = [1e-4 + (0.02 - 1e-4) * t / 999 for t in range(1000)]
    assert s.betas.dtype == torch.float64
    assert torch.allclose(s.betas, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    abar = 1.0
    for t in (0, 1, 500, 999):
        abar = math.prod(1 - b for b in expected[: t + 1])
        assert s.alphas_cumprod[t].item() == pytest.approx(abar, rel=1e-12)
        assert s.sigmas[t].item() == pytest.approx(math.sqrt((1 - abar) / abar), rel=1e-12)


def test_cosine_abar_follows_nichol_dhariwal_where_betas_are_not_clipped():
    T, s_off = 1000, 0.008
    s = schedules.cosine(T=T, s=s_off)

    def f(u):
        return math.cos((u + s_off) / (1 + s_off) * math.pi / 2) ** 2

    for t in (0, 10, 250, 500, 900, 990):
        assert s.alphas_cumprod[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)


def test_cosine_betas_are_clipped_at_max_beta():
    s = schedules.cosine(T=1000, max_beta=0.999)
    assert s.betas.max().item() == 0.999
    assert s.betas[-1].item() == 0.999
    tighter = schedules.cosine(T=1000, max_beta=0.5)
    assert tighter.betas.max().item() == 0.5
    assert (tighter.betas == 0.5).sum() > 1


def test_cosine_sigma_max_is_about_2e4():
    s = schedules.cosine()
    assert 1e-9 < s.alphas_cumprod[-1].item() < 5e-9
    assert 1.5e4 < s.sigma_max < 2.5e4


@pytest.mark.parametrize("make", [schedules.linear, schedules.cosine])
def test_abar_strictly_decreasing_and_sigma_increasing(make):
    s = make()
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()
    assert (s.sigmas[1:] > s.sigmas[:-1]).all()
    assert s.T == len(s.betas) == len(s.alphas_cumprod) == len(s.sigmas) == 1000


@pytest.mark.parametrize("make", [schedules.linear, schedules.cosine])
def test_sigma_to_t_inverts_the_grid_exactly_at_integers(make):
    s = make()
    t = s.sigma_to_t(s.sigmas)
    assert torch.allclose(t, torch.arange(s.T, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("make", [schedules.linear, schedules.cosine])
def test_sigma_to_t_is_monotone_and_inverse_of_t_to_sigma(make):
    s = make()
    sigma = torch.logspace(math.log10(s.sigma_min), math.log10(s.sigma_max), 5000, dtype=torch.float64)
    sigma = sigma.clamp(s.sigma_min, s.sigma_max)
    t = s.sigma_to_t(sigma)
    assert (t[1:] >= t[:-1]).all()
    assert torch.allclose(s.t_to_sigma(t), sigma, rtol=1e-9)


def test_sigma_to_t_interpolates_log_sigma_linearly():
    s = schedules.linear()
    mid = (s.sigmas[10].log() + s.sigmas[11].log()).div(2).exp()
    assert s.sigma_to_t(mid).item() == pytest.approx(10.5, abs=1e-9)


def test_q_sample_matches_the_closed_form(ring8, cosine):
    x0, _ = ring8.sample(4, torch.Generator().manual_seed(0))
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 10, 500, 999])
    xt = cosine.q_sample(x0, t, noise)
    abar = cosine.alphas_cumprod[t].float()[:, None]
    assert torch.allclose(xt, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)


def test_last_t_below_sigma_max(cosine):
    t_max = cosine.last_t_below(80.0)
    assert cosine.sigmas[t_max] <= 80.0 < cosine.sigmas[t_max + 1]
    assert cosine.last_t_below(None) == cosine.T - 1


def test_q_sample_without_checks_is_the_same_formula(cosine):
    x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    assert torch.equal(cosine.q_sample(x0, t, noise, check=False), cosine.q_sample(x0, t, noise))
    abar = cosine.alphas_cumprod[t][:, None]
    torch.testing.assert_close(cosine.q_sample(x0.double(), t, noise.double()),
                               abar.sqrt() * x0.double() + (1 - abar).sqrt() * noise.double())
