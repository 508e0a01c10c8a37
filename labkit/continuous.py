"""Conditioning on a continuous attribute: a ring whose radius r is the condition.

The data are x = (r + noise) (cos phi, sin phi) with r uniform in [r_min, r_max] and phi uniform,
so p(x | r) is a thin circle of radius r. The model is the course's :class:`~labkit.model.EpsMLP`
with ``cond="scalar"``: r enters through a small embedding (Linear + SiLU) instead of a class
lookup table, and "no condition" is a learned null vector, chosen by r = NaN. It is built by
:func:`labkit.train.new_model` and trained by :func:`labkit.train.train` like every other model
(the condition dropped, r -> NaN, with probability ``p_uncond``), so :func:`labkit.guidance.cfg`
guides it too:

    eps_hat(x, t, r) = (1 + w) eps_theta(x, t, r) - w eps_theta(x, t, null).
"""

from __future__ import annotations

import math

import torch

from . import samplers
from ._checks import check_float, check_generator, check_int
from .guidance import cfg
from .schedules import Schedule


class RadiusRing:
    """Points on circles of random radius: r ~ U[r_min, r_max], phi ~ U[0, 2 pi), radial noise ``noise``.

    Like a :class:`~labkit.targets.Target` it has ``dim``, ``num_classes`` (0: the condition is
    a number, not a class) and a training ``recipe`` (read by :func:`labkit.train.recipe`).
    """

    dim = 2
    num_classes = 0
    recipe = {"steps": 3000, "lr": 3e-3, "cond": "scalar"}

    def __init__(self, r_min: float = 0.5, r_max: float = 2.5, noise: float = 0.05):
        self.r_min = check_float("r_min", r_min, 0.0, 100.0, low_open=True)
        self.r_max = check_float("r_max", r_max, self.r_min, 100.0, low_open=True)
        self.noise = check_float("noise", noise, 0.0, 10.0)
        self.name = "radius_ring"

    def __repr__(self) -> str:
        return f"RadiusRing(r_min={self.r_min}, r_max={self.r_max}, noise={self.noise})"

    def check_radius(self, radius, n: int) -> torch.Tensor:
        """``radius`` (a number or a float tensor of shape (n,)) as float64 of shape (n,), in [r_min, r_max]."""
        if isinstance(radius, torch.Tensor):
            if not radius.is_floating_point() or radius.shape != (n,):
                raise ValueError(f"radius must be a number or a float tensor of shape ({n},)")
            r = radius.to(torch.float64)
        else:
            r = torch.full((n,), check_float("radius", radius), dtype=torch.float64)
        if not torch.isfinite(r).all() or (r < self.r_min).any() or (r > self.r_max).any():
            raise ValueError(f"radius must lie in [{self.r_min}, {self.r_max}]")
        return r

    def sample(self, n: int, generator: torch.Generator | None = None, radius=None):
        """Draw ``n`` points: returns (x (n, 2) float32, r (n,) float32); ``radius`` fixes r."""
        n = check_int("n", n, 1, 10_000_000)
        check_generator(generator)
        if radius is None:
            r = self.r_min + (self.r_max - self.r_min) * torch.rand(n, generator=generator, dtype=torch.float64)
        else:
            r = self.check_radius(radius, n)
        phi = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        rho = r + self.noise * torch.randn(n, generator=generator, dtype=torch.float64)
        x = rho[:, None] * torch.stack([phi.cos(), phi.sin()], dim=1)
        return x.to(torch.float32), r.to(torch.float32)


@torch.inference_mode()
def sample_at_radius(model, schedule: Schedule, radius: float, n: int = 500, *,
                     steps: int = 16, w: float = 0.0, generator: torch.Generator | None = None
                     ) -> samplers.SampleResult:
    """``n`` samples of p(x | r = ``radius``) by Heun (EDM) with ``steps`` steps from N(0, I) noise, guided by ``w``."""
    n = check_int("n", n, 1, 1_000_000)
    check_generator(generator)
    noise = torch.randn(n, 2, generator=generator)
    return samplers.heun(cfg(model, check_float("radius", radius), w), schedule, noise, steps)


def mean_radius(x: torch.Tensor) -> float:
    """Mean distance of the points ``x`` (n, 2) from the origin."""
    return float(x.to(torch.float64).norm(dim=1).mean())
