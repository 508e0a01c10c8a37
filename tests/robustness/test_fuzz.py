"""Property-based tests (hypothesis) of labkit's public math API.

For every entry point: random valid inputs give finite outputs of the documented shape and dtype,
and random invalid inputs give a ValueError or TypeError whose message names the parameter.
Schedules are tiny (T <= 40) and the eps function is the exact mixture eps of ring8 or a tiny
EpsMLP, so each example costs milliseconds. The corners the course's sliders reach are pinned with
``@example``: steps = 1 and the maximum, eta = 0 and 1, w = 0 and large, sigma_max above the
schedule's largest sigma and at its smallest, n = 1 and 2, identical points, float32 and float64.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from labkit import guidance, metrics, oracle, samplers, schedules, targets
from labkit.model import EpsMLP
from labkit.train import one_torch_thread
from tests.helpers import rejects

# 500 examples per entry point in the plain `python -m pytest` run; no deadline, since the
# machine is shared and a slow example is not a failure.
FUZZ = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

RING8 = targets.get("ring8")
SEEDS = st.integers(0, 2**31 - 1)
DTYPES = st.sampled_from([torch.float32, torch.float64])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one torch thread (two contend on a busy machine); restored after the module."""
    with one_torch_thread():
        yield


def finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


# ---------------------------------------------------------------- strategies

@st.composite
def small_schedules(draw, max_T=40):
    T = draw(st.integers(2, max_T))
    if draw(st.booleans()):
        beta_start = draw(st.floats(1e-5, 0.2))
        beta_end = draw(st.floats(beta_start, 0.6))
        return schedules.linear(T=T, beta_start=beta_start, beta_end=beta_end)
    return schedules.cosine(T=T, s=draw(st.floats(1e-4, 0.5)), max_beta=draw(st.floats(0.05, 0.999)))


def noise_of(n, dtype, seed, dim=2):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def tiny_model(T, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return EpsMLP(8, T=T, width=8, depth=1, time_dim=4, class_dim=2).to(dtype)


NOT_INTS = st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.none(),
                     st.just(torch.tensor(1.5)), st.just([1]))
NOT_REALS = st.one_of(st.text(max_size=3), st.booleans(), st.none(), st.just([1.0]), st.just(1j))
BAD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf])


# ---------------------------------------------------------------- targets

@FUZZ
@given(name=st.sampled_from(targets.names()), n=st.integers(1, 64), seed=SEEDS, mode=st.sampled_from(
    ["joint", "int", "tensor"]), data=st.data())
@example(name="ring8", n=1, seed=0, mode="joint", data=None)
def test_target_sample_gives_n_finite_points_and_labels(name, n, seed, mode, data):
    target = targets.get(name)
    g = torch.Generator().manual_seed(seed)
    classes = None
    if mode == "int" and data is not None:
        classes = data.draw(st.integers(0, target.num_classes - 1))
    elif mode == "tensor" and data is not None:
        classes = torch.tensor(data.draw(st.lists(st.integers(0, target.num_classes - 1), min_size=n, max_size=n)))
    x, c = target.sample(n, g, classes=classes)
    assert x.shape == (n, target.dim) and x.dtype == torch.float32 and finite(x)
    assert c.shape == (n,) and c.dtype == torch.long
    assert ((c >= 0) & (c < target.num_classes)).all()
    if classes is not None:
        assert torch.equal(c, torch.as_tensor(classes).expand(n))


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("name"), st.text(max_size=12).filter(lambda s: s not in targets.names())),
    st.tuples(st.just("name_type"), st.one_of(st.integers(), st.none(), st.lists(st.text(max_size=2)))),
    st.tuples(st.just("n"), st.one_of(st.integers(max_value=0), st.integers(10_000_001, 2**70), NOT_INTS)),
    st.tuples(st.just("classes_int"), st.one_of(st.integers(max_value=-1), st.integers(8, 10**6))),
    st.tuples(st.just("classes_shape"), st.integers(0, 9).filter(lambda k: k != 4)),
    st.tuples(st.just("classes_dtype"), st.sampled_from([torch.float32, torch.bool, torch.float64])),
    st.tuples(st.just("generator"), st.one_of(st.integers(), st.text(max_size=2))),
))
def test_targets_reject_bad_input_naming_the_parameter(case):
    kind, value = case
    if kind == "name":
        rejects(lambda: targets.get(value), "target")
    elif kind == "name_type":
        rejects(lambda: targets.get(value), "target")
    elif kind == "n":
        rejects(lambda: RING8.sample(value), "n")
    elif kind == "classes_int":
        rejects(lambda: RING8.sample(4, classes=value), "classes")
    elif kind == "classes_shape":
        rejects(lambda: RING8.sample(4, classes=torch.zeros(value, dtype=torch.long)), "classes")
    elif kind == "classes_dtype":
        rejects(lambda: RING8.sample(4, classes=torch.zeros(4, dtype=value)), "classes")
    else:
        rejects(lambda: RING8.sample(4, generator=value), "generator")


