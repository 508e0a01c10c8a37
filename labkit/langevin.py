"""Annealed Langevin dynamics (Song & Ermon 2019, arXiv:1907.05600, Algorithm 1) on an eps function.

Noise levels sigma_1 > ... > sigma_L are geometric. At level i, with t_i = t(sigma_i) on the
schedule, ``steps_per_level`` Langevin steps sample the noised marginal p_{t_i}:

    x <- x + delta_i / 2 * s(x, t_i) + sqrt(delta_i) z,     s(x, t) = -eps(x, t) / sqrt(1 - abar_t),

with z ~ N(0, I). The paper's step size (its alpha_i) = epsilon sigma_i^2 / sigma_L^2 is written for the
variance-exploding process x_sigma = x_0 + sigma eps. labkit's eps functions live in VP coordinates
x_t = sqrt(abar_t) x_sigma, where the same chain reads delta_i = epsilon abar_L (1 - abar_i) / (1 - abar_L);
``step_size`` is that constant epsilon abar_L, the step at the last (smallest) level.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_float, check_generator, check_int, check_points
from .samplers import SampleResult, _Recorder
from .schedules import Schedule


def noise_levels(levels: int, sigma_max: float, sigma_min: float) -> list[float]:
    """Geometric sigma_1 = sigma_max > ... > sigma_L = sigma_min (Song & Ermon 2019, Sec. 4.2)."""
    levels = check_int("levels", levels, 1, 10_000)
    sigma_min = check_float("sigma_min", sigma_min, 0.0, low_open=True)
    sigma_max = check_float("sigma_max", sigma_max, sigma_min)
    if levels == 1:
        return [sigma_min]
    ratio = math.log(sigma_min / sigma_max)
    return [sigma_max * math.exp(ratio * i / (levels - 1)) for i in range(levels)]


@torch.inference_mode()
def annealed_langevin(eps_fn, schedule: Schedule, noise: torch.Tensor, *, levels: int = 10,
                      steps_per_level: int = 100, step_size: float = 1e-4, sigma_max: float = 10.0,
                      sigma_min: float = 0.01, generator: torch.Generator | None = None) -> SampleResult:
    """Annealed Langevin dynamics from x = noise sqrt(1 - abar_{t_1}) (a draw of p_{t_1} when sigma_1 is large).

    Returns a :class:`~labkit.samplers.SampleResult`: ``x`` after the last step (VP coordinates at
    sigma_L, where abar is almost 1), the ``trajectory`` (start plus one entry per step) and
    ``nfe = levels * steps_per_level``. ``sigma_max`` and ``sigma_min`` must lie within the
    schedule's range of sigma_t. No final denoising step is taken (the paper's Algorithm 1).
    """
    if not callable(eps_fn):
        raise TypeError("eps_fn must be callable as eps_fn(x, t)")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    check_points("noise", noise, dim=None)
    steps_per_level = check_int("steps_per_level", steps_per_level, 1, 1_000_000)
    step_size = check_float("step_size", step_size, 0.0, 1.0, low_open=True)
    sigma_min = check_float("sigma_min", sigma_min, schedule.sigma_min, schedule.sigma_max)
    sigma_max = check_float("sigma_max", sigma_max, sigma_min, schedule.sigma_max)
    check_generator(generator)
    sigmas = noise_levels(levels, sigma_max, sigma_min)
    ts = schedule.sigma_to_t(torch.tensor(sigmas, dtype=torch.float64)).tolist()
    abars = [1.0 / (1.0 + s**2) for s in sigmas]
    x = noise * math.sqrt(1.0 - abars[0])
    record = _Recorder(True, len(sigmas) * steps_per_level + 1)
    record.add(x)
    for t, abar in zip(ts, abars, strict=True):
        delta = step_size * (1.0 - abar) / (1.0 - abars[-1])
        tt = torch.full((len(x),), t, dtype=x.dtype, device=x.device)
        for _ in range(steps_per_level):
            score = -eps_fn(x, tt) / math.sqrt(1.0 - abar)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + delta / 2 * score + math.sqrt(delta) * z
            record.add(x)
    return SampleResult(x, record.trajectory(), len(sigmas) * steps_per_level)
