"""Checks for the chapters' exercises: the student's function against labkit's, on random and corner inputs.

``check(name, fn)`` runs ``CHECKS[name]`` on the student's ``fn``, never raises, prints one line
(passed, or "not yet" with a hint that says what differs) and returns a :class:`Result`. A hint
names the usual slips (a sign, a missing square root, the diffusers form of a weight) when the
student's output matches one; otherwise it says where the output first differs.

The exercise cells of the chapters carry nbgrader's solution markers; ``python -m labkit exercises
--student DIR`` writes the student notebooks with each solution replaced by a stub
(:func:`student_notebook`).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import digits, guidance, metrics, oracle, quality, samplers, schedules, solvers, targets

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError  # your code here"


@dataclass
class Result:
    name: str
    passed: bool
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {'passed' if self.passed else 'not yet'}{' - ' + self.message if self.message else ''}"


class NotYet(Exception):
    """Raised inside a checker: the student's function is not right yet (the message is the hint)."""


@dataclass
class Case:
    """One input of a checker: the arguments, the reference output (a tensor, or an int or None for the
    exercises that count) and what to call the case in a hint."""
    args: tuple
    expected: torch.Tensor | int | None
    where: str


def _answer(fn, case: Case):
    """``fn``'s output on the case; :class:`NotYet` if it raises, or returns None where None is not the answer."""
    try:
        out = fn(*case.args)
    except NotImplementedError:
        raise NotYet("not written yet: replace the `raise NotImplementedError` line with your code") from None
    except Exception as err:  # the student's code may raise anything: report it, never re-raise
        raise NotYet(f"your function raised {type(err).__name__}: {err} ({case.where})") from None
    if out is None and case.expected is not None:
        raise NotYet("your function returned None: did you forget `return`?")
    return out


def _call(fn, case: Case) -> torch.Tensor:
    out = _answer(fn, case)
    if not isinstance(out, torch.Tensor):
        raise NotYet(f"expected a torch.Tensor, got {type(out).__name__}")
    if out.shape != case.expected.shape:
        raise NotYet(f"expected shape {tuple(case.expected.shape)}, got {tuple(out.shape)} ({case.where})")
    if not torch.isfinite(out).all():
        raise NotYet(f"your output holds NaN or inf ({case.where})")
    return out.to(torch.float64)


def _compare(fn, cases: list[Case], slips: dict[str, Callable] | None = None, atol: float = 1e-10) -> None:
    """Raise :class:`NotYet` at the first case where ``fn`` differs from the reference by more than atol.

    ``slips`` maps a hint to a wrong version of the function; if the student's output matches one,
    that hint is given.
    """
    for case in cases:
        out = _call(fn, case)
        if torch.allclose(out, case.expected.to(torch.float64), atol=atol, rtol=1e-9):
            continue
        for hint, wrong in (slips or {}).items():
            if torch.allclose(out, wrong(*case.args).to(torch.float64), atol=atol, rtol=1e-9):
                raise NotYet(f"{hint} ({case.where})")
        ratio = (out.flatten() @ case.expected.flatten().double()) / case.expected.double().square().sum()
        extra = f"; your output is about {float(ratio):.3g} x the expected one" if torch.allclose(
            out, ratio * case.expected.double(), atol=1e-8) and abs(float(ratio) - 1) > 1e-6 and out.numel() > 1 else ""
        raise NotYet(f"differs by up to {float((out - case.expected).abs().max()):.3g} ({case.where}){extra}")


def _compare_exact(fn, cases: list[Case], slips: dict[str, Callable]) -> None:
    """Raise :class:`NotYet` at the first case where ``fn``'s answer (an int, or None) is not the reference's."""
    for case in cases:
        out = _answer(fn, case)
        if out is not None and (isinstance(out, bool) or not isinstance(out, numbers.Integral)):
            raise NotYet(f"expected an int, got {type(out).__name__} ({case.where})")
        if out == case.expected:
            continue
        hint = next((hint for hint, wrong in slips.items() if wrong(*case.args) == out), None)
        raise NotYet(f"{hint or f'you return {out!r}, labkit gives {case.expected!r}'} ({case.where})")