# ---------------------------------------------------------------- schedules

@FUZZ
@given(schedule=small_schedules(max_T=400))
def test_schedules_give_betas_in_0_1_and_increasing_finite_sigmas(schedule):
    assert schedule.betas.shape == (schedule.T,) and schedule.betas.dtype == torch.float64
    assert ((schedule.betas > 0) & (schedule.betas < 1)).all()
    abar = schedule.alphas_cumprod
    assert (abar[1:] < abar[:-1]).all() and (abar > 0).all() and (abar < 1).all()
    assert finite(schedule.sigmas) and (schedule.sigmas > 0).all()
    assert (schedule.sigmas[1:] > schedule.sigmas[:-1]).all()


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("T"), st.one_of(st.integers(max_value=1), st.integers(100_001, 2**40), NOT_INTS)),
    st.tuples(st.just("beta_start"), st.one_of(st.floats(max_value=0), st.floats(min_value=1), BAD_FLOATS,
                                               NOT_REALS)),
    st.tuples(st.just("beta_end"), st.one_of(st.floats(max_value=0.0099), st.floats(min_value=1), BAD_FLOATS)),
    st.tuples(st.just("s"), st.one_of(st.floats(max_value=0), st.floats(min_value=1.0001), BAD_FLOATS, NOT_REALS)),
    st.tuples(st.just("max_beta"), st.one_of(st.floats(max_value=0), st.floats(min_value=1), BAD_FLOATS)),
    # Valid-looking numbers whose abar_t rounds to 1 or underflows to 0 in float64.
    st.tuples(st.just("underflow"), st.sampled_from([(100_000, 0.5, 0.99), (50, 1e-20, 1e-19), (20_000, 0.9, 0.95)])),
))
def test_schedules_reject_bad_parameters_naming_them(case):
    kind, value = case
    if kind == "T":
        rejects(lambda: schedules.linear(T=value), "T")
        rejects(lambda: schedules.cosine(T=value), "T")
    elif kind == "beta_start":
        rejects(lambda: schedules.linear(T=10, beta_start=value), "beta_start", "beta_end")
    elif kind == "beta_end":
        rejects(lambda: schedules.linear(T=10, beta_start=0.01, beta_end=value), "beta_end")
    elif kind == "s":
        rejects(lambda: schedules.cosine(T=10, s=value), "s")
    elif kind == "max_beta":
        rejects(lambda: schedules.cosine(T=10, max_beta=value), "max_beta")
    else:
        T, b0, b1 = value
        rejects(lambda: schedules.linear(T=T, beta_start=b0, beta_end=b1), "T", "beta_start", "beta_end")


@FUZZ
@given(schedule=small_schedules(), n=st.integers(0, 16), dim=st.integers(1, 3), dtype=DTYPES, seed=SEEDS,
       scalar_t=st.booleans(), data=st.data())
