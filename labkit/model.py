"""A small eps-prediction MLP conditioned on a continuous time t and a class label.

eps_theta(x_t, t, c): x is (n, 2), t is a float tensor of timesteps in [0, T-1] (fractional
allowed: the sinusoidal embedding is continuous in t), c is a long tensor of labels where the
index ``num_classes`` is the null token used for unconditional prediction and CFG.
"""

from __future__ import annotations

import math

import torch
from torch import nn

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


class EpsMLP(nn.Module):
    """MLP eps_theta(x, t, c): [x, emb(t), emb(c)] -> ``depth`` SiLU layers of ``width`` -> eps."""

    def __init__(self, num_classes: int, T: int = 1000, dim: int = 2, width: int = 128,
                 depth: int = 3, time_dim: int = 32, class_dim: int = 16):
        super().__init__()
        self.config = {
            "num_classes": check_int("num_classes", num_classes, 0, 10_000),
            "T": check_int("T", T, 2, 100_000),
            "dim": check_int("dim", dim, 1, 1024),
            "width": check_int("width", width, 1, 65_536),
            "depth": check_int("depth", depth, 1, 64),
            "time_dim": check_int("time_dim", time_dim, 2, 4096),
            "class_dim": check_int("class_dim", class_dim, 1, 4096),
        }
        if time_dim % 2:
            raise ValueError(f"time_dim must be even (sin and cos features), got {time_dim}")
        self.num_classes, self.T, self.dim, self.time_dim = num_classes, T, dim, time_dim
        # One extra row: index num_classes is the null token (no label), trained by label dropout.
        self.class_embedding = nn.Embedding(num_classes + 1, class_dim)
        self.net = mlp(dim + time_dim + class_dim, width, depth, dim)

    @property
    def null_class(self) -> int:
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is None:
            c = torch.full((len(x),), self.null_class, dtype=torch.long, device=x.device)
        # Inputs in another dtype than the weights (float64 noise, say) are computed in the weights'
        # dtype and returned in x's dtype.
        dtype = self.class_embedding.weight.dtype
        xm = x.to(dtype)
        h = torch.cat([xm, time_embedding(t.to(dtype), self.time_dim, self.T), self.class_embedding(c)], dim=1)
        return self.net(h).to(x.dtype)

    def eps_fn(self, classes=None):
        """An eps function eps_fn(x, t) for ``classes`` (None: the null token, unconditional)."""
        from .guidance import cfg

        return cfg(self, classes, 0.0)
