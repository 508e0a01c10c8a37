import math

import pytest
import torch

from labkit import metrics, oracle, samplers, schedules
from tests.helpers import gen

N = 1000


@pytest.fixture(scope="module")
def exact(ring8, cosine):
    return oracle.eps_fn(ring8, cosine)


@pytest.fixture(scope="module")
def floor(ring8):
    return metrics.noise_floor(ring8, N, repeats=6, generator=gen(123))


def _mean_mmd(ring8, sample, seeds=(0, 1, 2)):
    values = []
    for s in seeds:
        noise = torch.randn(N, 2, generator=gen(10 + s), dtype=torch.float64)
        values.append(metrics.mmd2(sample(noise, gen(20 + s)), ring8.sample(N, gen(30 + s))[0]))
    return sum(values) / len(values)


def test_ddpm_on_the_exact_score_reaches_the_noise_floor(ring8, cosine, exact, floor):
    mmd = _mean_mmd(ring8, lambda z, g: samplers.ddpm(exact, cosine, z, generator=g).x)
    assert mmd <= floor.threshold, (mmd, floor)


@pytest.mark.parametrize("name", ["ddim", "heun"])
def test_16_step_samplers_on_the_exact_score_reach_the_noise_floor(ring8, cosine, exact, floor, name):
    mmd = _mean_mmd(ring8, lambda z, g: samplers.run(name, exact, cosine, z, 16).x)
    assert mmd <= floor.threshold, (mmd, floor)


def test_few_steps_are_measurably_worse_than_the_floor(ring8, cosine, exact, floor):
    # The floor test above can fail: 2-step DDIM is far from the target.
    mmd = _mean_mmd(ring8, lambda z, g: samplers.ddim(exact, cosine, z, 2).x)
    assert mmd > 5 * floor.threshold


def _slope(name, exact, cosine, noise, reference):
    err = [(samplers.run(name, exact, cosine, noise, n).x - reference).norm(dim=1).mean().item() for n in (32, 128)]
    return math.log(err[0] / err[1]) / math.log(128 / 32)


def test_heun_is_second_order_and_ddim_first_order_on_the_exact_score(cosine, exact):
    noise = torch.randn(400, 2, generator=gen(5), dtype=torch.float64)
    reference = samplers.heun(exact, cosine, noise, 1024).x
    assert _slope("heun", exact, cosine, noise, reference) >= 1.7
    assert 0.8 <= _slope("ddim", exact, cosine, noise, reference) <= 1.2


def test_nfe_and_trajectory_lengths(cosine, exact):
    noise = torch.randn(10, 2, generator=gen(0), dtype=torch.float64)
    for steps in (1, 2, 7):
        h = samplers.heun(exact, cosine, noise, steps)
        assert h.nfe == 2 * steps - 1 and len(h.trajectory) == steps + 1
        d = samplers.ddim(exact, cosine, noise, steps)
        assert d.nfe == steps and len(d.trajectory) == steps + 1
        assert torch.equal(h.trajectory[-1], h.x) and torch.equal(d.trajectory[-1], d.x)
    p = samplers.ddpm(exact, schedules.linear(T=50), noise, generator=gen(0), sigma_max=None)
    assert p.nfe == 50 and len(p.trajectory) == 51 and torch.equal(p.trajectory[0], noise)


@pytest.mark.parametrize("name", samplers.SAMPLERS)
def test_without_the_trajectory_the_samples_are_identical(cosine, exact, name):
    schedule = schedules.linear(T=50) if name == "ddpm" else cosine
    noise = torch.randn(10, 2, generator=gen(0), dtype=torch.float64)
    kept = samplers.run(name, exact, schedule, noise, 5, generator=gen(1))
    dropped = samplers.run(name, exact, schedule, noise, 5, generator=gen(1), keep_trajectory=False)
    assert torch.equal(kept.x, dropped.x) and kept.nfe == dropped.nfe
    assert dropped.trajectory == [] and len(kept.trajectory) > 2
    with pytest.raises(TypeError, match="keep_trajectory"):
        samplers.run(name, exact, schedule, noise, 5, keep_trajectory="no")