def test_q_sample_is_the_closed_form_and_finite(schedule, n, dim, dtype, seed, scalar_t, data):
    x0 = 3 * noise_of(n, dtype, seed, dim)
    noise = noise_of(n, dtype, seed + 1, dim)
    if scalar_t:
        t = data.draw(st.integers(0, schedule.T - 1))
        t_idx = torch.full((n,), t)
    else:
        t = torch.tensor(data.draw(st.lists(st.integers(0, schedule.T - 1), min_size=n, max_size=n)),
                         dtype=torch.long)
        t_idx = t
    xt = schedule.q_sample(x0, t, noise)
    assert xt.shape == (n, dim) and xt.dtype == dtype and finite(xt)
    abar = schedule.alphas_cumprod[t_idx][:, None]
    expected = abar.sqrt() * x0.double() + (1 - abar).sqrt() * noise.double()
    assert torch.allclose(xt.double(), expected, rtol=1e-5, atol=1e-5)


@FUZZ
@given(schedule=small_schedules(), case=st.one_of(
    st.tuples(st.just("t_range"), st.one_of(st.integers(max_value=-1), st.integers(40, 10**9))),
    st.tuples(st.just("t_type"), st.one_of(st.floats(0, 3), st.text(max_size=2), st.booleans(),
                                            st.just(torch.tensor([0.5] * 4)))),
    st.tuples(st.just("t_shape"), st.integers(0, 9).filter(lambda k: k != 4)),
    st.tuples(st.just("noise"), st.sampled_from(["shape", "nan", "list", "int"])),
    st.tuples(st.just("x0"), st.sampled_from(["1d", "nan", "int", "list"])),
))
def test_q_sample_rejects_bad_input_naming_it(schedule, case):
    kind, value = case
    x0, noise = torch.zeros(4, 2), torch.zeros(4, 2)
    if kind == "t_range":
        assume(not 0 <= value < schedule.T)
        rejects(lambda: schedule.q_sample(x0, value, noise), "t")
    elif kind == "t_type":
        rejects(lambda: schedule.q_sample(x0, value, noise), "t")
    elif kind == "t_shape":
        rejects(lambda: schedule.q_sample(x0, torch.zeros(value, dtype=torch.long), noise), "t")
    elif kind == "noise":
        bad = {"shape": torch.zeros(3, 2), "nan": torch.full((4, 2), math.nan), "list": [[0.0, 0.0]] * 4,
               "int": torch.zeros(4, 2, dtype=torch.long)}[value]
        rejects(lambda: schedule.q_sample(x0, 1, bad), "noise")
    else:
        bad = {"1d": torch.zeros(4), "nan": torch.full((4, 2), math.nan), "int": torch.zeros(4, 2, dtype=torch.long),
               "list": [[0.0, 0.0]] * 4}[value]
        rejects(lambda: schedule.q_sample(bad, 1, noise), "x0")


@FUZZ
@given(schedule=small_schedules(), u=st.lists(st.floats(0, 1), min_size=1, max_size=8), as_scalar=st.booleans())
@example(schedule=schedules.cosine(T=20), u=[0.0, 1.0], as_scalar=False)
@example(schedule=schedules.linear(T=2), u=[1.0], as_scalar=True)
def test_sigma_to_t_inverts_t_to_sigma_over_the_whole_range(schedule, u, as_scalar):
    lo, hi = math.log(schedule.sigma_min), math.log(schedule.sigma_max)
    sigma = torch.tensor([math.exp(lo + v * (hi - lo)) for v in u], dtype=torch.float64).clamp(
        schedule.sigma_min, schedule.sigma_max)
    if as_scalar:
        sigma = float(sigma[0])
    t = schedule.sigma_to_t(sigma)
    assert finite(t) and (t >= 0).all() and (t <= schedule.T - 1).all()
    assert torch.allclose(schedule.t_to_sigma(t), torch.as_tensor(sigma, dtype=torch.float64), rtol=1e-9)


@FUZZ
@given(schedule=small_schedules(), bad=st.one_of(
    st.floats(max_value=0), BAD_FLOATS, st.text(min_size=1, max_size=2), st.just([1.0, "a"]),
    st.sampled_from(["above", "below"])))
