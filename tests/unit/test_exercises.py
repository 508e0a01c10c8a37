"""Every exercise checker passes its reference solution, rejects wrong ones with a hint, and never raises."""

import math

import nbformat
import pytest
import torch

from labkit import exercises


def _mixture_score(x, means, sd):
    d = x[:, None] - means[None]
    r = torch.softmax(-d.square().sum(-1) / (2 * sd**2), dim=1)
    return -(r[..., None] * d).sum(1) / sd**2


def _dpmpp_2m_step(D, x, sigma, sigma_next, D_prev, h_prev):
    D_i = D(x, sigma)
    if sigma_next == 0:
        return D_i
    h = math.log(sigma / sigma_next)
    r = h_prev / h
    return (sigma_next / sigma) * x - math.expm1(-h) * ((1 + 1 / (2 * r)) * D_i - 1 / (2 * r) * D_prev)


def _heun_step(D, x, sigma, sigma_next):
    d = (x - D(x, sigma)) / sigma
    x_next = x + (sigma_next - sigma) * d
    if sigma_next == 0:
        return x_next
    return x + (sigma_next - sigma) * (d + (x_next - D(x_next, sigma_next)) / sigma_next) / 2


def _mmd2(x, y, h):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b).square() / (2 * h**2))
    m, n = len(x), len(y)
    return ((k(x, x).sum() - m) / (m * (m - 1)) + (k(y, y).sum() - n) / (n * (n - 1)) - 2 * k(x, y).mean())


def _precision_recall(x, y, k, col=None):
    col = k if col is None else col
    d = torch.cdist(x, y)
    r_x, r_y = (torch.cdist(z, z).sort(dim=1).values[:, col] for z in (x, y))
    return torch.stack([(d <= r_y).any(1).double().mean(), (d.T <= r_x).any(1).double().mean()])


