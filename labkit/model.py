"""A small eps-prediction MLP conditioned on a continuous time t and a condition c.

eps_theta(x_t, t, c): x is (n, dim), t is a float tensor of timesteps in [0, T-1] (fractional
allowed: the sinusoidal embedding is continuous in t). The condition enters through an embedding:

* ``cond="label"``: c is a long tensor of class labels, looked up in a table whose row
  ``num_classes`` is the null token (no label), used for unconditional prediction and CFG;
* ``cond="scalar"``: c is a real number per point (a ring's radius, say) through a small MLP,
  and c = NaN selects a learned null vector.

With ``fourier`` = m > 0, x enters as [x, sin(2 pi x B), cos(2 pi x B)], B a fixed random (dim, m) matrix:
random Fourier features (Tancik et al. 2020), for targets with detail finer than a small MLP on x alone
learns in a short training (the spirals' arm ends).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_int


def time_embedding(t: torch.Tensor, dim: int, T: int) -> torch.Tensor:
    """Sinusoidal features of t / T at geometric frequencies (Vaswani et al. 2017, as in DDPM).

    The angle for frequency k is (t / T) * 1000 * 10000^(-k / (dim/2)): the same frequencies as
    the integer-timestep embedding of DDPM when T = 1000, but defined for any real t.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    angle = (t * (1000.0 / T))[:, None] * freqs[None, :]
    return torch.cat([angle.sin(), angle.cos()], dim=1)


def mlp(width_in: int, width: int, depth: int, width_out: int) -> nn.Sequential:
    """``depth`` Linear + SiLU layers of ``width``, then a Linear to ``width_out``."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width_in, width), nn.SiLU()]
        width_in = width
    layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)


class LabelEmbedding(nn.Embedding):
    """Class labels 0..num_classes-1 through a lookup table; the extra row ``null`` = num_classes is the
    null token (no label), trained by label dropout."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__(num_classes + 1, dim)
        self.null = num_classes


class ScalarEmbedding(nn.Module):
    """A real condition r through SiLU(a r + b) (``dim`` features); r = NaN (``null``) selects a learned null vector."""

    null = math.nan

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(1, dim)
        self.null_vector = nn.Parameter(torch.zeros(dim))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.to(self.null_vector.dtype)[:, None]
        return torch.where(r.isnan(), self.null_vector, F.silu(self.linear(r.nan_to_num())))


class FourierFeatures(nn.Module):
    """x -> [x, sin(2 pi x B), cos(2 pi x B)] with B a fixed (dim, m) matrix of N(0, 1) entries, drawn once
    from torch's global generator and saved with the weights (Tancik et al. 2020)."""

    def __init__(self, dim: int, m: int):
        super().__init__()
        self.register_buffer("B", torch.randn(dim, m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * x @ self.B
        return torch.cat([x, angle.sin(), angle.cos()], 1)


class EpsMLP(nn.Module):
    """MLP eps_theta(x, t, c): [feat(x), emb(t), emb(c)] -> ``depth`` SiLU layers of ``width`` -> eps.

    ``cond`` is "label" (c a class label, :class:`LabelEmbedding`) or "scalar" (c a real number,
    :class:`ScalarEmbedding`, with ``num_classes`` = 0); ``class_dim`` is the width of emb(c).
    feat(x) is x itself, or with ``fourier`` = m > 0 x and 2m random Fourier features (:class:`FourierFeatures`).
    """

    def __init__(self, num_classes: int, T: int = 1000, dim: int = 2, width: int = 128,
                 depth: int = 3, time_dim: int = 32, class_dim: int = 16, cond: str = "label", fourier: int = 0):
        super().__init__()
        self.config = {
            "num_classes": check_int("num_classes", num_classes, 0, 10_000),
            "T": check_int("T", T, 2, 100_000),
            "dim": check_int("dim", dim, 1, 1024),
            "width": check_int("width", width, 1, 65_536),
            "depth": check_int("depth", depth, 1, 64),
            "time_dim": check_int("time_dim", time_dim, 2, 4096),
            "class_dim": check_int("class_dim", class_dim, 1, 4096),
            "cond": cond,
            "fourier": check_int("fourier", fourier, 0, 4096),
        }
        if time_dim % 2:
            raise ValueError(f"time_dim must be even (sin and cos features), got {time_dim}")
        if cond not in ("label", "scalar") or (cond == "scalar" and num_classes != 0):
            raise ValueError(f"cond must be 'label' or 'scalar' (with num_classes = 0), got {cond!r} "
                             f"with num_classes = {num_classes}")
        self.num_classes, self.T, self.dim, self.time_dim, self.cond = num_classes, T, dim, time_dim, cond
        self.cond_embedding = LabelEmbedding(num_classes, class_dim) if cond == "label" else ScalarEmbedding(class_dim)
        self.x_features = FourierFeatures(dim, fourier) if fourier else nn.Identity()
        self.net = mlp(dim + 2 * fourier + time_dim + class_dim, width, depth, dim)

    @property
    def null(self) -> int | float:
        """The null condition: the label ``num_classes``, or NaN for a scalar condition."""
        return self.cond_embedding.null

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """eps_theta(x, t, c) (c = None: null), computed in the weights' dtype and device, returned in x's."""
        w = self.net[0].weight
        if c is None:
            c = torch.full((len(x),), self.null, device=w.device)
        h = torch.cat([self.x_features(x.to(w)), time_embedding(t.to(w), self.time_dim, self.T),
                       self.cond_embedding(c.to(w.device))], 1)
        return self.net(h).to(x)

    def eps_fn(self, classes=None):
        """An eps function eps_fn(x, t) for ``classes`` (None: the null condition, unconditional)."""
        from .guidance import cfg

        return cfg(self, classes, 0.0)