def test_sigma_to_t_rejects_sigma_outside_the_schedule_naming_it(schedule, bad):
    if bad == "above":
        bad = schedule.sigma_max * 1.001
    elif bad == "below":
        bad = schedule.sigma_min * 0.999
    rejects(lambda: schedule.sigma_to_t(bad), "sigma")


# ---------------------------------------------------------------- samplers (exact eps of ring8)

def exact_eps(schedule):
    return oracle.eps_fn(RING8, schedule)


@FUZZ
@given(schedule=small_schedules(max_T=24), n=st.integers(1, 16), dtype=DTYPES, seed=SEEDS)
@example(schedule=schedules.linear(T=2), n=1, dtype=torch.float64, seed=0)
def test_ddpm_gives_finite_samples_after_T_steps(schedule, n, dtype, seed):
    noise = noise_of(n, dtype, seed)
    for sigma_max, steps in ((None, schedule.T), (80.0, schedule.last_t_below(80.0) + 1)):
        out = samplers.ddpm(exact_eps(schedule), schedule, noise, sigma_max=sigma_max,
                            generator=torch.Generator().manual_seed(seed))
        assert out.x.shape == (n, 2) and out.x.dtype == dtype and finite(out.x)
        assert out.nfe == steps and len(out.trajectory) == steps + 1
        assert all(finite(x) for x in out.trajectory)


def sigma_max_choice(schedule, which, u):
    """The corners of sigma_max: above the schedule's largest sigma, at it, at its smallest, between."""
    between = math.exp(math.log(schedule.sigma_min) * (1 - u) + math.log(schedule.sigma_max) * u)
    return {"above": schedule.sigma_max * 10, "max": schedule.sigma_max, "min": schedule.sigma_min,
            "none": None, "80": 80.0, "between": min(max(between, schedule.sigma_min), schedule.sigma_max)}[which]


SIGMA_MAX = st.sampled_from(["above", "max", "min", "none", "80", "between"])


@FUZZ
@given(schedule=small_schedules(), n=st.integers(1, 16), dtype=DTYPES, seed=SEEDS, which=SIGMA_MAX,
       u=st.floats(0, 1), eta=st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1)), data=st.data())
@example(schedule=schedules.cosine(T=40), n=3, dtype=torch.float32, seed=1, which="min", u=0, eta=1.0, data=None)
def test_ddim_gives_finite_samples_for_every_step_count_eta_and_sigma_max(schedule, n, dtype, seed, which, u,
                                                                          eta, data):
    sigma_max = sigma_max_choice(schedule, which, u)
    t_max = schedule.last_t_below(sigma_max)
    steps = 1 if data is None else data.draw(st.one_of(st.just(1), st.just(t_max + 1), st.integers(1, t_max + 1)))
    noise = noise_of(n, dtype, seed)
    out = samplers.ddim(exact_eps(schedule), schedule, noise, steps, eta=eta, sigma_max=sigma_max,
                        generator=torch.Generator().manual_seed(seed))
    assert out.x.shape == (n, 2) and out.x.dtype == dtype and finite(out.x)
    assert out.nfe == steps and len(out.trajectory) == steps + 1


@FUZZ
@given(schedule=small_schedules(), n=st.integers(1, 16), dtype=DTYPES, seed=SEEDS, which=SIGMA_MAX,
       u=st.floats(0, 1), steps=st.one_of(st.just(1), st.integers(1, 16)),
       rho=st.one_of(st.just(7.0), st.floats(1e-300, 100)), use_min=st.booleans(), v=st.floats(0, 1))
@example(schedule=schedules.cosine(T=20), n=2, dtype=torch.float32, seed=0, which="above", u=0, steps=3,
         rho=1e-3, use_min=False, v=0)
@example(schedule=schedules.cosine(T=20), n=2, dtype=torch.float64, seed=0, which="min", u=0, steps=3,
         rho=7.0, use_min=True, v=1)
