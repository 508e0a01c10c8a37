"""How good is a learned eps, timestep by timestep?

At each t in ``ts`` we noise fresh target points, x_t ~ q(x_t | x_0) (:meth:`Schedule.q_sample`), and
compare the eps function under test with

* the exact eps*(x_t, t) (:func:`eps_error_by_t`): the model error, zero for a perfect model;
  its score-space version divides by (1 - abar_t), since s = -eps / sqrt(1 - abar_t);
* the noise eps that was actually drawn (:func:`dsm_loss_by_t`): the training objective of
  Ho et al. 2020, Eq. 14, which is not zero even for eps*, because x_t does not determine eps.

:func:`mode_stats` looks at samples of a Gaussian mixture mode by mode (shares and width), which
the kernel MMD with a median-heuristic bandwidth barely resolves.

Errors are mean squared errors per coordinate (the mean over points and dimensions, as the
training loss), returned in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._checks import check_generator, check_int
from .oracle import nearest_mode
from .schedules import Schedule
from .targets import Target


class ErrorByT(NamedTuple):
    """Mean squared errors at the timesteps ``t``: in eps space and in score space."""
    t: torch.Tensor
    eps_mse: torch.Tensor
    score_mse: torch.Tensor


def _check(schedule, target, ts, n, generator) -> tuple[torch.Tensor, int]:
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    if not isinstance(target, Target):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    ts = torch.as_tensor(ts)
    if ts.ndim != 1 or len(ts) == 0 or ts.is_floating_point() or ts.dtype == torch.bool:
        raise TypeError("ts must be a non-empty 1-D sequence of integer timesteps")
    if ts.min() < 0 or ts.max() > schedule.T - 1:
        raise ValueError(f"ts must lie in [0, {schedule.T - 1}]")
    check_generator(generator)
    return ts.long(), check_int("n", n, 1, 10_000_000)


def _noised(schedule, target, t: int, n: int, generator):
    x0, _ = target.sample(n, generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    x_t = schedule.q_sample(x0, torch.full((n,), t), eps, check=False)  # t checked by _check
    return x_t, eps, torch.full((n,), float(t), dtype=x0.dtype)


@torch.inference_mode()
def eps_error_by_t(eps_fn, exact_eps_fn, schedule: Schedule, target: Target, ts, n: int = 1000,
                   generator: torch.Generator | None = None) -> ErrorByT:
    """E ||eps_fn(x_t, t) - eps*(x_t, t)||^2 / d over x_t ~ q(x_t), for each integer t in ``ts``.

    ``score_mse`` is the same error for the scores, E ||s_theta - s*||^2 / d = eps_mse / (1 - abar_t).
    """
    ts, n = _check(schedule, target, ts, n, generator)
    mse = []
    for t in ts.tolist():
        x_t, _, tt = _noised(schedule, target, t, n, generator)
        mse.append(float((eps_fn(x_t, tt).double() - exact_eps_fn(x_t, tt).double()).square().mean()))
    eps_mse = torch.tensor(mse, dtype=torch.float64)
    return ErrorByT(ts, eps_mse, eps_mse / (1.0 - schedule.alphas_cumprod[ts]))


@torch.inference_mode()
def dsm_loss_by_t(eps_fn, schedule: Schedule, target: Target, ts, n: int = 1000,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The denoising loss E ||eps - eps_fn(x_t, t)||^2 / d at each integer t in ``ts`` (float64)."""
    ts, n = _check(schedule, target, ts, n, generator)
    loss = []
    for t in ts.tolist():
        x_t, eps, tt = _noised(schedule, target, t, n, generator)
        loss.append(float((eps_fn(x_t, tt).double() - eps.double()).square().mean()))
    return torch.tensor(loss, dtype=torch.float64)


class ModeStats(NamedTuple):
    """Samples of a Gaussian mixture seen mode by mode: each point is assigned its nearest mean."""
    shares: torch.Tensor        # fraction of the points at each component (the weights pi_k when exact)
    rms_distance: float         # sqrt(E |x - mu_nearest|^2 / d): about the component sd s when exact


def mode_stats(x: torch.Tensor, target) -> ModeStats:
    """Per-mode shares and the rms distance of ``x`` (n, d) to the nearest component mean of ``target``.

    For a mixture of well separated components N(mu_k, s^2 I) the shares estimate the weights and
    the rms distance per coordinate estimates s: a blurred sample has a larger one, a collapsed
    sample a smaller one. (The MMD with a median-heuristic bandwidth hardly sees the mode width.)
    """
    nearest, distance = nearest_mode(target, x)
    shares = torch.bincount(nearest, minlength=len(target.means)).to(torch.float64) / len(x)
    return ModeStats(shares, float((distance.square().mean() / x.shape[1]).sqrt()))
