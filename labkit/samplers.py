"""Reverse samplers over an eps function eps_fn(x, t) (t: float timesteps in [0, T-1]), built as in
k-diffusion from three pieces:

    eps_fn --(wrapped once)--> denoiser D(x; sigma)       grid: trailing(...) | karras(...) -> sigmas
    solver(D, x, sigmas): euler, heun, dpmpp_2m, ancestral, dpmpp_2m_sde (labkit.solvers)

A public sampler checks its inputs, builds the grid and runs a solver. Each returns a
:class:`SampleResult` with the final samples ``x``, the ``trajectory`` (data space, VP coordinates
x_sigma / sqrt(1 + sigma^2), first entry = start) and ``nfe`` (network forwards: a guided eps
function with w > 0 costs two per call). With ``keep_trajectory=False`` the trajectory is not
recorded (an empty list): keeping every step's tensor alive makes each step's arithmetic write to
fresh memory, which at 10^4 points costs more than the arithmetic itself (benchmarks/NOTES.md).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from . import solvers
from ._checks import check_float, check_generator, check_int, check_points
from .schedules import Schedule

MAX_STEPS = 10_000  # the largest step count any sampler takes


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


class Denoiser:
    """D(x; sigma) = x - sigma eps_fn(x / sqrt(1 + sigma^2), t(sigma)): an eps function seen in the
    variance-exploding coordinates x = x_VP sqrt(1 + sigma^2) (the job of k-diffusion's external.py).

    t(sigma) is the schedule's fractional timestep (:meth:`Schedule.sigma_to_t`), looked up once for
    the grid's sigmas. ``nfe`` counts network forwards (``eps_fn.forwards`` per call, 1 by default).
    """

    def __init__(self, eps_fn, schedule: Schedule, sigmas: list[float]):
        self.eps_fn, self.nfe = eps_fn, 0
        self.forwards = getattr(eps_fn, "forwards", 1)
        ts = schedule.sigma_to_t(torch.tensor(sigmas[:-1], dtype=torch.float64)).tolist()
        self.t = dict(zip(sigmas[:-1], ts))

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        t = torch.full((len(x),), self.t[sigma], dtype=x.dtype, device=x.device)
        eps_hat = self.eps_fn(x / math.sqrt(1 + sigma**2), t)
        if self.nfe == 0:
            _check_eps(eps_hat, x)
        self.nfe += self.forwards
        return x - sigma * eps_hat


def _check_eps(eps, x) -> None:
    if not isinstance(eps, torch.Tensor) or eps.shape != x.shape:
        raise ValueError(f"eps_fn must return a tensor of x's shape {tuple(x.shape)}, "
                         f"got {tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__}")


def _sample(solver, eps_fn, schedule: Schedule, x_start: torch.Tensor, sigmas: list[float], keep_trajectory,
            **solver_kwargs) -> SampleResult:
    """Run ``solver`` from the VP point ``x_start`` at sigmas[0]; record VP states; count forwards."""
    D = Denoiser(eps_fn, schedule, sigmas)
    record = _Recorder(keep_trajectory, len(sigmas))
    record.add(x_start)
    x = x_start * math.sqrt(1 + sigmas[0] ** 2)
    for x_next, sigma in zip(solver(D, x, sigmas, **solver_kwargs), sigmas[1:]):
        if record.keep:
            record.add(x_next / math.sqrt(1 + sigma**2))
        x = x_next
    bad = int((~torch.isfinite(x)).any(dim=1).sum())
    if bad:
        warnings.warn(f"{bad} of {len(x)} samples are not finite: the eps function or the start sigma "
                      f"({sigmas[0]:.4g}) is outside what the model handles; try sigma_max=80", RuntimeWarning,
                      stacklevel=3)
    return SampleResult(x, record.trajectory(), D.nfe)


# ---- sigma grids: decreasing lists of sigmas ending in 0 ------------------------------------------

def ddim_timesteps(schedule: Schedule, steps: int, sigma_max: float | None = 80.0) -> list[int]:
    """Trailing spacing (Lin et al. 2023, Table 2): t_i = round((t_max + 1)(1 - i/N)) - 1.

    t_max is the largest t with sigma_t <= sigma_max (T - 1 when sigma_max is None).
    """
    t_max = schedule.last_t_below(sigma_max)
    steps = check_int("steps", steps, 1, t_max + 1)
    return [round((t_max + 1) * (1 - i / steps)) - 1 for i in range(steps)]


def trailing(schedule: Schedule, steps: int, sigma_max: float | None = 80.0) -> list[float]:
    """sigma_t at DDIM's trailing timesteps (:func:`ddim_timesteps`), then 0."""
    return [float(schedule.sigmas[t]) for t in ddim_timesteps(schedule, steps, sigma_max)] + [0.0]


def karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """Karras et al. 2022, Eq. 5: sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho,
    i = 0..N-1, followed by sigma_N = 0."""
    steps = check_int("steps", steps, 1, MAX_STEPS)
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


GRIDS = {"trailing": trailing, "karras": karras}


def sigma_grid(schedule: Schedule, steps: int, grid: str = "karras", sigma_max: float | None = 80.0,
               sigma_min: float | None = None, rho: float = 7.0) -> list[float]:
    """The grid called ``grid`` for ``schedule``: ``trailing`` from the largest sigma_t <= sigma_max, or
    ``karras`` from sigma_max (lowered to the schedule's largest sigma) to sigma_min (default its smallest)."""
    check_grid(grid)
    if grid == "trailing":
        if sigma_min is not None or rho != 7.0:
            raise ValueError("sigma_min and rho apply to grid='karras' only; the trailing grid takes sigma_max")
        return trailing(schedule, steps, sigma_max)
    sigma_max = schedule.sigma_max if sigma_max is None else \
        min(check_float("sigma_max", sigma_max, low=schedule.sigma_min), schedule.sigma_max)
    sigma_min = schedule.sigma_min if sigma_min is None else \
        check_float("sigma_min", sigma_min, schedule.sigma_min, sigma_max)
    return karras(steps, sigma_min, sigma_max, rho)


def _vp(sigma: float) -> float:
    """The VP scale 1 / sqrt(1 + sigma^2) = sqrt(abar) times sigma: noise * _vp(sigma) starts at sigma."""
    return sigma / math.sqrt(1 + sigma**2)


# ---- the public samplers ---------------------------------------------------------------------------

@torch.inference_mode()
def ddpm(eps_fn, schedule: Schedule, noise: torch.Tensor, *, sigma_max: float | None = 80.0,
         generator: torch.Generator | None = None, keep_trajectory: bool = True) -> SampleResult:
    """Ancestral sampling over every timestep t = t_max..0 (Ho et al. 2020, Algorithm 2).

    Each step draws from the posterior q(x_{t-1} | x_t, x0_hat) with variance beta~_t; no noise at the
    last step, no clipping of x0_hat (2-D targets are not in [-1, 1]). ``sigma_max=None`` starts at
    x_{T-1} = noise (all T steps); otherwise at t_max, the largest t with sigma_t <= sigma_max, from
    noise sqrt(1 - abar_{t_max}). The default 80 is the start of the other samplers: under the cosine
    schedule beta_{T-1} = 0.999, so the step from t = T-1 multiplies a learned eps's error by about
    beta / sqrt((1 - abar) alpha) ~ 30 and throws points far outside the data (chapter 4).
    """
    _check_common(eps_fn, schedule, noise)
    check_generator(generator)
    sigmas = trailing(schedule, schedule.last_t_below(sigma_max) + 1, sigma_max)
    start = noise if sigma_max is None else noise * _vp(sigmas[0])
    return _sample(solvers.ancestral, eps_fn, schedule, start, sigmas, keep_trajectory, eta=1.0,
                   generator=generator)


@torch.inference_mode()
def ddim(eps_fn, schedule: Schedule, noise: torch.Tensor, steps: int, *, eta: float = 0.0,
         sigma_max: float | None = 80.0, grid: str = "trailing", generator: torch.Generator | None = None,
         keep_trajectory: bool = True) -> SampleResult:
    """DDIM (Song, Meng, Ermon 2021, Eq. 12) on ``steps`` steps of ``grid`` (DDIM's trailing timesteps).

    eta = 0 is deterministic: the Euler step of the probability-flow ODE in sigma
    (:func:`labkit.solvers.euler`); 0 < eta <= 1 adds noise (:func:`labkit.solvers.ancestral`), eta = 1
    with DDPM's posterior variance. Starts at x = noise sigma_0 / sqrt(1 + sigma_0^2), the point Heun
    starts from, since a learned eps is poor at the cosine schedule's sigma_{T-1} of about 2e4.
    """
    _check_common(eps_fn, schedule, noise)
    eta = check_float("eta", eta, 0.0, 1.0)
    check_generator(generator)
    sigmas = sigma_grid(schedule, steps, grid, sigma_max)
    start = noise * _vp(sigmas[0])
    if eta == 0:
        return _sample(solvers.euler, eps_fn, schedule, start, sigmas, keep_trajectory)
    return _sample(solvers.ancestral, eps_fn, schedule, start, sigmas, keep_trajectory, eta=eta,
                   generator=generator)


def ode_sampler(solver, grid: str = "karras", name: str | None = None):
    """The public sampler of a ``solver`` from :mod:`labkit.solvers`, on ``grid`` by default (a solver
    with a ``generator`` argument draws noise at each step and gets the sampler's ``generator``)."""
    default_grid = grid
    stochastic = "generator" in inspect.signature(solver).parameters

    @torch.inference_mode()
    def sample(eps_fn, schedule: Schedule, noise: torch.Tensor, steps: int, *, sigma_max: float | None = 80.0,
               sigma_min: float | None = None, rho: float = 7.0, grid: str = default_grid,
               generator: torch.Generator | None = None, keep_trajectory: bool = True) -> SampleResult:
        _check_common(eps_fn, schedule, noise)
        check_generator(generator)
        sigmas = sigma_grid(schedule, steps, grid, sigma_max, sigma_min, rho)
        kwargs = {"generator": generator} if stochastic else {}
        return _sample(solver, eps_fn, schedule, noise * _vp(sigmas[0]), sigmas, keep_trajectory, **kwargs)

    sample.__name__ = sample.__qualname__ = name or solver.__name__
    sample.__doc__ = (f"{solver.__doc__}\n\n    Runs :func:`labkit.solvers.{solver.__name__}` on ``steps`` steps of "
                      f"``grid`` (default {default_grid!r}) from x = noise sigma_0 (EDM's start, VP point "
                      "noise sigma_0 / sqrt(1 + sigma_0^2)); sigma_max above the schedule's largest sigma is "
                      "lowered to it, sigma_min defaults to its smallest.")
    return sample


heun = ode_sampler(solvers.heun)            # nfe = 2 steps - 1 (the last step is Euler)
dpmpp_2m = ode_sampler(solvers.dpmpp_2m)    # nfe = steps
euler_a = ode_sampler(solvers.ancestral, name="euler_a")  # Euler ancestral (eta = 1): DDPM's posterior on any grid
dpmpp_2m_sde = ode_sampler(solvers.dpmpp_2m_sde)  # nfe = steps


# ---- the registry --------------------------------------------------------------------------------

class Sampler(NamedTuple):
    fn: object
    label: str
    colour: str
    takes_steps: bool   # False: the step count is fixed by the schedule (DDPM)
    stochastic: bool    # draws fresh noise at each step (uses ``generator``)


SAMPLERS: dict[str, Sampler] = {
    "ddpm": Sampler(ddpm, "DDPM", "tab:gray", False, True),
    "ddim": Sampler(ddim, "DDIM (Euler)", "tab:blue", True, False),
    "heun": Sampler(heun, "Heun (EDM)", "tab:orange", True, False),
    "dpmpp_2m": Sampler(dpmpp_2m, "DPM-Solver++(2M)", "tab:green", True, False),
    "euler_a": Sampler(euler_a, "Euler ancestral", "tab:purple", True, True),
    "dpmpp_2m_sde": Sampler(dpmpp_2m_sde, "DPM-Solver++(2M) SDE", "tab:red", True, True),
}


def run(name: str, eps_fn, schedule: Schedule, noise: torch.Tensor, steps: int | None = None,
        generator: torch.Generator | None = None, **kwargs) -> SampleResult:
    """Run the sampler registered as ``name`` (see :data:`SAMPLERS`); ``steps`` is ignored by samplers
    that do not take it (DDPM), ``generator`` by those that draw no noise. ``kwargs`` go to the sampler
    (``keep_trajectory`` and ``sigma_max`` to any of them, ``grid`` to those that take steps)."""
    fn = SAMPLERS[check_sampler(name)].fn
    if "generator" in inspect.signature(fn).parameters:
        kwargs["generator"] = generator
    return fn(eps_fn, schedule, noise, steps, **kwargs) if SAMPLERS[name].takes_steps else \
        fn(eps_fn, schedule, noise, **kwargs)


def check_sampler(name, what: str = "sampler") -> str:
    """``name`` if it is a key of :data:`SAMPLERS`, else a ValueError naming ``what`` and the choices."""
    if name not in SAMPLERS:
        raise ValueError(f"{what} must be one of {list(SAMPLERS)}, got {name!r}")
    return name


def check_grid(name, what: str = "grid") -> str:
    """``name`` if it is a key of :data:`GRIDS`, else a ValueError naming ``what`` and the choices."""
    if name not in GRIDS:
        raise ValueError(f"{what} must be one of {list(GRIDS)}, got {name!r}")
    return name
