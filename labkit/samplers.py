"""Reverse samplers over an eps function eps_fn(x, t) (t: float timesteps in [0, T-1]).

Each returns a :class:`SampleResult` with the final samples ``x``, the ``trajectory`` (data
space, VP coordinates, first entry = start) and ``nfe`` (number of eps_fn calls). With
``keep_trajectory=False`` the trajectory is not recorded (an empty list): keeping every step's
tensor alive makes each step's arithmetic write to fresh memory, which at 10^4 points costs
more than the arithmetic itself (benchmarks/NOTES.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ._checks import check_float, check_generator, check_int, check_points
from .schedules import Schedule

HEUN_MAX_STEPS = 10_000


@dataclass
class SampleResult:
    x: torch.Tensor
    trajectory: list[torch.Tensor] = field(repr=False)
    nfe: int


def _check_common(eps_fn, schedule, noise):
    if not callable(eps_fn):
        raise TypeError("eps_fn must be callable as eps_fn(x, t)")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    check_points("noise", noise, dim=None)


class _Recorder:
    """Copies a sampler's states into one (length, n, d) tensor allocated up front.

    Appending each step's fresh tensor to a list instead interleaves long-lived small blocks
    with the model's freed activations, and with two torch threads the allocator's heaps then
    grow by about one activation per step (DDPM-1000 on 1000 points: +480 MB, benchmarks/NOTES.md).
    """

    def __init__(self, keep_trajectory, length: int):
        if not isinstance(keep_trajectory, bool):
            raise TypeError(f"keep_trajectory must be True or False, got {keep_trajectory!r}")
        self.keep, self.length, self.count = keep_trajectory, length, 0
        self.buffer: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        if not self.keep:
            return
        if self.buffer is None:
            self.buffer = torch.empty((self.length, *x.shape), dtype=x.dtype, device=x.device)
        elif self.buffer.dtype != x.dtype:  # an eps_fn returning another dtype promotes x
            self.buffer = self.buffer.to(torch.promote_types(self.buffer.dtype, x.dtype))
        self.buffer[self.count] = x
        self.count += 1

    def trajectory(self) -> list[torch.Tensor]:
        return [] if self.buffer is None else list(self.buffer[: self.count].unbind(0))


def _eps(eps_fn, x, t: float):
    eps = eps_fn(x, torch.full((len(x),), t, dtype=x.dtype, device=x.device))
    if not isinstance(eps, torch.Tensor) or eps.shape != x.shape:
        raise ValueError(f"eps_fn must return a tensor of x's shape {tuple(x.shape)}, "
                         f"got {tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__}")
    return eps


@torch.inference_mode()
def ddpm(eps_fn, schedule: Schedule, noise: torch.Tensor, *, generator: torch.Generator | None = None,
         keep_trajectory: bool = True) -> SampleResult:
    """Ancestral sampling over all T steps (Ho et al. 2020, Algorithm 2).

    x_{T-1} = noise; for t = T-1..0:
        x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t) + sqrt(beta~_t) z,
    with the posterior variance beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t and no noise at
    t = 0. No clipping of the predicted x_0 (2-D targets are not confined to [-1, 1]).
    """
    _check_common(eps_fn, schedule, noise)
    check_generator(generator)
    record = _Recorder(keep_trajectory, schedule.T + 1)
    betas, alphas, abar = (v.tolist() for v in (schedule.betas, schedule.alphas, schedule.alphas_cumprod))
    x = noise
    record.add(x)
    for t in range(schedule.T - 1, -1, -1):
        eps_hat = _eps(eps_fn, x, t)
        x = (x - betas[t] / math.sqrt(1 - abar[t]) * eps_hat) / math.sqrt(alphas[t])
        if t > 0:
            beta_tilde = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + math.sqrt(beta_tilde) * z
        record.add(x)
    return SampleResult(x, record.trajectory(), schedule.T)


def ddim_timesteps(schedule: Schedule, steps: int, sigma_max: float | None = 80.0) -> list[int]:
    """Trailing spacing (Lin et al. 2023, Table 2): t_i = round((t_max + 1)(1 - i/N)) - 1.

    t_max is the largest t with sigma_t <= sigma_max (T - 1 when sigma_max is None).
    """
    t_max = schedule.last_t_below(sigma_max)
    steps = check_int("steps", steps, 1, t_max + 1)
    return [round((t_max + 1) * (1 - i / steps)) - 1 for i in range(steps)]


@torch.inference_mode()
def ddim(eps_fn, schedule: Schedule, noise: torch.Tensor, steps: int, *, eta: float = 0.0,
         sigma_max: float | None = 80.0, generator: torch.Generator | None = None,
         keep_trajectory: bool = True) -> SampleResult:
    """DDIM (Song, Meng, Ermon 2021, Eq. 12) on ``steps`` trailing timesteps.

    From t to the next timestep s (abar_s = 1 after the last one):
        x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)
        sigma  = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)
        x_s    = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z.
    eta = 0 is deterministic (the Euler step of the probability-flow ODE in sigma); eta = 1 has
    DDPM's posterior variance. Starts at x = noise sqrt(1 - abar_{t_max}), the point Heun starts
    from, since a learned eps is poor at the cosine schedule's sigma_{T-1} of about 2e4.
    """
    _check_common(eps_fn, schedule, noise)
    eta = check_float("eta", eta, 0.0, 1.0)
    check_generator(generator)
    timesteps = ddim_timesteps(schedule, steps, sigma_max)
    record = _Recorder(keep_trajectory, len(timesteps) + 1)
    abar = schedule.alphas_cumprod.tolist()
    x = noise * math.sqrt(1 - abar[timesteps[0]])
    record.add(x)
    for i, t in enumerate(timesteps):
        abar_s = abar[timesteps[i + 1]] if i + 1 < len(timesteps) else 1.0
        eps_hat = _eps(eps_fn, x, t)
        x0_hat = (x - math.sqrt(1 - abar[t]) * eps_hat) / math.sqrt(abar[t])
        sigma = eta * math.sqrt((1 - abar_s) / (1 - abar[t]) * (1 - abar[t] / abar_s))
        x = math.sqrt(abar_s) * x0_hat + math.sqrt(max(1 - abar_s - sigma**2, 0.0)) * eps_hat
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        record.add(x)
    return SampleResult(x, record.trajectory(), len(timesteps))


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """Karras et al. 2022, Eq. 5: sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho,
    i = 0..N-1, followed by sigma_N = 0."""
    steps = check_int("steps", steps, 1, HEUN_MAX_STEPS)
    sigma_max = check_float("sigma_max", sigma_max, 0.0, low_open=True)
    sigma_min = check_float("sigma_min", sigma_min, 0.0, sigma_max, low_open=True)
    rho = check_float("rho", rho, 0.0, 100.0, low_open=True)
    if steps == 1:
        return [sigma_max, 0.0]
    # The same formula with sigma_max^(1/rho) factored out, sigma_max (1 + i/(N-1) (r - 1))^rho with
    # r = (smin/smax)^(1/rho) <= 1: sigma_max^(1/rho) itself overflows a float for small rho.
    r = (sigma_min / sigma_max) ** (1 / rho)
    inner = [sigma_max * (1 + i / (steps - 1) * (r - 1)) ** rho for i in range(1, steps - 1)]
    return [sigma_max, *inner, sigma_min, 0.0]


@torch.inference_mode()
def heun(eps_fn, schedule: Schedule, noise: torch.Tensor, steps: int, *, sigma_max: float = 80.0,
         sigma_min: float | None = None, rho: float = 7.0, keep_trajectory: bool = True) -> SampleResult:
    """Heun's 2nd-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1,
    i.e. Algorithm 2 without churn), in sigma space: dx/dsigma = (x - D(x; sigma)) / sigma.

    With D(x; sigma) = x - sigma eps_fn(x / sqrt(1 + sigma^2), t(sigma)) the slope is just the
    eps prediction at the VP point x / sqrt(1 + sigma^2). sigma_max above the schedule's largest
    sigma is lowered to it; sigma_min defaults to the schedule's smallest sigma. The last step
    (to sigma = 0) is Euler, so nfe = 2 steps - 1.
    """
    _check_common(eps_fn, schedule, noise)
    sigma_max = min(check_float("sigma_max", sigma_max, low=schedule.sigma_min), schedule.sigma_max)
    sigma_min = schedule.sigma_min if sigma_min is None else \
        check_float("sigma_min", sigma_min, schedule.sigma_min, sigma_max)
    rho = check_float("rho", rho, 0.0, 100.0, low_open=True)
    sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho)
    record = _Recorder(keep_trajectory, steps + 1)
    ts = schedule.sigma_to_t(torch.tensor(sigmas[:-1], dtype=torch.float64)).tolist() + [None]

    def slope(x, i):  # (x - D(x; sigma_i)) / sigma_i
        return _eps(eps_fn, x / math.sqrt(1 + sigmas[i] ** 2), ts[i])

    x = noise * sigmas[0]                       # Alg. 1 line 2: x_0 ~ N(0, sigma_0^2 I)
    record.add(x / math.sqrt(1 + sigmas[0] ** 2))
    nfe = 0
    for i in range(steps):
        d = slope(x, i)                          # line 4
        x_next = x + (sigmas[i + 1] - sigmas[i]) * d   # line 5: Euler step
        nfe += 1
        if sigmas[i + 1] != 0:                   # lines 6-8: 2nd-order correction
            d_next = slope(x_next, i + 1)
            x_next = x + (sigmas[i + 1] - sigmas[i]) * (d + d_next) / 2
            nfe += 1
        x = x_next
        if record.keep:
            record.add(x / math.sqrt(1 + sigmas[i + 1] ** 2))
    return SampleResult(x, record.trajectory(), nfe)


SAMPLERS = ("ddpm", "ddim", "heun")


def run(name: str, eps_fn, schedule: Schedule, noise: torch.Tensor, steps: int | None = None,
        generator: torch.Generator | None = None, **kwargs) -> SampleResult:
    """Dispatch by name: ``ddpm`` ignores ``steps`` (always T), ``ddim`` and ``heun`` need it.
    ``kwargs`` go to the sampler (``keep_trajectory`` to any of them)."""
    if name == "ddpm":
        return ddpm(eps_fn, schedule, noise, generator=generator, **kwargs)
    if name == "ddim":
        return ddim(eps_fn, schedule, noise, steps, generator=generator, **kwargs)
    if name == "heun":
        return heun(eps_fn, schedule, noise, steps, **kwargs)
    raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {name!r}")
