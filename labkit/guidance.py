"""Classifier-free guidance (Ho & Salimans 2022) in the w form.

    eps_hat = (1 + w) eps(x, t, c) - w eps(x, t, null)

w = 0 is the plain conditional model. diffusers and GLIDE write the same thing with a guidance
scale s = 1 + w: eps_null + s (eps_c - eps_null).
"""

from __future__ import annotations

import torch

from ._checks import check_float


def cfg(model, classes, w: float = 0.0):
    """The guided eps function eps_fn(x, t) of ``model`` for ``classes``.

    ``model(x, t, c)`` takes labels c with ``model.num_classes`` as the null token (an
    :class:`~labkit.model.EpsMLP` or :class:`~labkit.oracle.MixtureEps`). ``classes`` is an int,
    a long tensor of shape (n,), or None for unconditional (only with w = 0). For w > 0 the
    conditional and null halves go through the model in one batched call.
    """
    w = check_float("w", w, low=0.0)
    num_classes = model.num_classes
    if classes is None:
        if w != 0.0:
            raise ValueError("classes must be given when w > 0 (guidance needs a condition)")
    elif isinstance(classes, int) and not isinstance(classes, bool):
        if not 0 <= classes <= num_classes:
            raise ValueError(f"classes must lie in [0, {num_classes}] ({num_classes} = null), got {classes}")
    elif isinstance(classes, torch.Tensor) and not classes.is_floating_point() and classes.ndim == 1:
        if len(classes) and (classes.min() < 0 or classes.max() > num_classes):
            raise ValueError(f"classes must lie in [0, {num_classes}] ({num_classes} = null)")
    else:
        raise TypeError("classes must be None, an int or a 1-D integer tensor")
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None

    def labels(n, device):
        if classes is None:
            return torch.full((n,), num_classes, dtype=torch.long, device=device)
        if isinstance(classes, int):
            return torch.full((n,), classes, dtype=torch.long, device=device)
        if len(classes) != n:
            raise ValueError(f"classes has length {len(classes)} but x has {n} rows")
        return classes.to(device=device, dtype=torch.long)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError("x must be a tensor of shape (n, d)")
        if not isinstance(t, torch.Tensor) or t.shape != (len(x),):
            raise ValueError(f"t must be a float tensor of shape ({len(x)},)")
        dtype = param.dtype if param is not None else x.dtype
        device = param.device if param is not None else x.device
        xm, tm = x.to(device=device, dtype=dtype), t.to(device=device, dtype=dtype)
        c = labels(len(x), device)
        if w == 0.0:
            return model(xm, tm, c).to(device=x.device, dtype=x.dtype)
        null = torch.full_like(c, num_classes)
        eps_c, eps_null = model(torch.cat([xm, xm]), torch.cat([tm, tm]), torch.cat([c, null])).chunk(2)
        return ((1.0 + w) * eps_c - w * eps_null).to(device=x.device, dtype=x.dtype)

    return eps_fn