def check(name: str, fn) -> Result:
    """Check the student's ``fn`` for exercise ``name`` (a key of :data:`CHECKS`); print and return the result."""
    if name not in CHECKS:
        result = Result(str(name), False, f"no exercise called {name!r}; the exercises are {sorted(CHECKS)}")
    elif not callable(fn):
        result = Result(name, False, f"expected a function, got {type(fn).__name__}")
    else:
        try:
            CHECKS[name](fn)
            result = Result(name, True, "")
        except NotYet as hint:
            result = Result(name, False, str(hint))
        except Exception as err:  # a checker must never crash a student's notebook
            result = Result(name, False, f"the check itself failed ({type(err).__name__}: {err})")
    print(result)
    return result


# ---- the inputs shared by the checkers --------------------------------------------------------------

def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _points(n: int, seed: int, dim: int = 2) -> torch.Tensor:
    return torch.randn(n, dim, generator=_gen(seed), dtype=torch.float64)


_SCHEDULE = schedules.cosine()
_RING8 = targets.get("ring8")
_EXACT = oracle.eps_fn(_RING8, _SCHEDULE)
_ABARS = (0.9999, 0.5, 1e-4)   # near the data, halfway, almost pure noise


# ---- chapter 1: the forward process ---------------------------------------------------------------

def _check_q_sample(fn):
    cases = [Case((x0, abar, eps), math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps, f"abar_t = {abar:g}")
             for abar, (x0, eps) in zip(_ABARS, [(_points(5, s), _points(5, s + 1)) for s in range(3)])]
    _compare(fn, cases, {
        "the noise term has the wrong sign": lambda x0, a, e: math.sqrt(a) * x0 - math.sqrt(1 - a) * e,
        "scale by square roots: sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps": lambda x0, a, e: a * x0 + (1 - a) * e,
        "x_0 and eps are swapped": lambda x0, a, e: math.sqrt(a) * e + math.sqrt(1 - a) * x0})


def _check_abar_from_betas(fn):
    cases = [Case((s.betas,), s.alphas_cumprod, f"{s.name} schedule, T = {s.T}")
             for s in (schedules.linear(T=10), schedules.cosine(T=50))]
    _compare(fn, cases, {
        "abar_t is the product of alpha_s = 1 - beta_s, not of beta_s": lambda b: torch.cumprod(b, 0),
        "abar_t multiplies the alphas up to and including t: use a cumulative product": lambda b: 1 - b},
        atol=1e-12)


# ---- chapter 2: scores ----------------------------------------------------------------------------

def _mixture_score(x, means, sd):
    """Reference: the score of an equal-weight isotropic mixture, by autograd of its log-density."""
    x = x.clone().requires_grad_(True)
    log_p = torch.logsumexp(-(x[:, None] - means[None]).square().sum(-1) / (2 * sd**2), dim=1)
    return torch.autograd.grad(log_p.sum(), x)[0]


def _check_mixture_score(fn):
    means = _RING8.means
    cases = [Case((x, means, sd), _mixture_score(x, means, sd), f"sd = {sd:g}")
             for x, sd in ((_points(6, 0) * 2, 0.5), (_points(6, 1) * 3, 0.1), (means[:3] + 1e-3, 0.1))]
    _compare(fn, cases, {
        "the score points toward the modes: check the sign":
            lambda x, m, sd: -_mixture_score(x, m, sd),
        "divide by the variance sd^2, not by sd": lambda x, m, sd: _mixture_score(x, m, sd) * sd,
        "weight each component by its posterior r_k(x) (a softmax), not equally":
            lambda x, m, sd: -(x[:, None] - m[None]).mean(1) / sd**2}, atol=1e-8)


def _check_dsm_target(fn):
    cases = []
    for s, sigma in enumerate((0.05, 0.5, 3.0)):
        x0 = _points(6, s + 30)
        x_tilde = x0 + sigma * _points(6, s + 40)
        cases.append(Case((x_tilde, x0, sigma), -(x_tilde - x0) / sigma**2, f"sigma = {sigma:g}"))
    _compare(fn, cases, {
        "the kernel's score points back to x_0: -(x~ - x_0) / sigma^2": lambda xt, x0, s: (xt - x0) / s**2,
        "divide by the variance sigma^2, not by sigma": lambda xt, x0, s: -(xt - x0) / s})


# ---- chapter 3: eps-prediction --------------------------------------------------------------------