def test_heun_gives_finite_samples_with_2n_minus_1_evaluations(schedule, n, dtype, seed, which, u, steps, rho,
                                                               use_min, v):
    sigma_max = sigma_max_choice(schedule, which, u)
    if sigma_max is None:
        sigma_max = 80.0
    top = min(sigma_max, schedule.sigma_max)
    sigma_min = math.exp(math.log(schedule.sigma_min) * (1 - v) + math.log(top) * v) if use_min else None
    if sigma_min is not None:
        sigma_min = min(max(sigma_min, schedule.sigma_min), top)
    out = samplers.heun(exact_eps(schedule), schedule, noise_of(n, dtype, seed), steps, sigma_max=sigma_max,
                        sigma_min=sigma_min, rho=rho)
    assert out.x.shape == (n, 2) and out.x.dtype == dtype and finite(out.x)
    assert out.nfe == 2 * steps - 1 and len(out.trajectory) == steps + 1


def test_heun_runs_at_its_maximum_step_count():
    schedule = schedules.cosine(T=10)
    # A cheap linear eps (20 000 evaluations): the point is the step count, not the target.
    out = samplers.heun(lambda x, t: 0.5 * x, schedule, noise_of(2, torch.float64, 0), samplers.MAX_STEPS)
    assert finite(out.x) and out.nfe == 2 * samplers.MAX_STEPS - 1


@FUZZ
@given(name=st.sampled_from(list(samplers.SAMPLERS)), n=st.integers(1, 8), noise_dtype=DTYPES, model_dtype=DTYPES,
       wrapped=st.booleans(), seed=SEEDS, steps=st.integers(1, 6))
def test_samplers_accept_noise_in_another_dtype_than_the_model(name, n, noise_dtype, model_dtype, wrapped, seed,
                                                              steps):
    schedule = schedules.cosine(T=12)
    model = tiny_model(schedule.T, seed % 7, model_dtype)
    eps_fn = model.eps_fn() if wrapped else (lambda x, t: model(x, t))
    out = samplers.run(name, eps_fn, schedule, noise_of(n, noise_dtype, seed), steps,
                       generator=torch.Generator().manual_seed(seed))
    assert out.x.shape == (n, 2) and out.x.dtype == noise_dtype and finite(out.x)


SCHED10 = schedules.cosine(T=10)


@FUZZ
@given(sampler=st.sampled_from(["ddpm", "ddim", "heun"]), case=st.one_of(
    st.tuples(st.just("steps"), st.one_of(st.integers(max_value=0), st.integers(samplers.MAX_STEPS + 1, 10**9),
                                          NOT_INTS)),
    st.tuples(st.just("eta"), st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0001), BAD_FLOATS,
                                        NOT_REALS)),
    st.tuples(st.just("sigma_max"), st.one_of(st.floats(max_value=SCHED10.sigma_min * 0.999), BAD_FLOATS)),
    st.tuples(st.just("sigma_min"), st.one_of(st.floats(max_value=SCHED10.sigma_min * 0.999),
                                              st.floats(min_value=SCHED10.sigma_max * 1.001), BAD_FLOATS)),
    st.tuples(st.just("rho"), st.one_of(st.floats(max_value=0), st.floats(min_value=100.001), BAD_FLOATS)),
    st.tuples(st.just("noise"), st.sampled_from(["list", "1d", "nan", "int"])),
    st.tuples(st.just("eps_fn"), st.sampled_from(["not callable", "wrong shape", "not a tensor"])),
    st.tuples(st.just("schedule"), st.sampled_from([None, "cosine", 10])),
    st.tuples(st.just("generator"), st.sampled_from([0, "g"])),
))
def test_samplers_reject_bad_input_naming_it(sampler, case):
    kind, value = case
    eps, noise, kwargs, steps = exact_eps(SCHED10), torch.zeros(3, 2), {}, 3
    schedule = SCHED10
    if kind == "steps":
        assume(sampler != "ddpm")
        steps = value
    elif kind in ("eta", "generator") or kind in ("sigma_max", "sigma_min", "rho"):
        valid_for = {"eta": ["ddim"], "generator": ["ddpm", "ddim"], "sigma_max": ["ddim", "heun"],
                     "sigma_min": ["heun"], "rho": ["heun"]}[kind]
        assume(sampler in valid_for)
        kwargs[kind] = value
    elif kind == "noise":
        noise = {"list": [[0.0, 0.0]], "1d": torch.zeros(3), "nan": torch.full((3, 2), math.nan),
                 "int": torch.zeros(3, 2, dtype=torch.long)}[value]
    elif kind == "eps_fn":
        eps = {"not callable": 3, "wrong shape": lambda x, t: x[:, :1], "not a tensor": lambda x, t: 0.0}[value]
    else:
        schedule = value
    call = {"ddpm": lambda: samplers.ddpm(eps, schedule, noise, **kwargs),
            "ddim": lambda: samplers.ddim(eps, schedule, noise, steps, **kwargs),
            "heun": lambda: samplers.heun(eps, schedule, noise, steps, **kwargs)}[sampler]
    rejects(call, kind)