def test_trajectory_follows_an_eps_fn_that_promotes_the_dtype(cosine, exact):
    def eps64(x, t):  # float64 eps for float32 x: x becomes float64 after the first step
        return exact(x.double(), t.double())

    noise = torch.randn(6, 2, generator=gen(0))
    result = samplers.ddim(eps64, cosine, noise, 4)
    start = noise * math.sqrt(1 - float(cosine.alphas_cumprod[samplers.ddim_timesteps(cosine, 4)[0]]))
    assert result.x.dtype == torch.float64 and len(result.trajectory) == 5
    assert all(x.dtype == torch.float64 for x in result.trajectory)
    assert torch.equal(result.trajectory[0], start.double()) and torch.equal(result.trajectory[-1], result.x)


def test_counted_model_calls_match_nfe(cosine, exact):
    calls = []

    def counting(x, t):
        calls.append(len(x))
        return exact(x, t)

    noise = torch.randn(5, 2, generator=gen(0), dtype=torch.float64)
    assert samplers.heun(counting, cosine, noise, 9).nfe == len(calls) == 17


def test_ddim_trailing_timesteps_follow_lin_et_al(cosine):
    t_max = cosine.last_t_below(80.0)
    ts = samplers.ddim_timesteps(cosine, 10, 80.0)
    assert ts == [round((t_max + 1) * (1 - i / 10)) - 1 for i in range(10)]
    assert ts[0] == t_max and ts == sorted(ts, reverse=True)
    assert samplers.ddim_timesteps(cosine, 4, None) == [999, 749, 499, 249]


def test_ddim_and_heun_start_from_the_same_point(cosine, exact):
    noise = torch.randn(6, 2, generator=gen(0), dtype=torch.float64)
    d = samplers.ddim(exact, cosine, noise, 8)
    t_max = cosine.last_t_below(80.0)
    assert torch.allclose(d.trajectory[0], noise * (1 - cosine.alphas_cumprod[t_max]).sqrt())
    h = samplers.heun(exact, cosine, noise, 8)
    assert torch.allclose(h.trajectory[0], noise * 80.0 / math.sqrt(1 + 80.0**2))
    assert torch.allclose(d.trajectory[0], h.trajectory[0], rtol=1e-2)


def test_ddim_eta_one_is_stochastic_and_eta_zero_deterministic(cosine, exact):
    noise = torch.randn(50, 2, generator=gen(0), dtype=torch.float64)
    a = samplers.ddim(exact, cosine, noise, 8, eta=0.0, generator=gen(1)).x
    b = samplers.ddim(exact, cosine, noise, 8, eta=0.0, generator=gen(2)).x
    c = samplers.ddim(exact, cosine, noise, 8, eta=1.0, generator=gen(1)).x
    d = samplers.ddim(exact, cosine, noise, 8, eta=1.0, generator=gen(2)).x
    assert torch.equal(a, b) and not torch.allclose(c, d)