def _check_eps_to_score(fn):
    cases = [Case((eps, abar), -eps / math.sqrt(1 - abar), f"abar_t = {abar:g}")
             for abar, eps in zip(_ABARS, (_points(5, 3), _points(5, 4), _points(5, 5)))]
    _compare(fn, cases, {
        "the score is minus eps / sqrt(1 - abar_t): check the sign": lambda e, a: e / math.sqrt(1 - a),
        "divide by the noise sd sqrt(1 - abar_t), not by its variance": lambda e, a: -e / (1 - a),
        "divide by sqrt(1 - abar_t), the sd of the noise in x_t, not by sqrt(abar_t)":
            lambda e, a: -e / math.sqrt(a)})


def _eps_loss(eps_fn, x0, t, eps, abar, sqrt=True, sum_=False):
    a = abar[:, None]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps if sqrt else a * x0 + (1 - a) * eps
    err = (eps_fn(x_t, t) - eps).square()
    return err.sum() if sum_ else err.mean()


def _check_eps_loss(fn):
    cases = []
    for s, (where, t) in enumerate((("t drawn uniformly", torch.randint(_SCHEDULE.T, (64,), generator=_gen(50))),
                                    ("every t = 0", torch.zeros(64, dtype=torch.long)),
                                    ("every t = 999", torch.full((64,), 999)))):
        x0, _ = _RING8.sample(64, _gen(s + 51))
        x0, eps, abar = x0.double(), _points(64, s + 60), _SCHEDULE.alphas_cumprod[t]
        args = (_EXACT, x0, t.double(), eps, abar)
        cases.append(Case(args, _eps_loss(*args), where))
    _compare(fn, cases, {
        "form x_t with square roots: sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps":
            lambda f, x0, t, e, a: _eps_loss(f, x0, t, e, a, sqrt=False),
        "average the squared error over the batch and the coordinates (.mean()), do not sum it":
            lambda f, x0, t, e, a: _eps_loss(f, x0, t, e, a, sum_=True),
        "the network predicts the noise: compare eps_fn(x_t, t) with eps, not with x_0":
            lambda f, x0, t, e, a: _eps_loss(lambda x, t_: f(x, t_) - e + x0, x0, t, e, a)})


# ---- chapter 4: one DDPM step ---------------------------------------------------------------------

def _ddpm_step(x_t, eps_hat, beta_t, abar_t, abar_prev, z):
    mean = (x_t - beta_t / math.sqrt(1 - abar_t) * eps_hat) / math.sqrt(1 - beta_t)
    return mean + math.sqrt((1 - abar_prev) / (1 - abar_t) * beta_t) * z


def _check_ddpm_step(fn):
    cases = []
    for t in (900, 500, 1):
        b, a, a_prev = (float(v) for v in (_SCHEDULE.betas[t], _SCHEDULE.alphas_cumprod[t],
                                           _SCHEDULE.alphas_cumprod[t - 1]))
        x, z = _points(5, t), _points(5, t + 1)
        eps_hat = _EXACT(x, torch.full((5,), float(t), dtype=torch.float64))
        cases.append(Case((x, eps_hat, b, a, a_prev, z), _ddpm_step(x, eps_hat, b, a, a_prev, z), f"t = {t}"))
    _compare(fn, cases, {
        "the noise has variance beta~_t = (1 - abar_(t-1)) / (1 - abar_t) beta_t, not beta_t":
            lambda x, e, b, a, ap, z: _ddpm_step(x, e, b, a, ap, 0 * z) + math.sqrt(b) * z,
        "divide the mean by sqrt(alpha_t) = sqrt(1 - beta_t)":
            lambda x, e, b, a, ap, z: _ddpm_step(x, e, b, a, ap, z) * math.sqrt(1 - b)
            + (1 - math.sqrt(1 - b)) * math.sqrt((1 - ap) / (1 - a) * b) * z,
        "subtract the noise prediction: x_t - beta_t / sqrt(1 - abar_t) eps_hat":
            lambda x, e, b, a, ap, z: _ddpm_step(x, -e, b, a, ap, z)})


def _check_x0_hat(fn):
    cases = [Case((x, e, abar), (x - math.sqrt(1 - abar) * e) / math.sqrt(abar), f"abar_t = {abar:g}")
             for abar, (x, e) in zip(_ABARS, [(_points(5, s + 70), _points(5, s + 71)) for s in range(3)])]
    _compare(fn, cases, {
        "remove the noise: x_t - sqrt(1 - abar_t) eps_hat, then divide by sqrt(abar_t)":
            lambda x, e, a: (x + math.sqrt(1 - a) * e) / math.sqrt(a),
        "x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: use the square roots":
            lambda x, e, a: (x - (1 - a) * e) / a,
        "divide by sqrt(abar_t) (the signal was shrunk by it), do not multiply":
            lambda x, e, a: (x - math.sqrt(1 - a) * e) * math.sqrt(a)}, atol=1e-8)


