"""ODE and SDE solvers over a denoiser D(x; sigma) and a decreasing grid of sigmas ending in 0.

Each solver is a generator: it starts from x at sigmas[0] and yields x after every step, in the
variance-exploding coordinates of Karras et al. 2022 (x = x_0 + sigma eps). A solver knows nothing
of eps, timesteps or alphas: :class:`labkit.samplers.Denoiser` wraps an eps function once, and the
grids (:func:`labkit.samplers.trailing`, :func:`labkit.samplers.karras`) are plain lists. The
probability-flow ODE in these coordinates is (Karras et al. 2022, Eq. 3 with sigma(t) = t)

    dx / dsigma = (x - D(x; sigma)) / sigma.
"""

from __future__ import annotations

import math

import torch


def euler(D, x, sigmas):
    """Euler's method on the probability-flow ODE. On DDIM's trailing grid this is DDIM (eta = 0)."""
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - D(x, sigma)) / sigma                 # dx/dsigma (= eps_hat)
        x = x + (sigma_next - sigma) * d
        yield x


def heun(D, x, sigmas):
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1); the step to sigma = 0 is Euler."""
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - D(x, sigma)) / sigma                 # line 4: slope at sigma_i
        x_next = x + (sigma_next - sigma) * d         # line 5: Euler step
        if sigma_next != 0:                           # lines 6-8: average with the slope at sigma_{i+1}
            d_next = (x_next - D(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_next) / 2
        x = x_next
        yield x


def dpmpp_2m(D, x, sigmas):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): an exponential integrator in lambda = -log sigma.

    With h_i = log(sigma_i / sigma_{i+1}) and r = h_{i-1} / h_i, the denoised estimate is extrapolated
    linearly in lambda, D' = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, and x_{i+1} = (sigma_{i+1}/sigma_i) x_i
    - expm1(-h_i) D'. The first step, and the step to sigma = 0 (x = D'), are first order.
    """
    D_prev, h_prev = None, None
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        D_i = D(x, sigma)
        if sigma_next == 0:                           # h = inf: the step lands on the denoised point
            x = D_i
        else:
            h = math.log(sigma / sigma_next)
            D_hat = D_i if D_prev is None else (1 + h / (2 * h_prev)) * D_i - h / (2 * h_prev) * D_prev
            x = (sigma_next / sigma) * x - math.expm1(-h) * D_hat
            h_prev = h
        D_prev = D_i
        yield x


def ancestral(D, x, sigmas, eta=1.0, generator=None):
    """Ancestral sampling: an Euler step down to sigma_down, then fresh noise of sd sigma_up.

    sigma_up = eta sigma_{i+1} sqrt(1 - sigma_{i+1}^2 / sigma_i^2), sigma_down^2 = sigma_{i+1}^2 - sigma_up^2.
    With eta = 1 each step draws from DDPM's posterior q(x_{i+1} | x_i, x0_hat) (Ho et al. 2020, Eq. 7);
    with 0 < eta < 1 it is DDIM's step with that eta (Song et al. 2021, Eq. 12); eta = 0 is Euler.
    """
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        sigma_up = eta * sigma_next * math.sqrt(1 - sigma_next**2 / sigma**2)
        sigma_down = math.sqrt(max(sigma_next**2 - sigma_up**2, 0.0))
        d = (x - D(x, sigma)) / sigma
        x = x + (sigma_down - sigma) * d
        if sigma_up > 0:
            x = x + sigma_up * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        yield x


def dpmpp_2m_sde(D, x, sigmas, generator=None):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022, DPM-Solver++, its SDE variant): DPM-Solver++(2M)'s denoised
    estimate in DDPM's posterior step, an exponential integrator of the reverse SDE instead of the ODE.

    With h_i = log(sigma_i / sigma_{i+1}), r = h_{i-1} / h_i and q = e^{-2 h_i} = (sigma_{i+1} / sigma_i)^2:
    D' = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1} (as in :func:`dpmpp_2m`), then x_{i+1} = q x_i + (1 - q) D'
    + sigma_{i+1} sqrt(1 - q) z. With D' = D_i this is :func:`ancestral`'s step at eta = 1. The first step
    is first order; the step to sigma = 0 lands on D_i. Fresh noise corrects a learned D's errors, which
    an ODE solver carries to the end (Karras et al. 2022, Sec. 4).
    """
    D_prev, h_prev = None, None
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        D_i = D(x, sigma)
        if sigma_next == 0:
            x = D_i
        else:
            h = math.log(sigma / sigma_next)
            D_hat = D_i if D_prev is None else (1 + h / (2 * h_prev)) * D_i - h / (2 * h_prev) * D_prev
            q = (sigma_next / sigma) ** 2
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = q * x + (1 - q) * D_hat + sigma_next * math.sqrt(1 - q) * z
            h_prev = h
        D_prev = D_i
        yield x
