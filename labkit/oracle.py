"""Exact mixture math: the density, score and eps of a Gaussian-mixture target, at any noise level.

A mixture p_0 = sum_k pi_k N(mu_k, s_k^2 I) scaled by a and given added Gaussian noise of
variance v is again a mixture, sum_k pi_k N(a mu_k, v_k I) with v_k = a^2 s_k^2 + v, so

    grad log p(x) = - sum_k r_k(x) (x - a mu_k) / v_k,   r_k = posterior of component k.

The VP marginal of x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps is the case a = sqrt(abar),
v = 1 - abar, and the ideal eps-prediction is eps*(x, t) = -sqrt(1 - abar) grad log p_t(x);
single-sigma smoothing x~ = x_0 + sigma z (chapter 2) is a = 1, v = sigma^2.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_float, check_points
from .schedules import Schedule
from .targets import GaussianMixture


def _check_mixture(target) -> GaussianMixture:
    if not isinstance(target, GaussianMixture):
        raise TypeError(f"target must be a Gaussian mixture (e.g. ring8), got {target!r}")
    return target


def _log_terms(target: GaussianMixture, x: torch.Tensor, noise_var, scale, classes=None):
    """log(pi_k N(x; a mu_k, v_k I)) (n, K), x - a mu_k (n, K, d) and v_k (n, K) in float64.

    ``noise_var`` (v) and ``scale`` (a) are numbers or float64 tensors of shape (n,); ``classes``
    (a long tensor (n,), None or the null label = num_classes: all) keeps only that class's components.
    """
    v = torch.as_tensor(noise_var, dtype=torch.float64).reshape(-1, 1)           # (n or 1, 1)
    a = torch.as_tensor(scale, dtype=torch.float64).reshape(-1, 1)
    var = a.square() * target.stds.square() + v                                  # (n, K)
    diff = x.to(torch.float64)[:, None, :] - a[..., None] * target.means        # (n, K, d)
    log_terms = (target.weights.log() - diff.square().sum(-1) / (2 * var)
                 - 0.5 * x.shape[1] * torch.log(2 * math.pi * var))
    if classes is not None:
        member = (target.component_classes == classes[:, None]) | (classes[:, None] == target.num_classes)
        log_terms = log_terms.masked_fill(~member, -math.inf)
    return log_terms, diff, var


def _check_args(target, x, noise_var, scale) -> GaussianMixture:
    target = _check_mixture(target)
    check_points("x", x, dim=target.means.shape[1])
    check_float("noise_var", noise_var, 0.0, 1e12)
    check_float("scale", scale, 0.0, 1e6, low_open=True)
    return target


def mixture_log_prob(target, x: torch.Tensor, noise_var: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """log p(x) of ``target`` scaled by a = ``scale``, noise of variance v = ``noise_var`` added (float64)."""
    target = _check_args(target, x, noise_var, scale)
    return torch.logsumexp(_log_terms(target, x, noise_var, scale)[0], dim=1)


def mixture_score(target, x: torch.Tensor, noise_var: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """grad log p(x) = -sum_k r_k(x) (x - a mu_k) / v_k of the same mixture (float64)."""
    target = _check_args(target, x, noise_var, scale)
    return _score(target, x, noise_var, scale)


def _score(target, x, noise_var, scale, classes=None) -> torch.Tensor:
    log_terms, diff, var = _log_terms(target, x, noise_var, scale, classes)
    r = torch.softmax(log_terms, dim=1)                                          # posterior r_k(x)
    return -(r[..., None] * diff / var[..., None]).sum(1)


def nearest_mode(target, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, distance) of the component mean mu_k nearest to each point of ``x`` (distance in float64)."""
    target = _check_mixture(target)
    check_points("x", x, dim=target.means.shape[1])
    distance, index = torch.cdist(x.to(torch.float64), target.means).min(dim=1)
    return index, distance


class MixtureEps:
    """Exact eps*(x, t, c) with the same call signature as :class:`~labkit.model.EpsMLP`.

    Label c restricts the mixture to the components of class c; c = ``num_classes`` (the null
    token) or None uses the whole mixture. Computed in float64, returned in x's dtype.
    """

    def __init__(self, target: GaussianMixture, schedule: Schedule):
        self.target = _check_mixture(target)
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.num_classes = self.null = target.num_classes

    def score(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """grad_x log p_t(x | c) in float64: the mixture scaled by sqrt(abar_t), noise variance 1 - abar_t."""
        c = self._check(x, t, c)
        abar = self.schedule.abar(t.to(torch.float64))
        return _score(self.target, x, 1 - abar, abar.sqrt(), c)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """eps*(x, t, c) = -sqrt(1 - abar_t) grad log p_t(x | c), in x's dtype."""
        c = self._check(x, t, c)
        abar = self.schedule.abar(t.to(torch.float64))
        return (-(1 - abar).sqrt()[:, None] * _score(self.target, x, 1 - abar, abar.sqrt(), c)).to(x.dtype)

    def _check(self, x, t, c) -> torch.Tensor | None:
        check_points("x", x, dim=self.target.means.shape[1])
        if not isinstance(t, torch.Tensor) or t.shape != (len(x),):
            raise ValueError(f"t must be a tensor of shape ({len(x)},)")
        if c is not None and (not isinstance(c, torch.Tensor) or c.shape != (len(x),)):
            raise ValueError(f"c (the classes) must be None or a tensor of shape ({len(x)},)")
        return None if c is None else c.long()

    def eps_fn(self, classes=None):
        """eps_fn(x, t) for ``classes`` (None: the whole mixture)."""
        from .guidance import cfg

        return cfg(self, classes, 0.0)


def eps_fn(target: GaussianMixture, schedule: Schedule, classes=None):
    """The exact eps function of ``target`` under ``schedule`` (conditioned on ``classes``)."""
    return MixtureEps(target, schedule).eps_fn(classes)


class _MixtureVelocity:
    """Exact marginal velocity v*(x, t, c) = E[eps - x_0 | x_t = x, c] on the linear path
    x_t = (1 - t) x_0 + t eps (labkit.flow): the mixture scaled by a = 1 - t, noise variance t^2.

    Per component k (x_0 ~ N(mu_k, s_k^2 I), v_k = a^2 s_k^2 + t^2), E[eps | x, k] = t (x - a mu_k) / v_k
    and E[x_0 | x, k] = mu_k + a s_k^2 (x - a mu_k) / v_k, so
    v* = sum_k r_k(x) [(t - a s_k^2) (x - a mu_k) / v_k - mu_k].
    Finite at t = 0 and t = 1; float64 inside, x's dtype out. Called like a velocity model (for guidance.cfg).
    """

    def __init__(self, target: GaussianMixture):
        self.target = _check_mixture(target)
        self.num_classes = self.null = target.num_classes

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        t = t.to(torch.float64)
        a = 1 - t
        log_terms, diff, var = _log_terms(self.target, x, t.square(), a, None if c is None else c.long())
        r = torch.softmax(log_terms, dim=1)                                          # posterior r_k(x)
        v_k = ((t[:, None] - a[:, None] * self.target.stds.square()) / var)[..., None] * diff - self.target.means
        return (r[..., None] * v_k).sum(1).to(x.dtype)


def velocity_fn(target: GaussianMixture, classes=None):
    """The exact marginal velocity function v(x, t) = E[eps - x_0 | x_t = x] of ``target`` on the linear
    path (t in [0, 1], :mod:`labkit.flow`), conditioned on ``classes`` (None: the whole mixture)."""
    from .guidance import cfg

    return cfg(_MixtureVelocity(target), classes, 0.0)