# ---------------------------------------------------------------- classifier-free guidance

@FUZZ
@given(exact=st.booleans(), w=st.one_of(st.just(0.0), st.just(guidance.W_MAX), st.floats(0, 50)),
       n=st.integers(1, 12),
       dtype=DTYPES, mode=st.sampled_from(["none", "int", "null", "tensor"]), seed=SEEDS, data=st.data())
def test_cfg_gives_finite_eps_of_x_shape_and_dtype(exact, w, n, dtype, mode, seed, data):
    schedule = schedules.cosine(T=16)
    model = oracle.MixtureEps(RING8, schedule) if exact else tiny_model(schedule.T, seed % 5)
    if mode == "none":
        w, classes = 0.0, None
    elif mode == "int":
        classes = data.draw(st.integers(0, 7))
    elif mode == "null":
        classes = 8
    else:
        classes = torch.tensor(data.draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)))
    eps_fn = guidance.cfg(model, classes, w)
    x = 2 * noise_of(n, dtype, seed)
    t = torch.tensor(data.draw(st.lists(st.floats(0, schedule.T - 1), min_size=n, max_size=n)), dtype=dtype)
    eps = eps_fn(x, t)
    assert eps.shape == (n, 2) and eps.dtype == dtype and finite(eps)


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("w"), st.one_of(st.floats(max_value=-1e-12), st.floats(min_value=guidance.W_MAX * 1.000001),
                                      BAD_FLOATS, NOT_REALS)),
    st.tuples(st.just("classes"), st.one_of(st.integers(max_value=-1), st.integers(9, 10**6), st.floats(0, 3),
                                            st.just(torch.zeros(2, 2, dtype=torch.long)),
                                            st.just(torch.tensor([0.5])), st.just(torch.tensor([9])))),
    st.tuples(st.just("guidance without classes"), st.floats(1e-6, 10)),
    st.tuples(st.just("model"), st.sampled_from([None, 3, "model", lambda x, t, c: x])),
    st.tuples(st.just("call"), st.sampled_from(["x 1d", "t shape", "classes length"])),
))
def test_cfg_rejects_bad_input_naming_it(case):
    kind, value = case
    model = oracle.MixtureEps(RING8, SCHED10)
    if kind == "w":
        rejects(lambda: guidance.cfg(model, 0, value), "w")
    elif kind == "classes":
        rejects(lambda: guidance.cfg(model, value, 1.0), "classes")
    elif kind == "guidance without classes":
        rejects(lambda: guidance.cfg(model, None, value), "classes")
    elif kind == "model":
        rejects(lambda: guidance.cfg(value, 0, 1.0), "model")
    else:
        fn = guidance.cfg(model, torch.zeros(3, dtype=torch.long), 1.0)
        x, t = torch.zeros(3, 2), torch.zeros(3)
        args = {"x 1d": (torch.zeros(3), t), "t shape": (x, torch.zeros(2)),
                "classes length": (torch.zeros(4, 2), torch.zeros(4))}[value]
        rejects(lambda: fn(*args), value.split()[0])