def test_one_ddim_step_is_an_euler_step_of_the_probability_flow_ode(cosine, exact):
    # In x_sigma = x_t / sqrt(abar_t), DDIM(eta = 0) moves by (sigma_s - sigma_t) eps (Song et al. 2021; Karras 2022).
    x = torch.randn(20, 2, generator=gen(0), dtype=torch.float64)
    t, s = 700, 300
    abar_t, abar_s = cosine.alphas_cumprod[t].item(), cosine.alphas_cumprod[s].item()
    eps = exact(x, torch.full((20,), float(t), dtype=torch.float64))
    x0_hat = (x - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
    ddim_step = math.sqrt(abar_s) * x0_hat + math.sqrt(1 - abar_s) * eps
    euler = (x / math.sqrt(abar_t) + (cosine.sigmas[s] - cosine.sigmas[t]).item() * eps) * math.sqrt(abar_s)
    assert torch.allclose(ddim_step, euler, atol=1e-12)


def test_karras_sigmas_rho7():
    sig = samplers.karras(5, 0.002, 80.0, 7.0)
    assert sig[0] == pytest.approx(80.0) and sig[-2] == pytest.approx(0.002) and sig[-1] == 0.0
    ramp = [(s ** (1 / 7)) for s in sig[:-1]]
    gaps = [a - b for a, b in zip(ramp, ramp[1:])]
    assert max(gaps) - min(gaps) < 1e-12  # equally spaced in sigma^(1/rho)


def test_heun_lowers_sigma_max_to_the_schedule(cosine, exact):
    lin = schedules.linear()
    noise = torch.randn(4, 2, generator=gen(0), dtype=torch.float64)
    r = samplers.heun(oracle.eps_fn(__import__("labkit.targets").targets.get("ring8"), lin), lin, noise, 3,
                      sigma_max=1e6)
    assert torch.isfinite(r.x).all()
    assert torch.allclose(r.trajectory[0], noise * lin.sigma_max / math.sqrt(1 + lin.sigma_max**2))


# ---- the sampling core: grids x solvers, checked against float64 references of the papers' updates ----

def _references(exact, cosine, sigmas, x):
    """Float64 reference loops in VE coordinates on the given sigmas (x: the VE start)."""
    def eps(x, sigma):
        t = cosine.sigma_to_t(torch.tensor([sigma], dtype=torch.float64)).expand(len(x))
        return exact(x / math.sqrt(1 + sigma**2), t)

    euler, heun, dpm = x.clone(), x.clone(), x.clone()
    old = None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        euler = euler + (s_next - s) * eps(euler, s)
        d = eps(heun, s)
        x_next = heun + (s_next - s) * d
        heun = x_next if s_next == 0 else heun + (s_next - s) * (d + eps(x_next, s_next)) / 2
        denoised = dpm - s * eps(dpm, s)
        if old is None or s_next == 0:
            dpm = denoised if s_next == 0 else (s_next / s) * dpm - math.expm1(-math.log(s / s_next)) * denoised
        else:
            h, h_last = math.log(s / s_next), math.log(sigmas[i - 1] / s)
            r = h_last / h
            d_prime = (1 + 1 / (2 * r)) * denoised - 1 / (2 * r) * old
            dpm = (s_next / s) * dpm - math.expm1(-h) * d_prime
        old = denoised
    return {"ddim": euler, "heun": heun, "dpmpp_2m": dpm}


@pytest.mark.parametrize("grid", ["trailing", "karras"])
@pytest.mark.parametrize("name", ["ddim", "heun", "dpmpp_2m"])
def test_every_solver_on_either_grid_equals_its_float64_reference(cosine, exact, grid, name):
    noise = torch.randn(50, 2, generator=gen(7), dtype=torch.float64)
    steps = 6
    sigmas = samplers.sigma_grid(cosine, steps, grid)
    reference = _references(exact, cosine, sigmas, noise * sigmas[0])[name]
    out = samplers.run(name, exact, cosine, noise, steps, grid=grid)
    assert torch.allclose(out.x, reference, atol=1e-10, rtol=0), (out.x - reference).abs().max()
    assert out.nfe == {"ddim": steps, "heun": 2 * steps - 1, "dpmpp_2m": steps}[name]
    assert len(out.trajectory) == steps + 1
    assert torch.allclose(out.trajectory[0], noise * sigmas[0] / math.sqrt(1 + sigmas[0] ** 2))


def test_the_grids_follow_their_papers(cosine):
    trailing = samplers.trailing(cosine, 8)
    assert trailing[:-1] == [float(cosine.sigmas[t]) for t in samplers.ddim_timesteps(cosine, 8)]
    assert trailing[-1] == 0.0 and trailing[0] <= 80.0
    karras = samplers.sigma_grid(cosine, 8, "karras")
    assert karras[0] == 80.0 and karras[-2] == pytest.approx(cosine.sigma_min) and karras[-1] == 0.0
    for grid in (trailing, karras):
        assert all(a > b for a, b in zip(grid, grid[1:]))
    assert samplers.sigma_grid(cosine, 4, "karras", sigma_max=None)[0] == pytest.approx(cosine.sigma_max)


def _ddpm_reference(eps_fn, schedule, noise, generator):
    """Ho et al. 2020, Algorithm 2 in VP coordinates, as written in the paper (posterior variance beta~)."""
    betas, abar = schedule.betas, schedule.alphas_cumprod
    x = noise
    for t in range(schedule.T - 1, -1, -1):
        eps_hat = eps_fn(x, torch.full((len(x),), float(t), dtype=x.dtype))
        x = (x - betas[t] / (1 - abar[t]).sqrt() * eps_hat) / (1 - betas[t]).sqrt()
        if t > 0:
            beta_tilde = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
            x = x + beta_tilde.sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


def test_ddpm_is_ho_et_al_algorithm_2(ring8):
    schedule = schedules.linear(T=60)
    exact = oracle.eps_fn(ring8, schedule)
    noise = torch.randn(40, 2, generator=gen(3), dtype=torch.float64)
    out = samplers.ddpm(exact, schedule, noise, sigma_max=None, generator=gen(4))
    assert torch.allclose(out.x, _ddpm_reference(exact, schedule, noise, gen(4)), atol=1e-10, rtol=0)
    assert out.nfe == 60


def test_ddim_with_eta_is_song_et_al_eq_12(cosine, exact):
    noise = torch.randn(40, 2, generator=gen(3), dtype=torch.float64)
    eta, ts = 0.5, samplers.ddim_timesteps(cosine, 5)
    abar = cosine.alphas_cumprod.tolist()
    x, g = noise * math.sqrt(1 - abar[ts[0]]), gen(9)
    for i, t in enumerate(ts):
        abar_s = abar[ts[i + 1]] if i + 1 < len(ts) else 1.0
        eps_hat = exact(x, torch.full((40,), float(t), dtype=torch.float64))
        x0_hat = (x - math.sqrt(1 - abar[t]) * eps_hat) / math.sqrt(abar[t])
        sigma = eta * math.sqrt((1 - abar_s) / (1 - abar[t]) * (1 - abar[t] / abar_s))
        x = math.sqrt(abar_s) * x0_hat + math.sqrt(1 - abar_s - sigma**2) * eps_hat
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)
    out = samplers.ddim(exact, cosine, noise, 5, eta=eta, generator=gen(9))
    assert torch.allclose(out.x, x, atol=1e-9, rtol=0), (out.x - x).abs().max()


