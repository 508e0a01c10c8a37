"""Perturbed targets: samples that are almost, but not quite, a target, to calibrate quality criteria.

Each entry of :data:`PERTURBATIONS` maps a name to ``(target name, description, draw)`` where
``draw(n, generator)`` returns ``n`` points of shape (n, 2), float64. The ring8 cases are the five
defects a sampler is known to make (COURSE section 3); the others blur non-mixture targets.
``fresh`` cases draw from the target itself, the ones a criterion must accept.
"""

from __future__ import annotations

import math

import torch

from . import targets
from ._checks import check_float, check_generator, check_int


def ring8_like(n: int, generator=None, *, sd: float = 0.1, heavy: float = 1.0, missing: bool = False,
               between: float = 0.0) -> torch.Tensor:
    """ring8 (8 modes, radius 2, sd 0.1) with its defects: mode ``sd``, mode 0 with ``heavy`` times the
    weight (or ``missing``), and a fraction ``between`` of the points spread along the ring between modes."""
    n = check_int("n", n, 1, 10_000_000)
    check_generator(generator)
    sd = check_float("sd", sd, 0.0, 100.0, low_open=True)
    heavy = check_float("heavy", heavy, 0.0, 1000.0)
    between = check_float("between", between, 0.0, 1.0)
    weights = torch.ones(8, dtype=torch.float64)
    weights[0] = 0.0 if missing else heavy
    mode = torch.multinomial(weights / weights.sum(), n, replacement=True, generator=generator)
    angle = 2 * math.pi * mode.to(torch.float64) / 8
    radius = torch.full((n,), 2.0, dtype=torch.float64)
    # Points between modes: a uniform angle in the middle 70% of a gap (beyond 2.5 sd of either
    # mode's centre, whose angular sd is 0.1 / 2 = 0.05 rad), at the modes' radial spread.
    m = round(between * n)
    gap = mode[:m].to(torch.float64) + 0.15 + 0.7 * torch.rand(m, generator=generator, dtype=torch.float64)
    angle[:m] = 2 * math.pi * gap / 8
    radius[:m] += 0.1 * torch.randn(m, generator=generator, dtype=torch.float64)
    centre = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    z[:m] = 0.0
    return centre + sd * z


def _fresh(name):
    return lambda n, generator=None: targets.get(name).sample(n, generator)[0].to(torch.float64)


def _blurred(name, sd):
    def draw(n, generator=None):
        x = targets.get(name).sample(n, generator)[0].to(torch.float64)
        return x + sd * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return draw


def _moons_noise(scale):
    def draw(n, generator=None):
        x = targets.get("moons").sample(n, generator)[0].to(torch.float64)
        # moons is curve + 0.08 z: adding sqrt(scale^2 - 1) * 0.08 z' makes the noise scale x 0.08.
        return x + math.sqrt(scale ** 2 - 1) * 0.08 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return draw


PERTURBATIONS = {
    "ring8 modes 2x too wide": ("ring8", "sd 0.2", lambda n, g=None: ring8_like(n, g, sd=0.2)),
    "ring8 modes at half width": ("ring8", "sd 0.05", lambda n, g=None: ring8_like(n, g, sd=0.05)),
    "ring8 one mode missing": ("ring8", "7 modes", lambda n, g=None: ring8_like(n, g, missing=True)),
    "ring8 one mode 3x the weight": ("ring8", "weights 3:1", lambda n, g=None: ring8_like(n, g, heavy=3.0)),
    "ring8 10% between modes": ("ring8", "10% of the points in the gaps",
                                lambda n, g=None: ring8_like(n, g, between=0.1)),
    "ring8 modes 2.3x too wide": ("ring8", "sd 0.23 (Euler, trailing, 4 steps)",
                                  lambda n, g=None: ring8_like(n, g, sd=0.23)),
    "moons curve noise doubled": ("moons", "noise 0.16", _moons_noise(2.0)),
}
PERTURBATIONS.update({f"{name} blurred by N(0, 0.1^2)": (name, "x + 0.1 z", _blurred(name, 0.1))
                      for name in ("moons", "swiss_roll", "checkerboard", "spirals", "text")})
FRESH = {f"{name} fresh": (name, "fresh target samples", _fresh(name)) for name in targets.names()}
