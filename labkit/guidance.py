"""Classifier-free guidance (Ho & Salimans 2022) in the w form.

    eps_hat = (1 + w) eps(x, t, c) - w eps(x, t, null)

w = 0 is the plain conditional model. diffusers and GLIDE write the same thing with a guidance
scale s = 1 + w: eps_null + s (eps_c - eps_null).
"""

from __future__ import annotations

import torch

from ._checks import check_float, check_int, check_seed
from .metrics import mmd2
from .samplers import heun

# Beyond this the guided eps is dominated by w (eps_c - eps_null) and float32 outputs head for inf.
W_MAX = 1e4


def cfg(model, classes, w: float = 0.0):
    """The guided eps function eps_fn(x, t) of ``model`` for ``classes`` (Ho & Salimans 2022).

    ``model(x, t, c)`` takes a condition c with ``model.null`` as "no condition": an
    :class:`~labkit.model.EpsMLP` (class labels, null = num_classes; or a real number, null = NaN)
    or :class:`~labkit.oracle.MixtureEps`. ``classes`` is one condition (an int label or a real
    number), a tensor of shape (n,), or None for unconditional (only with w = 0). For w > 0 the
    conditional and null halves go through the model in one batched call. w lies in [0, W_MAX].
    """
    w, classes, null = _check_cfg(model, classes, w)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = classes if isinstance(classes, torch.Tensor) else torch.full((len(x),), classes, device=x.device)
        if w == 0.0:
            return model(x, t, c)
        eps_c, eps_null = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.full_like(c, null)])).chunk(2)
        return (1.0 + w) * eps_c - w * eps_null

    eps_fn.forwards = 1 if w == 0.0 else 2  # network forwards per call: the samplers' NFE counts them
    return eps_fn


def _check_cfg(model, classes, w):
    """cfg's arguments checked: (w, classes with None as the null condition, the null condition)."""
    w = check_float("w", w, 0.0, W_MAX)
    null = getattr(model, "null", getattr(model, "num_classes", None))
    if not callable(model) or not isinstance(getattr(model, "num_classes", None), int) or \
            not isinstance(null, (int, float)) or isinstance(null, bool):
        raise TypeError(f"model must be callable as model(x, t, c) and have an int num_classes "
                        f"(an EpsMLP or MixtureEps), got {type(model).__name__}")
    if classes is None:
        if w != 0.0:
            raise ValueError("classes must be given when w > 0 (guidance needs a condition)")
        return w, null, null
    if isinstance(null, float):  # a real-valued condition, NaN = null
        if isinstance(classes, torch.Tensor) and classes.is_floating_point() and classes.ndim == 1:
            return w, classes, null
        return w, check_float("classes", classes), null
    n = model.num_classes
    if isinstance(classes, int) and not isinstance(classes, bool):
        if not 0 <= classes <= n:
            raise ValueError(f"classes must lie in [0, {n}] ({n} = null), got {classes}")
    elif isinstance(classes, torch.Tensor) and not classes.is_floating_point() and classes.ndim == 1 \
            and classes.dtype != torch.bool:
        if len(classes) and (classes.min() < 0 or classes.max() > n):
            raise ValueError(f"classes must lie in [0, {n}] ({n} = null)")
        classes = classes.long()
    else:
        raise TypeError("classes must be None, an int or a 1-D integer tensor")
    return w, classes, null


# --- The fidelity / diversity trade-off of guidance, measured per class -------------------------

def class_spread(x: torch.Tensor) -> float:
    """Diversity of a batch x (n, 2): the mean distance of its points to their mean."""
    x = x.detach().to(torch.float64)
    return float((x - x.mean(0)).norm(dim=1).mean())


def precision(x: torch.Tensor, reference: torch.Tensor, k: int = 3) -> float:
    """Fidelity of samples x against a reference sample (Kynkaenniemi et al. 2019, arXiv:1904.06991):
    the fraction of x inside the union of balls around each reference point, of radius its
    distance to its k-th nearest reference neighbour. recall(x, ref) = precision(ref, x)."""
    k = check_int("k", k, 1, len(reference) - 1)
    x, reference = x.detach().to(torch.float64), reference.detach().to(torch.float64)
    radius = torch.cdist(reference, reference).kthvalue(k + 1, dim=1).values  # +1: skip the point itself
    return float((torch.cdist(x, reference) <= radius[None, :]).any(dim=1).to(torch.float64).mean())


def guidance_study(model, target, schedule, ws=(0.0, 1.0, 2.0, 4.0, 8.0), classes=None, n: int = 500,
                   steps: int = 32, seed: int = 0) -> list[dict]:
    """Fidelity and diversity of CFG samples of each class, for each w in ``ws``.

    For each class c (default: all) and each w, ``n`` samples by Heun with ``steps`` steps from
    the same noise (common random numbers: only w changes between rows of a class), compared with
    ``n`` fresh points of p(x | c). Returns one dict per (c, w) with keys w, s (= 1 + w, the
    diffusers/GLIDE scale), class, class_name, precision (fidelity: the share of samples on the
    support of p(x | c)), recall (diversity: the share of p(x | c) covered by the samples), see
    :func:`precision`, spread (diversity, :func:`class_spread`),
    target_spread (the spread of p(x | c) itself), mmd2 (to p(x | c)), and floor (MMD^2 between
    two target batches of class c: what a perfect sampler reaches).
    """
    ws = [check_float("w", w, low=0.0) for w in ws]
    if not ws:
        raise ValueError("ws must hold at least one guidance weight w >= 0")
    n = check_int("n", n, 2, 100_000)
    steps = check_int("steps", steps, 1, 10_000)
    seed = check_seed(seed)
    classes = list(range(target.num_classes)) if classes is None else [
        check_int("classes", c, 0, target.num_classes - 1) for c in classes]
    rows = []
    for c in classes:
        g = torch.Generator().manual_seed(seed + 7919 * c)
        reference = target.sample(n, g, classes=c)[0]
        floor = mmd2(target.sample(n, g, classes=c)[0], reference)
        noise = torch.randn(n, target.dim, generator=g)
        for w in ws:
            x = heun(cfg(model, c, w), schedule, noise, steps, keep_trajectory=False).x
            rows.append({"w": w, "s": 1.0 + w, "class": c, "class_name": target.class_names[c],
                         "precision": precision(x, reference), "recall": precision(reference, x),
                         "spread": class_spread(x), "target_spread": class_spread(reference),
                         "mmd2": mmd2(x, reference), "floor": floor})
    return rows


STUDY_METRICS = ("precision", "recall", "spread", "target_spread", "mmd2", "floor")


def summarize_study(rows: list[dict]) -> list[dict]:
    """Average the rows of :func:`guidance_study` over classes: one dict per w."""
    out = []
    for w in dict.fromkeys(r["w"] for r in rows):
        sel = [r for r in rows if r["w"] == w]
        out.append({"w": w, "s": 1.0 + w, **{k: sum(r[k] for r in sel) / len(sel) for k in STUDY_METRICS}})
    return out


def format_study(rows: list[dict]) -> str:
    """A plain-text table of :func:`guidance_study` or :func:`summarize_study` rows."""
    cols = [k for k in ("class_name", "w", "s", *STUDY_METRICS) if rows and k in rows[0]]
    lines = ["  ".join(f"{k:>13}" for k in cols)]
    for r in rows:
        lines.append("  ".join(f"{r[k]:>13}" if isinstance(r[k], str) else f"{r[k]:>13.3f}" for k in cols))
    return "\n".join(lines)
