"""Conditioning on a continuous attribute: a ring whose radius r is the condition.

The data are x = (r + noise) (cos phi, sin phi) with r uniform in [r_min, r_max] and phi uniform,
so p(x | r) is a thin circle of radius r. The eps-network eps_theta(x_t, t, r) takes r through a
small embedding (Linear + SiLU) instead of a class lookup table, and "no condition" is a learned
null vector, chosen by r = NaN. Training is the same eps-prediction loss as :mod:`labkit.train`,
with the condition dropped (r -> NaN) with probability ``p_uncond``, so guidance also works:

    eps_hat(x, t, r) = (1 + w) eps_theta(x, t, r) - w eps_theta(x, t, null).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import samplers
from ._checks import check_float, check_generator, check_int
from .model import mlp, time_embedding
from .schedules import Schedule
from .train import POOL_SIZE, _deferred_interrupt, adam_step


class RadiusRing:
    """Points on circles of random radius: r ~ U[r_min, r_max], phi ~ U[0, 2 pi), radial noise ``noise``."""

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


class RadiusEpsMLP(nn.Module):
    """eps_theta(x, t, r): [x, emb(t), emb(r)] -> ``depth`` SiLU layers -> eps.

    emb(r) = SiLU(Linear(r)); r = NaN (or r = None) selects the learned null embedding.
    """

    def __init__(self, T: int = 1000, dim: int = 2, width: int = 128, depth: int = 3,
                 time_dim: int = 32, cond_dim: int = 16):
        super().__init__()
        self.config = {
            "T": check_int("T", T, 2, 100_000),
            "dim": check_int("dim", dim, 1, 1024),
            "width": check_int("width", width, 1, 65_536),
            "depth": check_int("depth", depth, 1, 64),
            "time_dim": check_int("time_dim", time_dim, 2, 4096),
            "cond_dim": check_int("cond_dim", cond_dim, 1, 4096),
        }
        self.T, self.time_dim = T, time_dim
        self.cond_embedding = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU())
        self.null_embedding = nn.Parameter(torch.zeros(cond_dim))
        self.net = mlp(dim + time_dim + cond_dim, width, depth, dim)

    def embed_condition(self, r: torch.Tensor | None, n: int) -> torch.Tensor:
        if r is None:
            return self.null_embedding.expand(n, -1)
        r = r.to(self.null_embedding.dtype)
        null = torch.isnan(r)[:, None]
        return torch.where(null, self.null_embedding, self.cond_embedding(torch.nan_to_num(r)[:, None]))

    def forward(self, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.cat([x, time_embedding(t.to(x.dtype), self.time_dim, self.T), self.embed_condition(r, len(x))], 1)
        return self.net(h)


def new_model(schedule: Schedule, seed: int = 0, **kwargs) -> RadiusEpsMLP:
    """A freshly initialised :class:`RadiusEpsMLP` for ``schedule`` (seeded, global RNG untouched)."""
    seed = check_int("seed", seed, 0, 2**63 - 1)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return RadiusEpsMLP(T=schedule.T, **kwargs)
    finally:
        torch.random.set_rng_state(state)


def train(model: RadiusEpsMLP, ring: RadiusRing, schedule: Schedule, *, steps: int = 3000,
          batch_size: int = 512, lr: float = 3e-3, p_uncond: float = 0.1, seed: int = 0,
          history: list[float] | None = None, progress: bool = True,
          callback: Callable[[int, float], None] | None = None,
          stop: Callable[[], bool] | threading.Event | None = None) -> list[float]:
    """Train ``model`` in place on || eps - eps_theta(x_t, t, r') ||^2 (as :func:`labkit.train.train`).

    r' = r, or NaN (the null condition) with probability ``p_uncond``. Same interface and the
    same guarantees: cosine learning-rate decay, Ctrl-C or ``stop`` ends after a whole step.
    """
    if not isinstance(model, RadiusEpsMLP):
        raise TypeError(f"model must be a RadiusEpsMLP, got {type(model).__name__}")
    if not isinstance(ring, RadiusRing):
        raise TypeError(f"ring must be a RadiusRing, got {type(ring).__name__}")
    if not isinstance(schedule, Schedule) or schedule.T != model.T:
        raise ValueError(f"schedule must be a labkit Schedule with T = model.T = {model.T}")
    steps = check_int("steps", steps, 0, 10_000_000)
    batch_size = check_int("batch_size", batch_size, 1, 1_000_000)
    lr = check_float("lr", lr, 0.0, 1.0, low_open=True)
    p_uncond = check_float("p_uncond", p_uncond, 0.0, 1.0)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    history = [] if history is None else history
    should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))

    g = torch.Generator().manual_seed(seed)
    pool_x, pool_r = ring.sample(POOL_SIZE, g)
    abar = schedule.alphas_cumprod.to(torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    bar = tqdm(total=steps, desc="train radius ring", disable=not progress, mininterval=0.5)
    with _deferred_interrupt() as interrupted:
        for step in range(steps):
            if interrupted.is_set() or should_stop():
                bar.write(f"training stopped after {step} of {steps} steps")
                break
            idx = torch.randint(POOL_SIZE, (batch_size,), generator=g)
            x0, r = pool_x[idx], pool_r[idx]
            r = torch.where(torch.rand(batch_size, generator=g) < p_uncond, float("nan"), r)
            t = torch.randint(schedule.T, (batch_size,), generator=g)
            eps = torch.randn(x0.shape, generator=g)
            a = abar[t][:, None]
            loss = (model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float(), r) - eps).square().mean()
            adam_step(optimizer, loss, lr, step, steps)
            history.append(loss.item())
            bar.update(1)
            if callback is not None:
                callback(step, history[-1])
    bar.close()
    model.eval()
    return history


def eps_fn(model: RadiusEpsMLP, radius: float | None, w: float = 0.0):
    """eps_fn(x, t) of ``model`` at the condition ``radius`` (None: unconditional), guided by ``w``."""
    if not isinstance(model, RadiusEpsMLP):
        raise TypeError(f"model must be a RadiusEpsMLP, got {type(model).__name__}")
    w = check_float("w", w, low=0.0)
    if radius is None:
        if w != 0.0:
            raise ValueError("radius must be given when w > 0 (guidance needs a condition)")
        radius = float("nan")
    else:
        radius = check_float("radius", radius)

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r = torch.full((len(x),), radius, dtype=x.dtype)
        if w == 0.0:
            return model(x, t, r)
        eps_r, eps_null = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([r, torch.full_like(r, math.nan)])
                                ).chunk(2)
        return (1.0 + w) * eps_r - w * eps_null

    return fn


@torch.inference_mode()
def sample_at_radius(model: RadiusEpsMLP, schedule: Schedule, radius: float, n: int = 500, *,
                     steps: int = 16, w: float = 0.0, generator: torch.Generator | None = None
                     ) -> samplers.SampleResult:
    """``n`` samples of p(x | r = ``radius``) by Heun (EDM) with ``steps`` steps from N(0, I) noise."""
    n = check_int("n", n, 1, 1_000_000)
    check_generator(generator)
    noise = torch.randn(n, 2, generator=generator)
    return samplers.heun(eps_fn(model, radius, w), schedule, noise, steps)


def mean_radius(x: torch.Tensor) -> float:
    """Mean distance of the points ``x`` (n, 2) from the origin."""
    return float(x.to(torch.float64).norm(dim=1).mean())
