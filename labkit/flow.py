"""Flow matching on the linear (rectified-flow) path (Lipman et al. 2023; Liu, Gong, Liu 2023).

    x_t = (1 - t) x_0 + t eps,   t in [0, 1] (t = 0 data, t = 1 noise),   v = dx_t/dt = eps - x_0.

A **velocity function** is ``velocity_fn(x, t) -> v`` with t a float tensor of shape (n,) in [0, 1].
Regressing a network on the conditional velocity eps - x_0 learns the marginal velocity
E[eps - x_0 | x_t = x] (:func:`labkit.oracle.velocity_fn` is that exact field for a mixture), and
samples are drawn by integrating dx/dt = v from t = 1 down to 0 (:func:`sample`).

The velocity network is labkit's one :class:`~labkit.model.EpsMLP` (T = 1000) fed the scaled time
(T - 1) t, so its sinusoidal time embedding sees the same range [0, T - 1] as a diffusion model's
(:class:`Velocity`); it trains through the one loop :func:`labkit.train.fit` with :func:`loss`.

The diffusion ODE is the same ODE in other coordinates: with t = sigma / (1 + sigma) and
x = x_VE / (1 + sigma), an eps model's x0_hat and eps_hat give v = eps_hat - x0_hat
(:func:`velocity_from_eps`), and Euler on it over t_i = sigma_i / (1 + sigma_i) is DDIM on sigma_i.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

import torch

from . import __version__, checkpoints
from ._checks import check_float, check_int, check_points, check_seed
from .model import EpsMLP
from .samplers import MAX_STEPS, SampleResult, _check_eps, karras
from .schedules import Schedule

SOLVERS = ("euler", "heun")
T_SAMPLING = ("uniform", "logit_normal")
# ring8's recipe for the velocity MLP (the eps-MLP's shape); t_sampling measured in benchmarks/flow_study.py
DEFAULTS = {"steps": 6000, "batch_size": 512, "lr": 1e-2, "p_uncond": 0.3, "width": 128, "depth": 3,
            "t_sampling": "uniform"}


class Velocity:
    """v_theta(x, t, c) = model(x, (T - 1) t, c): an :class:`EpsMLP` trained on the flow loss, called
    with flow time t in [0, 1]. Has ``num_classes`` and ``null``, so :func:`labkit.guidance.cfg` guides it."""

    def __init__(self, model: EpsMLP):
        if not isinstance(model, EpsMLP):
            raise TypeError(f"model must be an EpsMLP, got {type(model).__name__}")
        self.model, self.num_classes, self.null = model, model.num_classes, model.null

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, (self.model.T - 1) * t, c)


def velocity_fn(model: EpsMLP, classes=None, w: float = 0.0):
    """The velocity function of a trained velocity model for ``classes``, guided with weight ``w``:
    v_hat = (1 + w) v(x, t, c) - w v(x, t, null) (classifier-free guidance, :func:`labkit.guidance.cfg`)."""
    from .guidance import cfg

    return cfg(Velocity(model), classes, w)


def draw_t(n: int, t_sampling: str, g: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Training times: ``uniform`` on [0, 1], or ``logit_normal`` t = sigmoid(u), u ~ N(0, 1) (Esser et al. 2024)."""
    if t_sampling == "uniform":
        return torch.rand(n, generator=g, dtype=dtype)
    return torch.sigmoid(torch.randn(n, generator=g, dtype=dtype))


def loss(model: EpsMLP, p_uncond: float = 0.1, t_sampling: str = "uniform") -> Callable:
    """The flow-matching loss ``loss(x0, c, g)`` for :func:`labkit.train.fit` (conditional flow matching):

        L = E_{x_0, c, t, eps} || (eps - x_0) - v_theta((1 - t) x_0 + t eps, t, c') ||^2,

    c' = c replaced by the null label with probability ``p_uncond`` (label dropout, for guidance)."""
    p_uncond, t_sampling = _check_loss(model, p_uncond, t_sampling)
    v_theta = Velocity(model)

    def flow_loss(x0: torch.Tensor, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        drop = torch.rand(len(c), generator=g).to(c.device) < p_uncond                # label dropout
        c = torch.where(drop, model.null, c)
        t = draw_t(len(x0), t_sampling, g, x0.dtype).to(x0.device)
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype).to(x0.device)
        x_t = (1 - t[:, None]) * x0 + t[:, None] * eps                                # the linear path
        return (v_theta(x_t, t, c) - (eps - x0)).square().mean()                      # target v = eps - x_0

    return flow_loss