def test_ddpm_starting_at_sigma_max_80_escapes_the_error_amplification_of_the_last_betas(cosine, exact):
    # A finite model whose eps is off by 0.3 only at the noisiest timesteps (t > 990, sigma_t > 80):
    # there the cosine schedule's betas (up to 0.999) multiply that error by ~30 in one step, throwing
    # points far outside the region |x| <~ 4.5 where N(0, I) noise and the data live (and a learned
    # model was trained). Starting at sigma_max = 80 (the default) never visits those steps.
    def biased(x, t):
        return exact(x, t) + 0.3 * (t > 990).to(x.dtype)[:, None]

    noise = torch.randn(1000, 2, generator=gen(1), dtype=torch.float64)

    def farthest(**kwargs):
        out = samplers.ddpm(biased, cosine, noise, generator=gen(2), **kwargs)
        return float(torch.stack(out.trajectory).norm(dim=2).max())

    assert farthest(sigma_max=None) > 10 > 5 > farthest()
    assert samplers.ddpm(exact, cosine, noise[:5], keep_trajectory=False).nfe == cosine.last_t_below(80.0) + 1


def test_a_non_finite_sample_is_reported(cosine):
    def blows_up(x, t):
        return torch.where(x[:, :1] > 0, torch.full_like(x, float("inf")), x)

    noise = torch.randn(20, 2, generator=gen(0), dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="not finite"):
        samplers.ddim(blows_up, cosine, noise, 4)


