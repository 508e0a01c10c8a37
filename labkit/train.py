"""The one training loop of the course, and DDPM's loss on it (Ho et al. 2020, Alg. 1).

    L = E_{x_0, c, t, eps} || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t, c') ||^2

with t uniform on {0..T-1} and c' = c, replaced by the null condition with probability ``p_uncond``
(label dropout), so one network gives both eps(x, t, c) and eps(x, t, null) for guidance.
:func:`fit` is the loop (Adam, half-cosine learning rate, progress, Ctrl-C / stop after a whole
step); a model kind is one small loss function ``loss(x0, c, g)`` given to it: :func:`train`'s
for the eps-MLPs (class labels or a real condition), :func:`labkit.dsm.train_single_sigma`'s for
the single-sigma score nets.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from ._checks import check_float, check_int, check_seed
from .continuous import RadiusRing
from .model import EpsMLP
from .schedules import Schedule
from .targets import Target

# The default recipe (benchmarks/NOTES.md, "Time to the strict floor"): ring8's class-conditional samples
# are at metrics.at_floor with DDPM and DPM-Solver++(2M) at 16 steps after about 2000-3000 steps. Label
# dropout 0.3 (not 0.1) gives the null token 3x as much data: null-token samples' detail_miss at 2000
# steps fell from 0.32 to 0.05 (DDPM), the conditional ones' stayed at the floor. A weight EMA (0.99,
# 0.998) changed nothing measurable with the half-cosine decay to lr 0, so ema is off.
# t_lognormal (draw_t) is 0: uniform t, as DDPM; some targets' recipes raise it (targets.py).
DEFAULTS = {"steps": 6000, "batch_size": 512, "lr": 1e-2, "ema": 0.0, "p_uncond": 0.3, "t_lognormal": 0.0,
            "width": 128, "depth": 3}
MODEL_KEYS = ("width", "depth", "time_dim", "class_dim", "cond", "fourier")  # recipe entries that shape the model
POOL_SIZE = 65_536
LOGNORMAL_SIGMA = (-1.2, 1.2)  # EDM's training noise levels, ln sigma ~ N(P_mean, P_std^2) (Karras et al. 2022)


def recipe(target) -> dict:
    """The training recipe of ``target``: :data:`DEFAULTS` updated by ``target.recipe``."""
    return {**DEFAULTS, **_check_target(target).recipe}


def seeded(seed: int, build: Callable, *args, **kwargs):
    """``build(*args, **kwargs)`` with torch's global RNG seeded by ``seed`` (initial weights), then restored."""
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args, **kwargs)


def new_model(target, schedule: Schedule, seed: int = 0, **kwargs) -> EpsMLP:
    """A freshly initialised (seeded) :class:`EpsMLP` for ``target`` and ``schedule``, shaped by :func:`recipe`."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    shape = {k: v for k, v in recipe(target).items() if k in MODEL_KEYS}
    return seeded(seed, EpsMLP, target.num_classes, T=schedule.T, dim=target.dim, **{**shape, **kwargs})


def adam_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float, step: int, steps: int) -> None:
    """One optimizer step on ``loss`` with the learning rate on a half cosine from ``lr`` (step 0) to 0."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for group in optimizer.param_groups:
        group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
    optimizer.step()

