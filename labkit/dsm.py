"""Denoising score matching at a single noise level sigma (Vincent 2011; Song & Ermon 2019).

Perturb the data with Gaussian noise of one fixed sigma, x~ = x + sigma z, z ~ N(0, I). The score
of the perturbed density p_sigma = p_0 * N(0, sigma^2 I) is learned by regressing onto the score
of the perturbation kernel, grad log q(x~ | x) = -z / sigma (Vincent 2011, Eq. 9):

    L(theta) = sigma^2 E_{x, z} || s_theta(x + sigma z) + z / sigma ||^2
             = E_{x, z} || sigma s_theta(x + sigma z) + z ||^2,

weighted by sigma^2 as in Song & Ermon 2019 (Eq. 6 with lambda(sigma) = sigma^2). Its minimiser
is s_theta = grad log p_sigma: the score of the *noised* data, not of the data.

For a Gaussian mixture p_0 = sum_k pi_k N(mu_k, s_k^2 I), p_sigma is again a mixture with
variances s_k^2 + sigma^2, so its score is exact: :func:`labkit.oracle.mixture_score` with
``noise_var = sigma^2``. This is the variance-exploding (VE) picture. The VP process of
:mod:`labkit.schedules` is the same thing rescaled: x_t = sqrt(abar_t) x~ with
sigma = sigma_t = sqrt((1 - abar_t) / abar_t), so in 2-D

    p_t(x) = p_sigma(x / sqrt(abar_t)) / abar_t,
    grad log p_t(x) = grad log p_sigma(x / sqrt(abar_t)) / sqrt(abar_t),

which links the two at t = sigma_to_t(sigma) (:meth:`labkit.oracle.MixtureEps.score`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_float, check_int
from .model import mlp
from .oracle import mixture_score, nearest_mode
from .targets import Target
from .train import fit, one_torch_thread, seeded


class ScoreNet(nn.Module):
    """s_theta(x) for one fixed ``sigma``: an MLP f_theta, read as s_theta(x) = f_theta(c_in x) / sigma.

    The MLP predicts -z (the noise, of size about 1), so its output scale does not depend on
    sigma; c_in = 1 / sqrt(1 + sigma^2) keeps its input of size about 1 as well.
    """

    def __init__(self, sigma: float, width: int = 64, depth: int = 3):
        super().__init__()
        self.sigma = check_float("sigma", sigma, 0.0, 1e4, low_open=True)
        self.net = mlp(2, check_int("width", width, 1, 65_536), check_int("depth", depth, 1, 64), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_in = 1.0 / math.sqrt(1.0 + self.sigma**2)
        return self.net(x * c_in) / self.sigma


def dsm_loss(score_fn, x0: torch.Tensor, sigma: float, z: torch.Tensor) -> torch.Tensor:
    """sigma^2-weighted DSM loss: mean over the batch of || sigma s(x0 + sigma z) + z ||^2."""
    return (sigma * score_fn(x0 + sigma * z) + z).square().sum(1).mean()


def train_single_sigma(target: Target, sigma: float, *, steps: int = 1000, batch_size: int = 256,
                       lr: float = 1e-2, width: int = 64, depth: int = 3, seed: int = 0,
                       progress: bool = False) -> tuple[ScoreNet, list[float]]:
    """Train a :class:`ScoreNet` at noise level ``sigma`` on ``target`` by DSM; returns (model, losses).

    The course's one loop (:func:`labkit.train.fit`: Adam, half-cosine learning rate, a seeded
    pool of target samples) on :func:`dsm_loss` with fresh z every step, on one torch thread.
    The model is returned in eval mode.
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    model = seeded(seed, ScoreNet, sigma, width=width, depth=depth)
    steps = check_int("steps", steps, 1, 1_000_000)

    def loss(x0, c, g):
        return dsm_loss(model, x0, model.sigma, torch.randn(x0.shape, generator=g))

    with one_torch_thread():
        history = fit(model, target, loss, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                      progress=progress, desc=f"DSM sigma={model.sigma:g}")
    return model, history


@torch.no_grad()
def score_error(score_fn, target, sigma: float, x: torch.Tensor) -> torch.Tensor:
    """sigma || s_theta(x) - grad log p_sigma(x) ||: the error in units of the noise z (float64).

    Multiplying by sigma makes errors at different sigma comparable: sigma s = -E[z | x~].
    """
    sigma = check_float("sigma", sigma, 0.0, 1e4, low_open=True)
    exact = mixture_score(target, x, noise_var=sigma**2)
    learned = score_fn(x.to(torch.float32)).to(torch.float64)
    return sigma * (learned - exact).norm(dim=1)


def error_by_distance(score_fn, target, sigma: float, x: torch.Tensor, edges) -> torch.Tensor:
    """Mean :func:`score_error` over the points of x whose distance to the nearest mode
    (:func:`labkit.oracle.nearest_mode`) falls in each bin.

    ``edges`` are the increasing bin edges (length B + 1); an empty bin gives NaN.
    """
    edges = torch.as_tensor(edges, dtype=torch.float64)
    if edges.ndim != 1 or len(edges) < 2 or not (edges[1:] > edges[:-1]).all():
        raise ValueError("edges must be an increasing 1-D sequence of at least 2 bin edges")
    err = score_error(score_fn, target, sigma, x)
    _, dist = nearest_mode(target, x)
    out = torch.full((len(edges) - 1,), float("nan"), dtype=torch.float64)
    for b in range(len(edges) - 1):
        inside = (dist >= edges[b]) & (dist < edges[b + 1])
        if inside.any():
            out[b] = err[inside].mean()
    return out