# ---- chapter 5: classifier-free guidance ----------------------------------------------------------

def _check_cfg(fn):
    cases = [Case((_points(5, 6), _points(5, 7), w), (1 + w) * _points(5, 6) - w * _points(5, 7), f"w = {w:g}")
             for w in (0.0, 1.0, 3.5)]
    _compare(fn, cases, {
        "that is diffusers' form with scale s = w: labkit's w form is (1 + w) eps_c - w eps_null":
            lambda c, u, w: u + w * (c - u),
        "guidance pushes away from the unconditional prediction: - w eps_null, + (1 + w) eps_c":
            lambda c, u, w: (1 + w) * u - w * c})


def _check_classifier_guidance(fn):
    cases = [Case((e, g, abar, w), e - w * math.sqrt(1 - abar) * g, f"abar_t = {abar:g}, w = {w:g}")
             for abar, w, (e, g) in zip(_ABARS, (1.0, 2.0, 0.5), [(_points(5, s + 80), _points(5, s + 81))
                                                                  for s in range(3)])]
    _compare(fn, cases, {
        "guidance moves x toward higher log p(c | x): subtract w sqrt(1 - abar_t) grad from eps_hat":
            lambda e, g, a, w: e + w * math.sqrt(1 - a) * g,
        "eps and the score differ by the factor sqrt(1 - abar_t), not (1 - abar_t)":
            lambda e, g, a, w: e - w * (1 - a) * g,
        "eps = -sqrt(1 - abar_t) x score: multiply the gradient by sqrt(1 - abar_t), do not divide":
            lambda e, g, a, w: e - w * g / math.sqrt(1 - a)})


# ---- chapter 6: one step of each ODE solver, on the exact eps of ring8 ----------------------------

def _solver_case(solver, seed: int, sigmas: list[float]):
    """The state before the last step of ``solver`` on ``sigmas`` and labkit's result of that step."""
    D = samplers.Denoiser(_EXACT, _SCHEDULE, sigmas if sigmas[-1] == 0 else [*sigmas, 0.0])
    states = [_points(5, seed) * sigmas[0], *solver(D, _points(5, seed) * sigmas[0], sigmas)]
    return D, states


def _step_cases(solver, with_history: bool):
    cases = []
    for seed, sigmas in ((0, [80.0, 12.0, 2.5]), (1, [5.0, 1.0, 0.2]), (2, [1.0, 0.3, 0.0])):
        D, states = _solver_case(solver, seed, sigmas)
        x, s, s_next = states[1], sigmas[1], sigmas[2]
        args = (D, x, s, s_next)
        if with_history:
            args += (D(states[0], sigmas[0]), math.log(sigmas[0] / s))
        cases.append(Case(args, states[2], f"sigma {s:g} -> {s_next:g}"))
    return cases


def _check_euler_step(fn):
    _compare(fn, _step_cases(solvers.euler, False), {
        "step by (sigma_next - sigma) d with d = (x - D(x; sigma)) / sigma: check the sign of the step":
            lambda D, x, s, sn: x - (sn - s) * (x - D(x, s)) / s})


def _check_heun_step(fn):
    def no_corrector(D, x, s, sn):
        return x + (sn - s) * (x - D(x, s)) / s
    _compare(fn, _step_cases(solvers.heun, False), {
        "that is the Euler step: correct it with the slope at the landing point (except at sigma_next = 0)":
            no_corrector})


def _check_dpmpp_2m_step(fn):
    def first_order(D, x, s, sn, D_prev, h_prev):
        return D(x, s) if sn == 0 else (sn / s) * x - math.expm1(-math.log(s / sn)) * D(x, s)
    _compare(fn, _step_cases(solvers.dpmpp_2m, True), {
        "that is the first-order step: extrapolate D with the previous one, D' = (1 + 1/(2r)) D_i - 1/(2r) D_(i-1)":
            first_order}, atol=1e-9)


# ---- chapter 7: the unbiased MMD^2 ------------------------------------------------------------------