@FUZZ
@given(name=st.sampled_from(list(samplers.SAMPLERS)), exact=st.booleans(),
       w=st.one_of(st.just(0.0), st.just(guidance.W_MAX), st.floats(0, guidance.W_MAX)), cls=st.integers(0, 8),
       n=st.integers(1, 8), steps=st.integers(1, 8), dtype=DTYPES, seed=SEEDS)
def test_guided_sampling_stays_finite_up_to_the_largest_w(name, exact, w, cls, n, steps, dtype, seed):
    schedule = schedules.cosine(T=12)
    model = oracle.MixtureEps(RING8, schedule) if exact else tiny_model(schedule.T, seed % 5)
    out = samplers.run(name, guidance.cfg(model, cls, w), schedule, noise_of(n, dtype, seed), steps,
                       generator=torch.Generator().manual_seed(seed))
    assert out.x.shape == (n, 2) and out.x.dtype == dtype and finite(out.x)


# ---------------------------------------------------------------- the eps-MLP

@FUZZ
@given(num_classes=st.integers(0, 12), T=st.integers(2, 5000), dim=st.integers(1, 4), width=st.integers(1, 16),
       depth=st.integers(1, 3), half_time=st.integers(1, 8), class_dim=st.integers(1, 8), n=st.integers(0, 9),
       dtype=DTYPES, null=st.booleans(), seed=SEEDS, fourier=st.integers(0, 4))
def test_eps_mlp_gives_finite_eps_of_x_shape_for_any_config(num_classes, T, dim, width, depth, half_time, class_dim,
                                                            n, dtype, null, seed, fourier):
    torch.manual_seed(seed)
    model = EpsMLP(num_classes, T=T, dim=dim, width=width, depth=depth, time_dim=2 * half_time, class_dim=class_dim,
                   fourier=fourier)
    x = noise_of(n, dtype, seed, dim)
    t = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=dtype) * (T - 1)
    c = None if null else torch.randint(num_classes + 1, (n,), generator=torch.Generator().manual_seed(seed))
    eps = model(x, t, c)
    assert eps.shape == (n, dim) and eps.dtype == dtype and finite(eps)


@FUZZ
@given(param=st.sampled_from(["num_classes", "T", "dim", "width", "depth", "time_dim", "class_dim"]),
       value=st.one_of(st.integers(max_value=0), st.integers(100_001, 2**40), NOT_INTS))
def test_eps_mlp_rejects_a_bad_config_naming_it(param, value):
    if param == "num_classes" and isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000:
        value = -1 - value
    if param == "T" and value == 1:
        value = 0
    rejects(lambda: EpsMLP(**{"num_classes": 3, param: value}), param)


def test_eps_mlp_rejects_an_odd_time_dim():
    rejects(lambda: EpsMLP(3, time_dim=5), "time_dim")


@pytest.mark.parametrize("value", [-1, 4097, 2.5, "16", True])
def test_eps_mlp_rejects_a_bad_number_of_fourier_features(value):
    rejects(lambda: EpsMLP(3, fourier=value), "fourier")


# ---------------------------------------------------------------- MMD and the noise floor

@FUZZ
@given(m=st.integers(2, 30), n=st.integers(2, 30), dim=st.integers(1, 3), dtype_x=DTYPES, dtype_y=DTYPES,
       log_size=st.floats(-300, 300), shift=st.floats(-5, 5), identical=st.booleans(), seed=SEEDS,
       scales=st.lists(st.floats(0.01, 100), min_size=1, max_size=4))
@example(m=2, n=2, dim=2, dtype_x=torch.float32, dtype_y=torch.float32, log_size=0, shift=0, identical=True, seed=0,
         scales=[0.5, 1.0, 2.0])