def new_model(target, seed: int = 0, width: int = DEFAULTS["width"], depth: int = DEFAULTS["depth"]) -> EpsMLP:
    """A freshly initialised (seeded) velocity MLP for ``target`` (an EpsMLP with T = 1000)."""
    from .train import seeded

    return seeded(seed, EpsMLP, target.num_classes, T=1000, dim=target.dim, width=width, depth=depth)


def train(model: EpsMLP, target, *, steps: int = DEFAULTS["steps"], batch_size: int = DEFAULTS["batch_size"],
          lr: float = DEFAULTS["lr"], p_uncond: float = DEFAULTS["p_uncond"],
          t_sampling: str = DEFAULTS["t_sampling"], seed: int = 0, progress: bool = True, **fit_kwargs) -> list[float]:
    """Train a velocity model in place with the flow loss through :func:`labkit.train.fit` (the one loop)."""
    from .train import _check_target, fit

    _check_target(target)
    return fit(model, target, loss(model, p_uncond, t_sampling), steps=steps, batch_size=batch_size, lr=lr,
               seed=seed, progress=progress, desc=f"flow {target.name}", **fit_kwargs)


def trained_model(target, *, seed: int = 0, progress: bool = True, **recipe) -> tuple[EpsMLP, list[float]]:
    """(velocity model, loss history) for ``target`` trained with :data:`DEFAULTS` updated by ``recipe``,
    loaded from labkit's model cache (:func:`labkit.cache.directory`) when there, else trained and saved."""
    from . import cache

    unknown = sorted(set(recipe) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"recipe got unknown setting(s) {unknown}; allowed: {list(DEFAULTS)}")
    recipe, seed = {**DEFAULTS, **recipe}, check_seed(seed)
    key = {"kind": "flow", "target": target.name, "seed": seed, "recipe": recipe, "labkit": __version__,
           "checkpoint_version": checkpoints.VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache.directory() / f"flow-{target.name}-seed{seed}-{digest}.pt"
    try:
        model, meta = checkpoints.load(path)
        if meta.get("target") == target.name and len(meta["history"]) == recipe["steps"]:
            print(f"{target.name}: loaded the velocity model trained for {recipe['steps']} steps from the cache")
            return model, meta["history"]
    except (OSError, checkpoints.CheckpointError):
        pass
    start = time.perf_counter()
    model = new_model(target, seed, recipe.pop("width"), recipe.pop("depth"))
    history = train(model, target, seed=seed, progress=progress, **recipe)
    seconds = time.perf_counter() - start
    if len(history) == recipe["steps"]:  # an interrupted run is returned, never cached
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoints.save(model, path, target=target.name, schedule="flow-linear", history=history,
                         train_seconds=seconds)
    print(f"{target.name}: trained the velocity model {len(history)} steps in {seconds:.1f} s")
    return model, history


@torch.inference_mode()
def sample(velocity_fn, noise: torch.Tensor, steps: int, *, solver: str = "euler",
           times: list[float] | None = None) -> SampleResult:
    """Integrate dx/dt = v(x, t) from t = times[0] (default 1) down to 0, x starting at noise * times[0].

    ``times`` (default the uniform grid 1, 1 - 1/N, ..., 0) is decreasing and ends in 0. ``euler``:
    x_{i+1} = x_i + (t_{i+1} - t_i) v_i, nfe = N; ``heun``: the trapezoid with v at x_{i+1} (the last
    step, to t = 0, is Euler as in EDM), nfe = 2N - 1. Returns ``.x``, ``.trajectory``, ``.nfe``."""
    times = _check_sample(velocity_fn, noise, steps, solver, times)
    forwards = getattr(velocity_fn, "forwards", 1)
    x, nfe, trajectory = noise * times[0], 0, [noise * times[0]]
    for t, t_next in zip(times[:-1], times[1:]):
        v = _call(velocity_fn, x, t, check=nfe == 0)
        x_next = x + (t_next - t) * v                                  # Euler step
        if solver == "heun" and t_next != 0:                           # average with the slope at t_{i+1}
            x_next = x + (t_next - t) * (v + _call(velocity_fn, x_next, t_next)) / 2
            nfe += forwards
        x, nfe = x_next, nfe + forwards
        trajectory.append(x)
    return SampleResult(x, trajectory, nfe)


def karras_times(steps: int, rho: float = 3.0, t_min: float = 0.01) -> list[float]:
    """Flow times for :func:`sample`: Karras et al. 2022's Eq. 5 with t for sigma (:func:`labkit.samplers.karras`),

        t_i = (1 + i/(N-1) (t_min^(1/rho) - 1))^rho,   i = 0..N-1,   then t_N = 0,

    steps crowding toward t = 0, where a class's path bends (ring8's modes have sd 0.1). With labels
    drawn at the target's frequencies, Euler-32 on this grid is at :func:`labkit.metrics.at_floor`
    where the uniform grid is not, exact velocity or learned (benchmarks/NOTES.md, flow section)."""
    t_min = check_float("t_min", t_min, 0.0, 1.0)
    if not 0 < t_min < 1:
        raise ValueError(f"t_min must be in (0, 1), got {t_min}")
    return karras(steps, t_min, 1.0, rho)


def _call(velocity_fn, x: torch.Tensor, t: float, check: bool = False) -> torch.Tensor:
    v = velocity_fn(x, torch.full((len(x),), t, dtype=x.dtype, device=x.device))
    if check:
        _check_eps(v, x)
    return v


def velocity_from_eps(eps_fn, schedule: Schedule):
    """The velocity of the linear path implied by a diffusion eps function (t in [0, 1)):

    sigma = t / (1 - t), x_VE = (1 + sigma) x, eps_hat = eps_fn(x_VE / sqrt(1 + sigma^2), t(sigma)),
    x0_hat = x_VE - sigma eps_hat, v = eps_hat - x0_hat."""
    if not callable(eps_fn):
        raise TypeError("eps_fn must be callable as eps_fn(x, t)")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = (t.to(torch.float64) / (1 - t.to(torch.float64)))[:, None]
        x_ve = (1 + sigma) * x
        t_diffusion = schedule.sigma_to_t(sigma[:, 0].clamp(schedule.sigma_min, schedule.sigma_max))  # float32 t rounds
        eps_hat = eps_fn(x_ve / (1 + sigma.square()).sqrt(), t_diffusion.to(x.dtype))
        x0_hat = x_ve - sigma * eps_hat
        return (eps_hat - x0_hat).to(x.dtype)

    v.forwards = getattr(eps_fn, "forwards", 1)
    return v


def flow_times(sigmas: list[float]) -> list[float]:
    """The flow times t_i = sigma_i / (1 + sigma_i) of a sigma grid (sigma = 0 -> t = 0)."""
    return [s / (1 + s) for s in sigmas]


def straightness(trajectory: list[torch.Tensor]) -> torch.Tensor:
    """Per point: path length (sum of step lengths) over the distance from start to end (1 = straight)."""
    path = torch.stack(trajectory).to(torch.float64)                   # (steps + 1, n, d)
    length = (path[1:] - path[:-1]).norm(dim=-1).sum(0)
    return length / (path[-1] - path[0]).norm(dim=-1)


def _check_loss(model, p_uncond, t_sampling) -> tuple[float, str]:
    if not isinstance(model, EpsMLP):
        raise TypeError(f"model must be an EpsMLP, got {type(model).__name__}")
    if t_sampling not in T_SAMPLING:
        raise ValueError(f"t_sampling must be one of {list(T_SAMPLING)}, got {t_sampling!r}")
    return check_float("p_uncond", p_uncond, 0.0, 1.0), t_sampling


def _check_sample(velocity_fn, noise, steps, solver, times) -> list[float]:
    """sample's arguments checked; returns the time grid (a decreasing list of floats ending in 0)."""
    if not callable(velocity_fn):
        raise TypeError("velocity_fn must be callable as velocity_fn(x, t)")
    check_points("noise", noise, dim=None)
    steps = check_int("steps", steps, 1, MAX_STEPS)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {list(SOLVERS)}, got {solver!r}")
    if times is None:
        return [1 - i / steps for i in range(steps)] + [0.0]
    times = [check_float("times", t, 0.0, 1.0) for t in times]
    if len(times) != steps + 1 or times[-1] != 0 or any(a <= b for a, b in zip(times[:-1], times[1:])):
        raise ValueError(f"times must be steps + 1 = {steps + 1} strictly decreasing values in [0, 1] "
                         f"ending in 0, got {len(times)} values ending in {times[-1] if times else None}")
    return times