@contextmanager
def one_torch_thread():
    """Run torch ops on one intra-op thread, then restore the previous setting.

    On an idle 2-core machine a second thread speeds training of labkit's small MLPs up by about
    1.5x, but OpenMP's spin-waiting makes small ops 5-50x slower as soon as the cores are shared (by
    another process, or by the lab's training thread and its sliders). Widget callbacks, the lab's
    training thread and the single-sigma DSM runs therefore use one thread; ``train`` itself
    keeps torch's setting (benchmarks/RESULTS.md has the measurements).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _deferred_interrupt():
    """Turn Ctrl-C (SIGINT) into a flag read between steps, so a step is never half done.

    Only the main thread can own signal handlers; elsewhere (the lab's training thread) the
    flag stays unset and the ``stop`` argument is how training is ended.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def train(model: EpsMLP, target: Target, schedule: Schedule, *, steps: int = DEFAULTS["steps"],
          batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"], ema: float = DEFAULTS["ema"],
          p_uncond: float = DEFAULTS["p_uncond"], t_lognormal: float = DEFAULTS["t_lognormal"], seed: int = 0,
          history: list[float] | None = None, progress: bool = True,
          callback: Callable[[int, float], None] | None = None,
          stop: Callable[[], bool] | threading.Event | None = None) -> list[float]:
    """Train ``model`` in place from its current weights for ``steps`` Adam steps (DDPM, Algorithm 1).

    Each step: x_0, c ~ q(x_0, c) (:func:`fit`), c -> null with probability ``p_uncond``,
    t ~ U{0..T-1}, eps ~ N(0, I), a gradient step on || eps - eps_theta(x_t, t, c) ||^2.
    Returns ``history`` with one loss per completed step appended; see :func:`fit` for ``ema``,
    ``seed``, ``progress``, ``callback`` and ``stop`` (Ctrl-C or stop end after a whole step).

    ``t_lognormal``: the share of each batch whose t comes from EDM's noise levels instead (:func:`draw_t`).
    """
    p_uncond = _check_train(model, target, schedule, p_uncond)
    t_lognormal = check_float("t_lognormal", t_lognormal, 0.0, 1.0)

    def loss(x0: torch.Tensor, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        drop = torch.rand(len(c), generator=g).to(c.device) < p_uncond          # label dropout
        c = torch.where(drop, model.null, c)
        t = draw_t(schedule, len(x0), g, t_lognormal).to(x0.device)             # t ~ U{0..T-1}
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype).to(x0.device)  # eps ~ N(0, I)
        x_t = schedule.q_sample(x0, t, eps, check=False)
        return (model(x_t, t.to(x0.dtype), c) - eps).square().mean()

    return fit(model, target, loss, steps=steps, batch_size=batch_size, lr=lr, ema=ema, seed=seed, history=history,
               progress=progress, callback=callback, stop=stop, desc=f"train {target.name}")


def draw_t(schedule: Schedule, n: int, g: torch.Generator, t_lognormal: float = 0.0) -> torch.Tensor:
    """n training timesteps t ~ U{0..T-1}; a share ``t_lognormal`` of them from EDM's noise-level density
    instead (Karras et al. 2022, Sec. 5 and Table 1: ln sigma ~ N(-1.2, 1.2^2), :data:`LOGNORMAL_SIGMA`), each
    sigma taken to the first timestep whose sigma reaches it. That moves training from the large sigmas, where
    eps is easy, to sigma ~ 0.05-1, where a 2-D target's edges and thin curves are decided; the uniform rest
    keeps every timestep trained (the samplers start at sigma = 80). At 0 no extra random numbers are drawn:
    DDPM's training, bit for bit."""
    t = torch.randint(schedule.T, (n,), generator=g)
    if t_lognormal > 0:
        mean, sd = LOGNORMAL_SIGMA
        sigma = (mean + sd * torch.randn(n, generator=g)).exp()
        t_edm = torch.searchsorted(schedule.sigmas.float(), sigma).clamp_(max=schedule.T - 1)
        t = torch.where(torch.rand(n, generator=g) < t_lognormal, t_edm, t)
    return t


def fit(model: torch.nn.Module, target, loss: Callable, *, steps: int, batch_size: int, lr: float,
        ema: float = 0.0, seed: int = 0, history: list[float] | None = None, progress: bool = True,
        callback: Callable[[int, float], None] | None = None,
        stop: Callable[[], bool] | threading.Event | None = None, desc: str = "train") -> list[float]:
    """The training loop: ``steps`` Adam steps on ``loss(x0, c, g)`` over batches of ``target`` samples.

    x0, c are ``batch_size`` rows of a pool of ``POOL_SIZE`` samples drawn once with the generator
    g seeded by ``seed`` (and passed to ``loss`` for its own draws), on the model's device and
    dtype. The learning rate decays from ``lr`` to 0 on a half cosine over the call. A Ctrl-C, or
    ``stop`` becoming true (an Event or a callable), ends training after the current step: the
    weights are those of the last completed step and ``history`` (a new list unless given) holds
    exactly those steps' losses. ``callback(step, loss)`` is called after each completed step.

    ``ema`` > 0 keeps an exponential moving average of the weights, decay min(ema, (1 + k) / (10 + k))
    after the k-th completed step of this call (the short warm-up keeps it from remembering the start),
    and leaves it in the model when the call ends, stopped or not: the model is then the average of the
    completed steps' weights, and a later call continues from it (with a fresh optimizer, as always).
    """
    steps, batch_size, lr, ema, seed, history, should_stop = _check_fit(steps, batch_size, lr, ema, seed, history,
                                                                        callback, stop)
    param = next(model.parameters())
    g = torch.Generator().manual_seed(seed)
    pool_x, pool_c = target.sample(POOL_SIZE, g)
    pool_x, pool_c = pool_x.to(param.device, param.dtype), pool_c.to(param.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    weights = [p for p in model.parameters() if p.requires_grad]
    average = [p.detach().clone() for p in weights] if ema > 0 else None
    model.train()
    bar = tqdm(total=steps, desc=desc, disable=not progress, mininterval=0.5)
    with _deferred_interrupt() as interrupted:
        for step in range(steps):
            if interrupted.is_set() or should_stop():
                bar.write(f"training stopped after {step} of {steps} steps")
                break
            idx = torch.randint(POOL_SIZE, (batch_size,), generator=g).to(param.device)
            value = loss(pool_x[idx], pool_c[idx], g)
            adam_step(optimizer, value, lr, step, steps)
            if average is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(average, weights, 1 - min(ema, (1 + step) / (10 + step)))
            history.append(value.item())
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{history[-1]:.4f}", refresh=False)
            if callback is not None:
                callback(step, history[-1])
    bar.close()
    if average is not None:
        with torch.no_grad():
            torch._foreach_copy_(weights, average)
    model.eval()
    return history


def _check_target(target):
    if not isinstance(target, (Target, RadiusRing)):
        raise TypeError(f"target must be a labkit Target (or a RadiusRing), got {type(target).__name__}")
    return target


def _check_train(model, target, schedule, p_uncond) -> float:
    """train's own arguments checked (the loop's are :func:`fit`'s); returns p_uncond."""
    if not isinstance(model, EpsMLP):
        raise TypeError(f"model must be an EpsMLP, got {type(model).__name__}")
    _check_target(target)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    cond = target.recipe.get("cond", "label")
    if model.num_classes != target.num_classes or model.T != schedule.T or model.cond != cond \
            or model.dim != target.dim:
        raise ValueError(f"model (num_classes={model.num_classes}, T={model.T}, cond={model.cond!r}, "
                         f"dim={model.dim}) does not match target (num_classes={target.num_classes}, "
                         f"cond={cond!r}, dim={target.dim}) and schedule (T={schedule.T})")
    return check_float("p_uncond", p_uncond, 0.0, 1.0)


def _check_fit(steps, batch_size, lr, ema, seed, history, callback, stop):
    """fit's arguments checked; returns them with history a list and stop a function."""
    steps = check_int("steps", steps, 0, 10_000_000)
    batch_size = check_int("batch_size", batch_size, 1, 1_000_000)
    lr = check_float("lr", lr, 0.0, 1.0, low_open=True)
    ema = check_float("ema", ema, 0.0, 1.0)
    if ema == 1.0:
        raise ValueError("ema must be in [0, 1) (the decay of the weights' moving average; 0 keeps none), got 1.0")
    if history is not None and not isinstance(history, list):
        raise TypeError(f"history must be a list (appended to) or None, got {type(history).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(step, loss) or None, got {type(callback).__name__}")
    if stop is not None and not (isinstance(stop, threading.Event) or callable(stop)):
        raise TypeError(f"stop must be a threading.Event, a callable or None, got {type(stop).__name__}")
    should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))
    return steps, batch_size, lr, ema, check_seed(seed), [] if history is None else history, should_stop