def _mmd2(x, y, h, biased=False):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b).square() / (2 * h**2))

    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    if biased:
        return kxx.mean() + kyy.mean() - 2 * k(x, y).mean()
    return ((kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (n * (n - 1))
            - 2 * k(x, y).mean())


def _check_mmd2(fn):
    cases = [Case((_points(m, s), _points(n, s + 9) + shift, h), _mmd2(_points(m, s), _points(n, s + 9) + shift, h),
                  f"m = {m}, n = {n}, h = {h:g}")
             for s, (m, n, shift, h) in enumerate([(30, 30, 0.0, 1.0), (20, 35, 0.5, 0.7), (2, 3, 2.0, 2.0)])]
    _compare(fn, cases, {
        "that is the biased estimate: leave out the diagonal terms k(x_i, x_i) (divide by m(m - 1))":
            lambda x, y, h: _mmd2(x, y, h, biased=True)}, atol=1e-10)


def _pr(x, y, k, swap=False, own_balls=False):
    """Precision and recall of x against y with k-NN balls (metrics.knn_radius), or one of the slips."""
    d, r_x, r_y = torch.cdist(x, y), metrics.knn_radius(x, k)[:, None], metrics.knn_radius(y, k)[None, :]
    if own_balls:  # precision with the samples' radii, recall with the target's
        return torch.stack([(d <= r_x).any(dim=1).double().mean(), (d <= r_y).any(dim=0).double().mean()])
    pr = torch.stack([(d <= r_y).any(dim=1).double().mean(), (d <= r_x).any(dim=0).double().mean()])
    return pr.flip(0) if swap else pr


def _check_precision_recall(fn):
    cases = [Case((x, y, k), torch.tensor(metrics._precision_recall(x, y, k), dtype=torch.float64),
                  f"m = {len(x)}, n = {len(y)}, k = {k}")
             for s, (m, n, k) in enumerate([(40, 50, 5), (30, 30, 10), (60, 25, 3)])
             for x, y in [(1.4 * _points(m, s + 40) + 0.6, _points(n, s + 50))]]
    _compare(fn, cases, {
        "r_k is the distance to the k-th nearest *other* point: in each sorted row of distances, column 0 is the "
        "point itself (0)": lambda x, y, k: _pr(x, y, k - 1),
        "precision and recall are swapped: precision asks whether each sample x_i is in a target ball, recall "
        "whether each target point y_j is in a sample ball": lambda x, y, k: _pr(x, y, k, swap=True),
        "each ball has its own centre's radius: target balls B(y_j, r_k(y_j)) for precision, sample balls "
        "B(x_i, r_k(x_i)) for recall": lambda x, y, k: _pr(x, y, k, own_balls=True)})


# ---- chapter 8: what a sampler call costs, and from which N it stays at the floor --------------------

class _Counted:
    """A stand-in network for counting forwards (eps = 0), with the class labels cfg expects."""
    num_classes = null = 2

    def __call__(self, x, t, c):
        return torch.zeros_like(x)


def _sampler_nfe(name: str, steps: int, w: float, schedule) -> int:
    """The NFE labkit's sampler ``name`` reports for one guided call (class 1, guidance w) from sigma_max = 80."""
    eps_fn = guidance.cfg(_Counted(), 1, w)
    return samplers.run(name, eps_fn, schedule, torch.zeros(2, 2), steps, generator=_gen(0), keep_trajectory=False).nfe


@functools.cache
def _nfe_cases() -> list[Case]:
    cases = []
    for schedule, steps, w in ((_SCHEDULE, 16, 0.0), (_SCHEDULE, 16, 3.0), (_SCHEDULE, 1, 0.0),
                               (schedules.linear(T=50), 7, 0.5)):
        t_max = schedule.last_t_below(80.0)
        cases += [Case((name, steps, w, t_max), _sampler_nfe(name, steps, w, schedule),
                       f"{name}, N = {steps}, w = {w:g}, t_max = {t_max}") for name in samplers.SAMPLERS]
    return cases


def _nfe_slip(name, N, w, t_max, heun=-1, ddpm=1, guided=lambda w: w > 0):
    n = t_max + ddpm if name == "ddpm" else 2 * N + heun if name == "heun" else N
    return 2 * n if guided(w) else n


def _check_nfe(fn):
    _compare_exact(fn, _nfe_cases(), {
        "Heun's last step, to sigma = 0, is an Euler step: 2N - 1 forwards, not 2N":
            functools.partial(_nfe_slip, heun=0),
        "with w > 0 each call runs the network twice (class c and the null class): double the count":
            functools.partial(_nfe_slip, guided=lambda w: False),
        "at w = 0 the guided eps is the conditional network alone: one forward per call":
            functools.partial(_nfe_slip, guided=lambda w: True),
        "DDPM runs every timestep t_max, t_max - 1, ..., 0: that is t_max + 1 forwards":
            functools.partial(_nfe_slip, ddpm=0),
        "DDPM takes no step count N: it runs every timestep from t_max down to 0":
            lambda name, N, w, t_max: _nfe_slip("ddim" if name == "ddpm" else name, N, w, t_max)})


def _quality_result(verdicts: dict[str, str]) -> dict:
    """A run_quality result whose records are at the floor where a verdict string has "y" (N = 4, 8, ..., 128)."""
    steps = quality.DEFAULT_STEPS
    return {"records": [{"sampler": s, "grid": "karras", "steps": k, "nfe": 2 * k - 1 if s == "heun" else k,
                         "at_floor": ok == "y", "at_floor_seeds": 2 * (ok == "y")}
                        for s, v in verdicts.items() for k, ok in zip(steps, v)]}


def _first_steps(result, sampler):
    rec = quality.first_at_floor(result, sampler)
    return rec and rec["steps"]


def _check_first_at_floor(fn):
    ns = ", ".join(map(str, quality.DEFAULT_STEPS))
    cases = [Case((r, s), _first_steps(r, s), f"{s}, at the floor (y) or not (.) at N = {ns}: {v[s]}")
             for v in ({"ddim": "....yy", "heun": ".y.yyy"}, {"heun": "yyyyy.", "ddim": "yyyyyy"})
             for r in [_quality_result(v)] for s in v]
    _compare_exact(fn, cases, {
        "that is the first N at the floor: the sampler must also be at the floor at every larger N":
            lambda r, s: next((q["steps"] for q in r["records"] if q["sampler"] == s and q["at_floor"]), None),
        "return the step count N (record['steps']), not the NFE":
            lambda r, s: (rec := quality.first_at_floor(r, s)) and rec["nfe"],
        "use only the records of `sampler`: result['records'] holds every sampler's":
            lambda r, s: _first_steps({"records": [{**q, "sampler": s} for q in r["records"]]}, s)})


# ---- chapter 9: flow matching -----------------------------------------------------------------------

def _check_flow_path(fn):
    cases = [Case((_points(5, s), _points(5, s + 1), t), (1 - t) * _points(5, s) + t * _points(5, s + 1), f"t = {t:g}")
             for s, t in ((0, 0.0), (2, 0.3), (4, 1.0))]
    _compare(fn, cases, {
        "t = 0 is data and t = 1 noise: x_t = (1 - t) x_0 + t eps": lambda x0, e, t: t * x0 + (1 - t) * e,
        "the linear path has no square roots (that is the VP path)":
            lambda x0, e, t: math.sqrt(1 - t) * x0 + math.sqrt(t) * e})


def _check_flow_velocity(fn):
    cases = [Case((_points(5, s), _points(5, s + 1)), _points(5, s + 1) - _points(5, s), f"case {s}") for s in (0, 2)]
    _compare(fn, cases, {
        "the velocity is d x_t / dt along the path from data (t = 0) to noise (t = 1): v = eps - x_0":
            lambda x0, e: x0 - e,
        "differentiate x_t = (1 - t) x_0 + t eps in t: both terms contribute": lambda x0, e: e})


def _check_flow_euler_step(fn):
    cases = []
    for s, (t, t_next) in enumerate(((1.0, 0.75), (0.5, 0.1), (0.2, 0.0))):
        x = _points(5, s)
        v = _points(5, s + 20)
        cases.append(Case((v, x, t, t_next), x + (t_next - t) * v, f"t {t:g} -> {t_next:g}"))
    _compare(fn, cases, {
        "time runs from 1 (noise) down to 0 (data): x + (t_next - t) v, with t_next < t":
            lambda v, x, t, tn: x + (t - tn) * v})


# ---- chapter 10: digits -----------------------------------------------------------------------------

def _nearest(x, reference):
    return (x[:, None] - reference[None]).norm(dim=-1).min(dim=1).values   # exact (cdist rounds near 0)


def _check_nearest_distance(fn):
    ref = _points(40, 90, dim=64)
    cases = [Case((x, r), _nearest(x, r), where) for x, r, where in (
        (_points(7, 91, dim=64), ref, "7 x 64 against 40 rows"), (ref[[3, 17]].clone(), ref, "x in reference"),
        (_points(5, 92, dim=64), ref[:1], "a reference of one row"))]
    _compare(fn, cases, {
        "that is the squared distance: take the square root": lambda x, r: _nearest(x, r).square(),
        "the nearest row: the minimum over the reference, not the mean": lambda x, r: torch.cdist(x, r).mean(1),
        "the nearest row is the closest one: take the minimum, not the maximum":
            lambda x, r: torch.cdist(x, r).max(1).values}, atol=1e-6)


def _pooled_diversity(x, c):
    d = [torch.pdist(x[c == k]) for k in c.unique() if int((c == k).sum()) >= 2]
    return torch.cat(d).mean()


def _check_diversity(fn):
    cases = []
    for s, (sizes, where) in enumerate((((5, 9, 3), "classes of 5, 9 and 3"), ((2, 12), "classes of 2 and 12"),
                                        ((4, 1, 6), "one class has a single member (leave it out)"))):
        c = torch.cat([torch.full((m,), k) for k, m in enumerate(sizes)])
        x = _points(len(c), s + 95, dim=64) + c[:, None].double()
        cases.append(Case((x, c), torch.tensor(digits.diversity(x, c), dtype=torch.float64), where))
    _compare(fn, cases, {
        "measure within each class (the pairs of one class), not over all pairs": lambda x, c: torch.pdist(x).mean(),
        "that is the squared distance: average the distances themselves (torch.pdist)": lambda x, c: torch.stack(
            [torch.pdist(x[c == k]).square().mean() for k in c.unique() if int((c == k).sum()) >= 2]).mean(),
        "average the classes' means (each class counts once), not all within-class pairs pooled":
            _pooled_diversity}, atol=1e-9)


CHECKS: dict[str, Callable] = {
    "q_sample": _check_q_sample,
    "abar_from_betas": _check_abar_from_betas,
    "mixture_score": _check_mixture_score,
    "dsm_target": _check_dsm_target,
    "eps_to_score": _check_eps_to_score,
    "eps_loss": _check_eps_loss,
    "x0_hat": _check_x0_hat,
    "ddpm_step": _check_ddpm_step,
    "cfg": _check_cfg,
    "classifier_guidance": _check_classifier_guidance,
    "euler_step": _check_euler_step,
    "heun_step": _check_heun_step,
    "dpmpp_2m_step": _check_dpmpp_2m_step,
    "mmd2": _check_mmd2,
    "precision_recall": _check_precision_recall,
    "nfe": _check_nfe,
    "first_at_floor": _check_first_at_floor,
    "flow_path": _check_flow_path,
    "flow_velocity": _check_flow_velocity,
    "flow_euler_step": _check_flow_euler_step,
    "nearest_distance": _check_nearest_distance,
    "diversity": _check_diversity,
}


# ---- student versions -------------------------------------------------------------------------------

def strip_solutions(source: str, stub: str = STUB) -> str:
    """``source`` with every block between the nbgrader markers replaced by ``stub`` (at the marker's indent)."""
    out, inside = [], False
    for line in source.splitlines(keepends=True):
        marker = line.strip()
        if marker == BEGIN:
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + stub + "\n")
        elif marker == END:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN!r} has no matching {END!r}")
    return "".join(out)


def student_notebook(nb):
    """A copy of the notebook ``nb`` (nbformat) with solutions stubbed and code outputs cleared."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if BEGIN in cell.source:
            stub = STUB if cell.cell_type == "code" else "_Your answer here._"
            cell.source = strip_solutions(cell.source, stub)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def write_student_versions(source_dir, out_dir) -> list:
    """Write the student version of every chapter ``NN_*.ipynb`` of ``source_dir`` into ``out_dir``."""
    from pathlib import Path

    import nbformat

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    chapters = sorted(source_dir.glob("[0-9][0-9]_*.ipynb"))
    if not chapters:
        raise ValueError(f"source holds no chapters (NN_*.ipynb): {source_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        nbformat.write(student_notebook(nb), out_dir / path.name)
        written.append(out_dir / path.name)
    return written
