import math

import pytest
import torch

from labkit import metrics, oracle, samplers, schedules
from tests.conftest import gen

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
    p = samplers.ddpm(exact, schedules.linear(T=50), noise, generator=gen(0))
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
    sig = samplers.karras_sigmas(5, 0.002, 80.0, 7.0)
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