def test_mmd2_is_finite_symmetric_and_scale_invariant(m, n, dim, dtype_x, dtype_y, log_size, shift, identical,
                                                      seed, scales):
    size = 10.0 ** log_size
    if dtype_x == torch.float32 or dtype_y == torch.float32:
        size = 10.0 ** max(-30, min(30, log_size))  # float32's range
    if identical:  # every point the same: the median distance is 0
        shift = float(torch.tensor(shift, dtype=torch.float32))  # the same point in both dtypes
        x = torch.full((m, dim), shift, dtype=dtype_x)
        y = torch.full((n, dim), shift, dtype=dtype_y)
    else:
        x = (size * (noise_of(m, torch.float64, seed, dim) + shift)).to(dtype_x)
        y = (size * noise_of(n, torch.float64, seed + 1, dim)).to(dtype_y)
    value = metrics.mmd2(x, y, scales)
    assert isinstance(value, float) and math.isfinite(value)
    assert value == pytest.approx(metrics.mmd2(y, x, scales), rel=1e-9, abs=1e-12)
    if identical:
        assert value == 0.0
    else:
        rescaled = metrics.mmd2(x.double() / size, y.double() / size, scales)
        assert value == pytest.approx(rescaled, rel=1e-6, abs=1e-9)


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("rows"), st.tuples(st.integers(0, 1), st.integers(0, 5))),
    st.tuples(st.just("dim"), st.integers(1, 4).filter(lambda d: d != 2)),
    st.tuples(st.just("points"), st.sampled_from(["list", "1d", "nan", "inf", "int"])),
    st.tuples(st.just("scales"), st.one_of(st.just(()), st.lists(st.floats(max_value=0), min_size=1, max_size=3),
                                           st.lists(BAD_FLOATS, min_size=1, max_size=2), st.floats(0.1, 2),
                                           st.just(["a"]), st.none())),
))
def test_mmd2_rejects_bad_input_naming_it(case):
    kind, value = case
    x, y = torch.zeros(5, 2), torch.ones(5, 2)
    if kind == "rows":
        few, other = value
        rejects(lambda: metrics.mmd2(torch.zeros(few, 2), torch.zeros(other + 2, 2)), "x")
        rejects(lambda: metrics.mmd2(torch.zeros(other + 2, 2), torch.zeros(few, 2)), "y")
    elif kind == "dim":
        rejects(lambda: metrics.mmd2(x, torch.zeros(5, value)), "x", "y")
    elif kind == "points":
        bad = {"list": [[0.0, 0.0]] * 3, "1d": torch.zeros(5), "nan": torch.full((5, 2), math.nan),
               "inf": torch.full((5, 2), math.inf), "int": torch.zeros(5, 2, dtype=torch.long)}[value]
        rejects(lambda: metrics.mmd2(bad, y), "x")
        rejects(lambda: metrics.mmd2(x, bad), "y")
    else:
        rejects(lambda: metrics.mmd2(x, y, value), "scales")


@FUZZ
@given(name=st.sampled_from(["ring8", "moons", "checkerboard", "spirals", "swiss_roll"]), n=st.integers(2, 24),
       repeats=st.integers(2, 5), seed=SEEDS)
@example(name="ring8", n=2, repeats=2, seed=0)
def test_noise_floor_is_finite_with_one_value_per_repeat(name, n, repeats, seed):
    floor = metrics.noise_floor(targets.get(name), n, repeats, torch.Generator().manual_seed(seed))
    assert len(floor.values) == repeats and all(math.isfinite(v) for v in floor.values)
    assert math.isfinite(floor.mean) and math.isfinite(floor.sd) and floor.sd >= 0
    assert math.isfinite(floor.threshold) and floor.threshold >= floor.mean


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("n"), st.one_of(st.integers(max_value=1), st.integers(1_000_001, 2**40), NOT_INTS)),
    st.tuples(st.just("repeats"), st.one_of(st.integers(max_value=1), st.integers(10_001, 2**40), NOT_INTS)),
    st.tuples(st.just("generator"), st.sampled_from([0, "g", 1.5])),
    st.tuples(st.just("target"), st.sampled_from([None, "ring8", 3])),
))
def test_noise_floor_rejects_bad_input_naming_it(case):
    kind, value = case
    kwargs = {"target": RING8, "n": 4, "repeats": 2, "generator": None, kind: value}
    rejects(lambda: metrics.noise_floor(**kwargs), kind)
