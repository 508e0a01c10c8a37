"""Discrete-time noise schedules of the variance-preserving (DDPM) process.

Index t = 0..T-1 with t = 0 the least noisy step, as in diffusers. In float64:

    alpha_t = 1 - beta_t,   abar_t = prod_{s<=t} alpha_s,
    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,
    sigma_t = sqrt((1 - abar_t) / abar_t)      (the EDM / variance-exploding noise level).
"""

from __future__ import annotations

import math

import torch

from ._checks import check_float, check_int, check_points


def _as_real_tensor(name: str, value, **kwargs) -> torch.Tensor:
    """``value`` as a real (non-bool, non-complex) tensor, else a TypeError naming ``name``.

    Python floats become float64 (torch's default float32 would round them).
    """
    try:
        tensor = torch.as_tensor(value, **kwargs)
        if tensor.is_floating_point() and not isinstance(value, torch.Tensor):
            tensor = torch.as_tensor(value, dtype=torch.float64, **kwargs)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a number or a tensor of numbers, got {type(value).__name__}") from None
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor


class Schedule:
    """A noise schedule given by its betas (length T, float64)."""

    def __init__(self, betas: torch.Tensor, name: str = "custom"):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) < 2:
            raise ValueError(f"betas must be a 1-D tensor of length >= 2, got shape {tuple(betas.shape)}")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must lie in the open interval (0, 1)")
        self.name = name
        self.T = len(betas)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.sigmas = ((1.0 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()
        self._log_sigmas = self.sigmas.log()
        if not (self.sigmas[0] > 0 and torch.isfinite(self.sigmas[-1])):
            raise ValueError("betas must keep abar_t strictly inside (0, 1) in float64 "
                             f"(abar_0 = {float(self.alphas_cumprod[0])!r}, "
                             f"abar_{{T-1}} = {float(self.alphas_cumprod[-1])!r})")
        if not (self._log_sigmas[1:] > self._log_sigmas[:-1]).all():
            raise ValueError("betas must give a strictly decreasing abar_t")

    def __repr__(self) -> str:
        return (f"Schedule({self.name!r}, T={self.T}, sigma_min={self.sigmas[0]:.4g}, "
                f"sigma_max={self.sigmas[-1]:.4g})")

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio abar_t / (1 - abar_t) = 1 / sigma_t^2."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def _check_t(self, t) -> torch.Tensor:
        t = _as_real_tensor("t", t)
        if not torch.isfinite(t.double()).all() or (t < 0).any() or (t > self.T - 1).any():
            raise ValueError(f"t must lie in [0, {self.T - 1}] (T = {self.T})")
        return t

    def abar(self, t) -> torch.Tensor:
        """abar at (possibly fractional) t, consistent with :meth:`t_to_sigma`."""
        sigma = self.t_to_sigma(t)
        return 1.0 / (1.0 + sigma**2)

    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) for integer t, given the noise eps.

        ``t`` is an int or a long tensor of shape (n,); ``noise`` has the shape of ``x0``.
        ``check=False`` (inside training loops) skips the checks: t must then be a long tensor (n,).
        """
        if check:
            t = self._check_q_sample(x0, t, noise)
        abar = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype)[:, None]
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def _check_q_sample(self, x0, t, noise) -> torch.Tensor:
        """The arguments of :meth:`q_sample` checked; returns t as a long tensor of shape (n,)."""
        check_points("x0", x0, dim=None)
        check_points("noise", noise, dim=None)
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0, {tuple(x0.shape)}, got {tuple(noise.shape)}")
        t = _as_real_tensor("t", t, device=x0.device)
        if t.is_floating_point():
            raise TypeError("t must be an integer timestep (int or long tensor) for q_sample")
        if t.ndim == 0:
            t = t.expand(len(x0))
        if t.shape != (len(x0),):
            raise ValueError(f"t must be a scalar or have shape ({len(x0)},), got {tuple(t.shape)}")
        return self._check_t(t)

    def t_to_sigma(self, t) -> torch.Tensor:
        """sigma at fractional t by linear interpolation of log sigma over the integer grid."""
        t = self._check_t(t).to(torch.float64)
        lo = t.floor().clamp(max=self.T - 2).long()
        frac = t - lo
        log_sigma = (1 - frac) * self._log_sigmas[lo] + frac * self._log_sigmas[lo + 1]
        return log_sigma.exp()

    def sigma_to_t(self, sigma) -> torch.Tensor:
        """Fractional t with sigma_t = sigma, interpolating log sigma linearly over the grid.

        Exact at the grid points; ``sigma`` must lie in [sigma_0, sigma_{T-1}] (a relative
        slack of 1e-9 absorbs rounding at the ends).
        """
        sigma = _as_real_tensor("sigma", sigma).to(torch.float64)
        if not torch.isfinite(sigma).all() or (sigma <= 0).any():
            raise ValueError("sigma must be finite and > 0")
        lo_s, hi_s = self.sigma_min, self.sigma_max
        if (sigma < lo_s * (1 - 1e-9)).any() or (sigma > hi_s * (1 + 1e-9)).any():
            raise ValueError(f"sigma must lie in [{lo_s:.6g}, {hi_s:.6g}] for this schedule")
        log_sigma = sigma.log().clamp(self._log_sigmas[0], self._log_sigmas[-1])
        idx = torch.searchsorted(self._log_sigmas, log_sigma, right=True).clamp(1, self.T - 1)
        lo, hi = self._log_sigmas[idx - 1], self._log_sigmas[idx]
        return (idx - 1).to(torch.float64) + (log_sigma - lo) / (hi - lo)

    def last_t_below(self, sigma_max: float | None) -> int:
        """The largest t with sigma_t <= sigma_max (T - 1 when ``sigma_max`` is None)."""
        if sigma_max is None:
            return self.T - 1
        sigma_max = check_float("sigma_max", sigma_max, low=self.sigma_min)
        return int((self.sigmas <= sigma_max).sum()) - 1


def linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Linear betas from ``beta_start`` to ``beta_end`` (Ho et al. 2020, Sec. 4)."""
    T = check_int("T", T, 2, 100_000)
    beta_start = check_float("beta_start", beta_start, 0.0, 1.0, low_open=True)
    beta_end = check_float("beta_end", beta_end, beta_start, 1.0)
    if beta_end >= 1.0:
        raise ValueError(f"beta_end must be in [{beta_start}, 1), got {beta_end}")
    return _schedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), "linear",
                     f"T = {T}, beta_start = {beta_start} and beta_end = {beta_end}")


def cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Cosine schedule (Nichol & Dhariwal 2021, Eq. 17).

    The paper's abar(u) = f(u) / f(0) with f(u) = cos(((u / T + s) / (1 + s)) pi / 2)^2 at its steps
    u = 1..T; labkit's index t = u - 1 starts at 0, so beta_t = min(1 - f(t + 1) / f(t), max_beta) and
    abar_t = prod_{s <= t} (1 - beta_s), which is f(t + 1) / f(0) until a beta is clipped (below, f takes u / T).
    """
    T, s, max_beta = _check_cosine(T, s, max_beta)

    def f(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f((t + 1) / T) / f(t / T), max_beta) for t in range(T)]
    return _schedule(betas, "cosine", f"T = {T}, s = {s} and max_beta = {max_beta}")


def _check_cosine(T, s, max_beta) -> tuple[int, float, float]:
    T = check_int("T", T, 2, 100_000)
    s = check_float("s", s, 0.0, 1.0, low_open=True)
    max_beta = check_float("max_beta", max_beta, 0.0, 1.0, low_open=True)
    if max_beta >= 1.0:
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta}")
    return T, s, max_beta


def _schedule(betas, name: str, given: str) -> Schedule:
    """Schedule(betas) in float64, or a ValueError saying which arguments (``given``) gave no usable schedule."""
    try:
        return Schedule(torch.as_tensor(betas, dtype=torch.float64), name=name)
    except ValueError as err:  # abar_t rounds to 1 or underflows to 0 in float64
        raise ValueError(f"{given} give no usable schedule: {err}") from None


def get(name: str, T: int = 1000) -> Schedule:
    """A schedule by name: 'linear' or 'cosine'."""
    builders = {"linear": linear, "cosine": cosine}
    if name not in builders:
        raise ValueError(f"schedule must be one of {sorted(builders)}, got {name!r}")
    return builders[name](T=T)