def test_nfe_counts_network_forwards_of_a_guided_eps(cosine, exact):
    def guided(x, t):
        return exact(x, t)

    guided.forwards = 2  # what labkit.guidance.cfg sets for w > 0: conditional and null halves
    noise = torch.randn(5, 2, generator=gen(0), dtype=torch.float64)
    assert samplers.heun(guided, cosine, noise, 4).nfe == 2 * (2 * 4 - 1)
    assert samplers.ddim(guided, cosine, noise, 4).nfe == 8


def test_the_registry_is_the_one_list_of_samplers(cosine, exact):
    import matplotlib.colors

    noise = torch.randn(5, 2, generator=gen(0), dtype=torch.float64)
    labels = [info.label for info in samplers.SAMPLERS.values()]
    assert len(set(labels)) == len(labels)
    for name, info in samplers.SAMPLERS.items():
        assert matplotlib.colors.is_color_like(info.colour)
        grids = samplers.GRIDS if info.takes_steps else [None]
        for grid in grids:
            kwargs = {"grid": grid} if grid else {}
            out = samplers.run(name, exact, cosine, noise, 4, generator=gen(1), **kwargs)
            assert out.x.shape == noise.shape and torch.isfinite(out.x).all()
    with pytest.raises(ValueError, match="sampler"):
        samplers.run("nope", exact, cosine, noise, 4)
    with pytest.raises(ValueError, match="grid"):
        samplers.heun(exact, cosine, noise, 4, grid="uniform")
    with pytest.raises(ValueError, match="rho"):
        samplers.heun(exact, cosine, noise, 4, grid="trailing", rho=5.0)


def test_dpmpp_2m_sde_without_its_second_order_term_is_ddpm_posterior_step(cosine, exact):
    noise = torch.randn(40, 2, generator=gen(3), dtype=torch.float64)
    # On two steps (sigma_max, sigma_min, 0) no D_{i-1} exists before the last step: euler_a's steps, the same draws
    sde = samplers.dpmpp_2m_sde(exact, cosine, noise, 2, generator=gen(4))
    ancestral = samplers.euler_a(exact, cosine, noise, 2, generator=gen(4))
    assert torch.allclose(sde.x, ancestral.x, atol=1e-12, rtol=0) and sde.nfe == 2
    three = samplers.dpmpp_2m_sde(exact, cosine, noise, 3, generator=gen(4)).x
    assert (three - samplers.euler_a(exact, cosine, noise, 3, generator=gen(4)).x).abs().max() > 1e-3


def test_dpmpp_2m_sde_is_second_order_and_euler_a_first_in_a_gaussian_targets_variance(cosine):
    """On N(0, s^2 I) with its exact score, the error of the samples' variance falls about 4x per doubling of
    N for SDE-DPM-Solver++(2M) (weak order 2) and about 2x for Euler ancestral (order 1)."""
    s2 = 0.25

    def gaussian(x, t):  # E[eps | x_t] for x_0 ~ N(0, s2 I): sqrt(1 - abar) x_t / (abar s2 + 1 - abar)
        abar = cosine.abar(t)[:, None]
        return (1 - abar).sqrt() * x / (abar * s2 + 1 - abar)

    noise = torch.randn(500_000, 2, generator=gen(5), dtype=torch.float64)  # variance to about 4e-4

    def variance_error(name, steps):
        x = samplers.run(name, gaussian, cosine, noise, steps, generator=gen(6), keep_trajectory=False).x
        return abs(float(x.var()) - s2)

    for name, low, high in (("dpmpp_2m_sde", 3.0, 6.0), ("euler_a", 1.5, 2.5)):
        ratio = variance_error(name, 32) / variance_error(name, 64)
        assert low < ratio < high, (name, ratio)
