"""The exact eps of a Gaussian-mixture target under a schedule, at any (fractional) t.

For p_0 = sum_k pi_k N(mu_k, s_k^2 I), the noised marginal of x_t = sqrt(abar) x_0 +
sqrt(1 - abar) eps is again a mixture, p_t = sum_k pi_k N(sqrt(abar) mu_k, v_k I) with
v_k = abar s_k^2 + 1 - abar, so its score is

    grad log p_t(x) = - sum_k r_k(x) (x - sqrt(abar) mu_k) / v_k,   r_k = posterior of component k,

and the ideal eps-prediction is eps*(x, t) = -sqrt(1 - abar) grad log p_t(x).
"""

from __future__ import annotations

import torch

from ._checks import check_points
from .schedules import Schedule
from .targets import GaussianMixture


class MixtureEps:
    """Exact eps*(x, t, c) with the same call signature as :class:`~labkit.model.EpsMLP`.

    Label c restricts the mixture to the components of class c; c = ``num_classes`` (the null
    token) or None uses the whole mixture. Computed in float64, returned in x's dtype.
    """

    def __init__(self, target: GaussianMixture, schedule: Schedule):
        if not isinstance(target, GaussianMixture):
            raise TypeError(f"target must be a Gaussian mixture (e.g. ring8), got {target!r}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
        self.target, self.schedule = target, schedule
        self.num_classes = target.num_classes

    def score(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """grad_x log p_t(x | c) in float64."""
        self._check(x, t)
        x = x.to(torch.float64)
        abar = self.schedule.abar(t.to(torch.float64))[:, None, None]              # (n, 1, 1)
        mu = abar.sqrt() * self.target.means[None]                                 # (n, K, 2)
        var = abar[..., 0] * self.target.stds[None] ** 2 + (1 - abar[..., 0])      # (n, K)
        diff = x[:, None, :] - mu
        log_w = self.target.weights.log()[None] - diff.square().sum(-1) / (2 * var) - var.log()
        if c is not None:
            # Components outside class c get weight zero (the null token keeps them all).
            c = c.to(torch.long)
            member = (self.target.component_classes[None, :] == c[:, None]) | (c[:, None] == self.num_classes)
            log_w = log_w.masked_fill(~member, float("-inf"))
        r = torch.softmax(log_w, dim=1)                                            # (n, K)
        return -(r[..., None] * diff / var[..., None]).sum(1)

    def _check(self, x, t) -> None:
        check_points("x", x, dim=self.target.means.shape[1])
        if not isinstance(t, torch.Tensor) or t.shape != (len(x),):
            raise ValueError(f"t must be a tensor of shape ({len(x)},)")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x, t)
        abar = self.schedule.abar(t.to(torch.float64))[:, None]
        return (-(1 - abar).sqrt() * self.score(x, t, c)).to(x.dtype)

    def eps_fn(self, classes=None):
        """eps_fn(x, t) for ``classes`` (None: the whole mixture)."""
        from .guidance import cfg

        return cfg(self, classes, 0.0)


def eps_fn(target: GaussianMixture, schedule: Schedule, classes=None):
    """The exact eps function of ``target`` under ``schedule`` (conditioned on ``classes``)."""
    return MixtureEps(target, schedule).eps_fn(classes)
