"""Denoising score matching at a single noise level sigma (Vincent 2011; Song & Ermon 2019).

Perturb the data with Gaussian noise of one fixed sigma, x~ = x + sigma z, z ~ N(0, I). The score
of the perturbed density p_sigma = p_0 * N(0, sigma^2 I) is learned by regressing onto the score
of the perturbation kernel, grad log q(x~ | x) = -z / sigma (Vincent 2011, Eq. 9):

    L(theta) = sigma^2 E_{x, z} || s_theta(x + sigma z) + z / sigma ||^2
             = E_{x, z} || sigma s_theta(x + sigma z) + z ||^2,

weighted by sigma^2 as in Song & Ermon 2019 (Eq. 6 with lambda(sigma) = sigma^2). Its minimiser
is s_theta = grad log p_sigma: the score of the *noised* data, not of the data.

For a Gaussian mixture p_0 = sum_k pi_k N(mu_k, s_k^2 I), p_sigma is again a mixture with
variances s_k^2 + sigma^2, so its score is exact (:func:`smoothed_score`). This is the
variance-exploding (VE) picture. The VP process of :mod:`labkit.schedules` is the same thing
rescaled: x_t = sqrt(abar_t) x~ with sigma = sigma_t = sqrt((1 - abar_t) / abar_t), so in 2-D

    p_t(x) = p_sigma(x / sqrt(abar_t)) / abar_t,
    grad log p_t(x) = grad log p_sigma(x / sqrt(abar_t)) / sqrt(abar_t),

which links :func:`smoothed_score` to :meth:`labkit.oracle.MixtureEps.score` at t = sigma_to_t(sigma).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_float, check_int, check_points
from .targets import GaussianMixture, Target
from .train import adam_step, one_torch_thread

POOL_SIZE = 65_536


class ScoreNet(nn.Module):
    """s_theta(x) for one fixed ``sigma``: an MLP f_theta, read as s_theta(x) = f_theta(c_in x) / sigma.

    The MLP predicts -z (the noise, of size about 1), so its output scale does not depend on
    sigma; c_in = 1 / sqrt(1 + sigma^2) keeps its input of size about 1 as well.
    """

    def __init__(self, sigma: float, width: int = 64, depth: int = 3):
        super().__init__()
        self.sigma = check_float("sigma", sigma, 0.0, 1e4, low_open=True)
        width = check_int("width", width, 1, 65_536)
        depth = check_int("depth", depth, 1, 64)
        layers: list[nn.Module] = []
        width_in = 2
        for _ in range(depth):
            layers += [nn.Linear(width_in, width), nn.SiLU()]
            width_in = width
        layers.append(nn.Linear(width_in, 2))
        self.net = nn.Sequential(*layers)

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

    Adam with the learning rate decaying from ``lr`` to 0 on a half cosine; fresh z every step,
    x0 drawn from a seeded pool of target samples. The model is returned in eval mode.
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a labkit Target, got {type(target).__name__}")
    sigma = check_float("sigma", sigma, 0.0, 1e4, low_open=True)
    steps = check_int("steps", steps, 1, 1_000_000)
    batch_size = check_int("batch_size", batch_size, 1, 1_000_000)
    lr = check_float("lr", lr, 0.0, 1.0, low_open=True)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    g = torch.Generator().manual_seed(seed)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # the initial weights
    try:
        model = ScoreNet(sigma, width=width, depth=depth)
    finally:
        torch.random.set_rng_state(state)
    pool, _ = target.sample(POOL_SIZE, g)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[float] = []
    model.train()
    with one_torch_thread():
        for step in tqdm(range(steps), desc=f"DSM sigma={sigma:g}", disable=not progress, mininterval=0.5):
            x0 = pool[torch.randint(POOL_SIZE, (batch_size,), generator=g)]
            z = torch.randn(x0.shape, generator=g)
            loss = dsm_loss(model, x0, sigma, z)
            adam_step(optimizer, loss, lr, step, steps)
            history.append(loss.item())
    model.eval()
    return model, history


def _check_mixture(target) -> GaussianMixture:
    if not isinstance(target, GaussianMixture):
        raise TypeError(f"target must be a Gaussian mixture (e.g. ring8), got {target!r}")
    return target


def _log_terms(target: GaussianMixture, sigma: float, x: torch.Tensor):
    """Per-component log(pi_k N(x; mu_k, v_k I)) with v_k = s_k^2 + sigma^2, and x - mu_k."""
    var = target.stds**2 + sigma**2                                           # (K,)
    diff = x.to(torch.float64)[:, None, :] - target.means[None]               # (n, K, 2)
    d = x.shape[1]
    log_terms = (target.weights.log() - diff.square().sum(-1) / (2 * var)
                 - 0.5 * d * torch.log(2 * math.pi * var))                    # (n, K)
    return log_terms, diff, var


def smoothed_log_prob(target, sigma: float, x: torch.Tensor) -> torch.Tensor:
    """log p_sigma(x) of a Gaussian mixture smoothed by N(0, sigma^2 I) (sigma = 0: the data), float64."""
    target = _check_mixture(target)
    sigma = check_float("sigma", sigma, 0.0, 1e4)
    check_points("x", x)
    log_terms, _, _ = _log_terms(target, sigma, x)
    return torch.logsumexp(log_terms, dim=1)


def smoothed_score(target, sigma: float, x: torch.Tensor) -> torch.Tensor:
    """grad log p_sigma(x) = -sum_k r_k(x) (x - mu_k) / (s_k^2 + sigma^2), r_k the posterior; float64."""
    target = _check_mixture(target)
    sigma = check_float("sigma", sigma, 0.0, 1e4)
    check_points("x", x)
    log_terms, diff, var = _log_terms(target, sigma, x)
    r = torch.softmax(log_terms, dim=1)
    return -(r[..., None] * diff / var[None, :, None]).sum(1)


def distance_to_means(target, x: torch.Tensor) -> torch.Tensor:
    """Distance from each point of x to the nearest component mean mu_k (float64)."""
    target = _check_mixture(target)
    check_points("x", x)
    return torch.cdist(x.to(torch.float64), target.means).min(dim=1).values


@torch.no_grad()
def score_error(score_fn, target, sigma: float, x: torch.Tensor) -> torch.Tensor:
    """sigma || s_theta(x) - grad log p_sigma(x) ||: the error in units of the noise z (float64).

    Multiplying by sigma makes errors at different sigma comparable: sigma s = -E[z | x~].
    """
    sigma = check_float("sigma", sigma, 0.0, 1e4, low_open=True)
    exact = smoothed_score(target, sigma, x)
    learned = score_fn(x.to(torch.float32)).to(torch.float64)
    return sigma * (learned - exact).norm(dim=1)


def error_by_distance(score_fn, target, sigma: float, x: torch.Tensor, edges) -> torch.Tensor:
    """Mean :func:`score_error` over the points of x whose :func:`distance_to_means` falls in each bin.

    ``edges`` are the increasing bin edges (length B + 1); an empty bin gives NaN.
    """
    edges = torch.as_tensor(edges, dtype=torch.float64)
    if edges.ndim != 1 or len(edges) < 2 or not (edges[1:] > edges[:-1]).all():
        raise ValueError("edges must be an increasing 1-D sequence of at least 2 bin edges")
    err = score_error(score_fn, target, sigma, x)
    dist = distance_to_means(target, x)
    out = torch.full((len(edges) - 1,), float("nan"), dtype=torch.float64)
    for b in range(len(edges) - 1):
        inside = (dist >= edges[b]) & (dist < edges[b + 1])
        if inside.any():
            out[b] = err[inside].mean()
    return out
