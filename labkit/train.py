"""Training the eps-MLP by denoising score matching in the eps form (Ho et al. 2020, Alg. 1).

    L = E_{x_0, c, t, eps} || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t, c') ||^2

with t uniform on {0..T-1} and c' = c, replaced by the null token with probability ``p_uncond``
(label dropout), so one network gives both eps(x, t, c) and eps(x, t, null) for guidance.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from ._checks import check_float, check_int
from .model import EpsMLP
from .schedules import Schedule
from .targets import Target

# The default recipe: ring8 samples reach the MMD^2 noise floor *and* the right mode width (sd 0.1).
# Measured: at lr 3e-3 / 4000 steps the floor is met but DDPM's modes come out about twice too wide.
DEFAULTS = {"steps": 6000, "batch_size": 512, "lr": 1e-2, "p_uncond": 0.1}
POOL_SIZE = 65_536


def new_model(target: Target, schedule: Schedule, seed: int = 0, **kwargs) -> EpsMLP:
    """A freshly initialised :class:`EpsMLP` for ``target`` and ``schedule`` (seeded)."""
    seed = check_int("seed", seed, 0, 2**63 - 1)
    if not isinstance(target, Target):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return EpsMLP(target.num_classes, T=schedule.T, **kwargs)
    finally:
        torch.random.set_rng_state(state)


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
          batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
          p_uncond: float = DEFAULTS["p_uncond"], seed: int = 0, history: list[float] | None = None,
          progress: bool = True, callback: Callable[[int, float], None] | None = None,
          stop: Callable[[], bool] | threading.Event | None = None) -> list[float]:
    """Train ``model`` in place from its current weights for ``steps`` Adam steps.

    Returns ``history`` (a new list unless given) with one loss per completed step appended.
    The learning rate decays from ``lr`` to 0 on a half cosine over the call. A Ctrl-C, or
    ``stop`` becoming true (an Event or a callable), ends training after the current step: the
    weights are those of the last completed step and ``history`` holds exactly those steps.
    ``callback(step, loss)`` is called after each completed step.
    """
    if not isinstance(model, EpsMLP):
        raise TypeError(f"model must be an EpsMLP, got {type(model).__name__}")
    if not isinstance(target, Target):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    if model.num_classes != target.num_classes or model.T != schedule.T:
        raise ValueError(f"model (num_classes={model.num_classes}, T={model.T}) does not match target "
                         f"(num_classes={target.num_classes}) and schedule (T={schedule.T})")
    steps = check_int("steps", steps, 0, 10_000_000)
    batch_size = check_int("batch_size", batch_size, 1, 1_000_000)
    lr = check_float("lr", lr, 0.0, 1.0, low_open=True)
    p_uncond = check_float("p_uncond", p_uncond, 0.0, 1.0)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    if history is not None and not isinstance(history, list):
        raise TypeError(f"history must be a list (appended to) or None, got {type(history).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(step, loss) or None, got {type(callback).__name__}")
    if stop is not None and not (isinstance(stop, threading.Event) or callable(stop)):
        raise TypeError(f"stop must be a threading.Event, a callable or None, got {type(stop).__name__}")
    history = [] if history is None else history
    should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))

    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    g = torch.Generator().manual_seed(seed)
    pool_x, pool_c = target.sample(POOL_SIZE, g)
    pool_x, pool_c = pool_x.to(device, dtype), pool_c.to(device)
    abar = schedule.alphas_cumprod.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    bar = tqdm(total=steps, desc=f"train {target.name}", disable=not progress, mininterval=0.5)
    with _deferred_interrupt() as interrupted:
        for step in range(steps):
            if interrupted.is_set() or should_stop():
                bar.write(f"training stopped after {step} of {steps} steps")
                break
            idx = torch.randint(POOL_SIZE, (batch_size,), generator=g).to(device)
            x0, c = pool_x[idx], pool_c[idx]
            drop = torch.rand(batch_size, generator=g).to(device) < p_uncond
            c = torch.where(drop, model.null_class, c)
            t = torch.randint(schedule.T, (batch_size,), generator=g).to(device)
            eps = torch.randn(x0.shape, generator=g, dtype=dtype).to(device)
            a = abar[t].to(dtype)[:, None]
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
            loss = (model(x_t, t.to(dtype), c) - eps).square().mean()
            adam_step(optimizer, loss, lr, step, steps)
            value = loss.item()
            history.append(value)
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if callback is not None:
                callback(step, value)
    bar.close()
    model.eval()
    return history