def _eps_loss(eps_fn, x0, t, eps, abar):
    a = abar[:, None]
    return (eps_fn(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps).square().mean()


def _nfe(sampler, N, w, t_max):
    per_call = 2 if w > 0 else 1
    return per_call * (t_max + 1 if sampler == "ddpm" else 2 * N - 1 if sampler == "heun" else N)


def _first_at_floor(result, sampler, first_only=False, key="steps"):
    recs = sorted((r for r in result["records"] if r["sampler"] == sampler), key=lambda r: r["steps"])
    ok = [r["at_floor"] for r in recs]
    return next((r[key] for i, r in enumerate(recs) if (ok[i] if first_only else all(ok[i:]))), None)


def _diversity(x, c, power=1):
    return torch.stack([torch.pdist(x[c == k]).pow(power).mean() for k in c.unique() if (c == k).sum() >= 2]).mean()


SOLUTIONS = {
    "q_sample": lambda x0, abar, eps: math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps,
    "abar_from_betas": lambda betas: torch.cumprod(1 - betas, dim=0),
    "mixture_score": _mixture_score,
    "dsm_target": lambda x_tilde, x0, sigma: -(x_tilde - x0) / sigma**2,
    "eps_to_score": lambda eps, abar: -eps / math.sqrt(1 - abar),
    "eps_loss": _eps_loss,
    "x0_hat": lambda x_t, eps_hat, abar: (x_t - math.sqrt(1 - abar) * eps_hat) / math.sqrt(abar),
    "ddpm_step": lambda x, e, b, a, ap, z: (x - b / math.sqrt(1 - a) * e) / math.sqrt(1 - b)
    + math.sqrt((1 - ap) / (1 - a) * b) * z,
    "cfg": lambda eps_c, eps_null, w: (1 + w) * eps_c - w * eps_null,
    "classifier_guidance": lambda eps_hat, grad, abar, w: eps_hat - w * math.sqrt(1 - abar) * grad,
    "euler_step": lambda D, x, s, sn: x + (sn - s) * (x - D(x, s)) / s,
    "heun_step": _heun_step,
    "dpmpp_2m_step": _dpmpp_2m_step,
    "mmd2": _mmd2,
    "precision_recall": _precision_recall,
    "nfe": _nfe,
    "first_at_floor": _first_at_floor,
    "flow_path": lambda x0, eps, t: (1 - t) * x0 + t * eps,
    "flow_velocity": lambda x0, eps: eps - x0,
    "flow_euler_step": lambda v, x, t, t_next: x + (t_next - t) * v,
    "nearest_distance": lambda x, reference: torch.cdist(x, reference).min(dim=1).values,
    "diversity": _diversity,
}

# Three slips per exercise: a sign, a missing square root or factor, the wrong time / step / form.
WRONG = {
    "q_sample": [lambda x0, a, e: math.sqrt(a) * x0 - math.sqrt(1 - a) * e, lambda x0, a, e: a * x0 + (1 - a) * e,
                 lambda x0, a, e: math.sqrt(a) * x0 + math.sqrt(1 - a) * e * 1.01],
    "abar_from_betas": [lambda b: torch.cumprod(b, 0), lambda b: 1 - b, lambda b: torch.cumprod(1 - b, 0)[1:]],
    "mixture_score": [lambda x, m, sd: -_mixture_score(x, m, sd), lambda x, m, sd: _mixture_score(x, m, sd) * sd,
                      lambda x, m, sd: -(x[:, None] - m[None]).mean(1) / sd**2],
    "dsm_target": [lambda xt, x0, s: (xt - x0) / s**2, lambda xt, x0, s: -(xt - x0) / s,
                   lambda xt, x0, s: -(xt - x0) / 0.5**2],
    "eps_loss": [lambda f, x0, t, e, a: (f(a[:, None] * x0 + (1 - a[:, None]) * e, t) - e).square().mean(),
                 lambda f, x0, t, e, a: _eps_loss(f, x0, t, e, a) * x0.numel(),
                 lambda f, x0, t, e, a: _eps_loss(f, x0, (t - 1).clamp(min=0), e, a)],
    "x0_hat": [lambda x, e, a: (x + math.sqrt(1 - a) * e) / math.sqrt(a), lambda x, e, a: (x - (1 - a) * e) / a,
               lambda x, e, a: (x - math.sqrt(a) * e) / math.sqrt(1 - a)],
    "eps_to_score": [lambda e, a: e / math.sqrt(1 - a), lambda e, a: -e / (1 - a), lambda e, a: -e / math.sqrt(a)],
    "ddpm_step": [lambda x, e, b, a, ap, z: SOLUTIONS["ddpm_step"](x, -e, b, a, ap, z),
                  lambda x, e, b, a, ap, z: (x - b / math.sqrt(1 - a) * e) / math.sqrt(1 - b) + math.sqrt(b) * z,
                  lambda x, e, b, a, ap, z: SOLUTIONS["ddpm_step"](x, e, b, ap, ap, z)],
    "classifier_guidance": [lambda e, g, a, w: e + w * math.sqrt(1 - a) * g, lambda e, g, a, w: e - w * (1 - a) * g,
                            lambda e, g, a, w: e - (w + 1) * math.sqrt(1 - a) * g],
    "cfg": [lambda c, u, w: u + w * (c - u), lambda c, u, w: (1 + w) * u - w * c, lambda c, u, w: (1 - w) * c + w * u],
    "euler_step": [lambda D, x, s, sn: x - (sn - s) * (x - D(x, s)) / s, lambda D, x, s, sn: x + (sn - s) * D(x, s),
                   lambda D, x, s, sn: x + (sn - s) * (x - D(x, sn if sn else s)) / s],
    "heun_step": [SOLUTIONS["euler_step"], lambda D, x, s, sn: 2 * _heun_step(D, x, s, sn) - x,
                  lambda D, x, s, sn: _heun_step(D, x, sn if sn else s, s)],
    "dpmpp_2m_step": [lambda D, x, s, sn, Dp, hp: D(x, s) if sn == 0 else (sn / s) * x - math.expm1(-math.log(s / sn))
                      * D(x, s), lambda D, x, s, sn, Dp, hp: _dpmpp_2m_step(D, x, s, sn, Dp, -hp),
                      lambda D, x, s, sn, Dp, hp: (sn / s) * x + (1 - sn / s) * D(x, s)],
    "mmd2": [lambda x, y, h: (torch.exp(-torch.cdist(x, x).square() / (2 * h**2)).mean()
                              + torch.exp(-torch.cdist(y, y).square() / (2 * h**2)).mean()
                              - 2 * torch.exp(-torch.cdist(x, y).square() / (2 * h**2)).mean()),
             lambda x, y, h: _mmd2(x, y, 2 * h),
             lambda x, y, h: -_mmd2(x, y, h)],
    "precision_recall": [lambda x, y, k: _precision_recall(x, y, k, col=k - 1),
                         lambda x, y, k: _precision_recall(x, y, k).flip(0),
                         lambda x, y, k: _precision_recall(x, y, k + 5)],
    "nfe": [lambda s, N, w, tm: _nfe(s, N, w, tm) + (s == "heun") * (2 if w > 0 else 1),
            lambda s, N, w, tm: _nfe(s, N, 0.0, tm), lambda s, N, w, tm: 2 * _nfe(s, N, 0.0, tm),
            lambda s, N, w, tm: _nfe(s, N, w, tm - 1)],
    "first_at_floor": [lambda r, s: _first_at_floor(r, s, first_only=True),
                       lambda r, s: _first_at_floor(r, s, key="nfe"),
                       lambda r, s: _first_at_floor({"records": [{**q, "sampler": s} for q in r["records"]]}, s)],
    "flow_path": [lambda x0, e, t: t * x0 + (1 - t) * e, lambda x0, e, t: math.sqrt(1 - t) * x0 + math.sqrt(t) * e,
                  lambda x0, e, t: (1 - t) * x0 - t * e],
    "flow_velocity": [lambda x0, e: x0 - e, lambda x0, e: e, lambda x0, e: 2 * (e - x0)],
    "flow_euler_step": [lambda v, x, t, tn: x + (t - tn) * v, lambda v, x, t, tn: x + tn * v,
                        lambda v, x, t, tn: x - v],
    "nearest_distance": [lambda x, r: torch.cdist(x, r).square().min(1).values, lambda x, r: torch.cdist(x, r).mean(1),
                         lambda x, r: torch.cdist(x, r)[:, 1:].min(1).values],
    "diversity": [lambda x, c: torch.pdist(x).mean(), lambda x, c: _diversity(x, c, power=2),
                  lambda x, c: torch.cat([torch.pdist(x[c == k]) for k in c.unique() if (c == k).sum() >= 2]).mean()],
}


def test_every_exercise_has_a_solution_and_three_slips():
    assert set(SOLUTIONS) == set(WRONG) == set(exercises.CHECKS)


@pytest.mark.parametrize("name", sorted(exercises.CHECKS))
def test_the_reference_solution_passes(name, capsys):
    result = exercises.check(name, SOLUTIONS[name])
    assert result.passed, result.message
    assert capsys.readouterr().out.strip() == f"{name}: passed"


@pytest.mark.parametrize("name", sorted(exercises.CHECKS))
def test_wrong_solutions_get_not_yet_with_a_hint(name, capsys):
    for wrong in WRONG[name]:
        result = exercises.check(name, wrong)
        assert not result.passed and result.message
        assert len(capsys.readouterr().out.strip().splitlines()) == 1


def test_named_slips_get_their_own_hint():
    assert "sign" in exercises.check("q_sample", WRONG["q_sample"][0]).message
    assert "square roots" in exercises.check("q_sample", WRONG["q_sample"][1]).message
    assert "diffusers" in exercises.check("cfg", WRONG["cfg"][0]).message
    assert "beta~_t" in exercises.check("ddpm_step", WRONG["ddpm_step"][1]).message
    assert "biased" in exercises.check("mmd2", WRONG["mmd2"][0]).message
    assert "Euler step" in exercises.check("heun_step", WRONG["heun_step"][0]).message
    assert "differs by up to" in exercises.check("q_sample", WRONG["q_sample"][2]).message
    assert "about 2 x" in exercises.check("flow_velocity", WRONG["flow_velocity"][2]).message
    assert "square roots" in exercises.check("eps_loss", WRONG["eps_loss"][0]).message
    assert "do not sum" in exercises.check("eps_loss", WRONG["eps_loss"][1]).message
    assert "differs by up to" in exercises.check("eps_loss", WRONG["eps_loss"][2]).message  # the wrong timestep
    assert "sigma^2, not by sigma" in exercises.check("dsm_target", WRONG["dsm_target"][1]).message
    assert "subtract" in exercises.check("classifier_guidance", WRONG["classifier_guidance"][0]).message
    assert "squared distance" in exercises.check("nearest_distance", WRONG["nearest_distance"][0]).message
    assert "pooled" in exercises.check("diversity", WRONG["diversity"][2]).message
    assert "*other* point" in exercises.check("precision_recall", WRONG["precision_recall"][0]).message
    assert "swapped" in exercises.check("precision_recall", WRONG["precision_recall"][1]).message
    assert "its own centre's radius" in exercises.check(
        "precision_recall", lambda x, y, k: exercises._pr(x, y, k, own_balls=True)).message
    assert "2N - 1" in exercises.check("nfe", WRONG["nfe"][0]).message
    assert "double the count" in exercises.check("nfe", WRONG["nfe"][1]).message
    assert "at w = 0" in exercises.check("nfe", WRONG["nfe"][2]).message
    assert "t_max + 1" in exercises.check("nfe", WRONG["nfe"][3]).message
    assert "every larger N" in exercises.check("first_at_floor", WRONG["first_at_floor"][0]).message
    assert "not the NFE" in exercises.check("first_at_floor", WRONG["first_at_floor"][1]).message
    assert "records of `sampler`" in exercises.check("first_at_floor", WRONG["first_at_floor"][2]).message


def _raises(*args):
    raise RuntimeError("boom")


def _todo(*args):
    raise NotImplementedError


@pytest.mark.parametrize("bad, says", [(_todo, "not written yet"), (_raises, "raised RuntimeError: boom"),
                                       (lambda *a: None, "returned None"), (lambda *a: [1.0], "torch.Tensor"),
                                       (lambda *a: torch.zeros(3), "shape"),
                                       (lambda x0, a, e: x0 * float("nan"), "NaN"), (42, "function")])
def test_broken_functions_get_a_clear_not_yet_and_never_raise(bad, says):
    result = exercises.check("q_sample", bad)
    assert not result.passed and says in result.message


@pytest.mark.parametrize("name", ["nfe", "first_at_floor"])   # the exercises whose answer is an int (or None)
@pytest.mark.parametrize("bad, says", [(_todo, "not written yet"), (_raises, "raised RuntimeError: boom"),
                                       (lambda *a: None, "returned None"),
                                       (lambda *a: torch.zeros(3), "expected an int, got Tensor"),
                                       (lambda *a: float("nan"), "expected an int, got float"),
                                       (lambda *a: True, "expected an int, got bool"), (42, "function")])
def test_broken_count_functions_get_a_clear_not_yet_and_never_raise(name, bad, says):
    result = exercises.check(name, bad)
    assert not result.passed and says in result.message


def test_an_unknown_exercise_is_not_yet_with_the_list():
    result = exercises.check("nope", SOLUTIONS["cfg"])
    assert not result.passed and "q_sample" in result.message


def test_student_versions_replace_each_solution_with_a_stub_and_clear_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Predict first.\n### BEGIN SOLUTION\nThe answer.\n### END SOLUTION"),
                nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
                                          "check('cfg', f)", outputs=[nbformat.v4.new_output("stream", text="hi")],
                                          execution_count=3),
                nbformat.v4.new_code_cell("print(1)")]
    (tmp_path / "src").mkdir()
    nbformat.write(nb, tmp_path / "src" / "01_x.ipynb")
    [out] = exercises.write_student_versions(tmp_path / "src", tmp_path / "student")
    student = nbformat.read(out, as_version=4)
    assert student.cells[0].source == "Predict first.\n_Your answer here._\n"
    assert student.cells[1].source == f"def f(x):\n    {exercises.STUB}\ncheck('cfg', f)"
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.cells[2].source == "print(1)"
    with pytest.raises(ValueError, match="END SOLUTION"):
        exercises.strip_solutions("### BEGIN SOLUTION\nx = 1\n")
