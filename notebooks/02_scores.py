# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 2 — Scores across noise levels
#
# A diffusion model never learns the density $p(x)$ itself. It learns the *score*
# $\nabla_x \log p_t(x)$ of the noised data: a vector field that points, at every $x$, in the
# direction in which the (noised) data become more likely. This chapter computes that field exactly
# for a Gaussian mixture, learns it with denoising score matching at a single noise level, and shows
# why one noise level is not enough: the reason diffusion models use a whole range of them.
#
# **Learning goals**
#
# 1. Write the score of the noised distribution $p_t$ and its exact form for a Gaussian mixture, and
#    check labkit's implementation against automatic differentiation of $\log p_t$.
# 2. Derive denoising score matching (DSM) at one noise level $\sigma$ and train a score network
#    with it.
# 3. See its two failure modes, measured: a small $\sigma$ gives no training signal away from the
#    data; a large $\sigma$ learns a field that has lost the data's details.

# %%
# %matplotlib widget
import inspect
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm

from labkit import dsm, fields, oracle, schedules, targets
from labkit.widgets.score_field import ScoreFieldApp

ring8, cosine = targets.get("ring8"), schedules.cosine()
exact = oracle.eps_fn(ring8, cosine)
print(ring8, cosine)

# %% [markdown]
# ## The score of the noised data
#
# Chapter 1 noised data with $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)$.
# The distribution of $x_t$ is the data distribution blurred and shrunk,
#
# $$p_t(x) = \int q(x \mid x_0)\, p_0(x_0)\, dx_0 ,$$
#
# and its score is $s(x, t) = \nabla_x \log p_t(x)$. Differentiating under the integral gives
# Tweedie's formula (Efron 2011): the score is the average, over the clean points $x_0$ that could
# have produced $x$, of the kernel's score,
#
# $$\nabla_x \log p_t(x) = \mathbb E\big[\nabla_x \log q(x\mid x_0) \,\big|\, x_t = x\big]
#   = -\frac{x - \sqrt{\bar\alpha_t}\,\mathbb E[x_0\mid x_t = x]}{1-\bar\alpha_t}
#   = -\frac{\mathbb E[\epsilon \mid x_t = x]}{\sqrt{1-\bar\alpha_t}} .$$
#
# So the score points from $x$ towards the (shrunk) denoised guess, and an eps-predictor is a score
# model: $s = -\epsilon/\sqrt{1-\bar\alpha_t}$ (`labkit.fields.score_field`).
#
# ## Exact score of a Gaussian mixture
#
# For $p_0 = \sum_k \pi_k \mathcal N(\mu_k, s_k^2 I)$ (the ring: eight modes, $s_k = 0.1$), noising
# keeps each component Gaussian: $x_t \mid k \sim \mathcal N(\sqrt{\bar\alpha_t}\mu_k, v_k I)$ with
# $v_k = \bar\alpha_t s_k^2 + 1 - \bar\alpha_t$. Hence $p_t$ is a mixture too and
#
# $$\nabla_x \log p_t(x) = -\sum_k r_k(x)\,\frac{x - \sqrt{\bar\alpha_t}\mu_k}{v_k},\qquad
#   r_k(x) = \frac{\pi_k \mathcal N(x; \sqrt{\bar\alpha_t}\mu_k, v_k I)}
#   {\sum_j \pi_j \mathcal N(x; \sqrt{\bar\alpha_t}\mu_j, v_j I)} ,$$
#
# each component pulling $x$ to its centre, weighted by how responsible it is for $x$. This is
# `labkit.oracle.MixtureEps.score`, valid at any (fractional) $t$: the mixture scaled by
# $a = \sqrt{\bar\alpha_t}$ with noise of variance $v = 1 - \bar\alpha_t$ added. The mixture math below it
# (log-terms $\log \pi_k \mathcal N(x; a\mu_k, v_k I)$, posterior $r_k$, score) is written once in
# `labkit.oracle` and serves this chapter's single-sigma section ($a = 1$, $v = \sigma^2$) too:

# %%
print(inspect.getsource(oracle.MixtureEps.score))
print(inspect.getsource(oracle._score))
print(inspect.getsource(oracle._log_terms))

# %% [markdown]
# ### Exercise: the score of a mixture
#
# Write `my_mixture_score(x, means, sd)`: the score $\nabla_x\log p(x)$ of the equal-weight mixture
# $\frac1K\sum_k\mathcal N(\mu_k, \mathrm{sd}^2 I)$ (`means` of shape (K, 2)) at the points `x` (shape (n, 2)),
# with the responsibilities $r_k(x)$ above (a `torch.softmax`). `exercises.check` runs it against labkit on
# random and corner inputs and prints one line: *passed*, or *not yet* with what differs. Later cells use
# labkit's own function, so the chapter runs either way. (Here: against `torch.autograd` of the log-density, on
# the ring's means, at sd = 0.5 and 0.1 and at points 0.001 from a mode.)

# %%
from labkit import exercises  # noqa: E402


def my_mixture_score(x, means, sd):
    """Score of (1/K) sum_k N(mu_k, sd^2 I) at x: -sum_k r_k(x) (x - mu_k) / sd^2."""
    ### BEGIN SOLUTION
    d = x[:, None] - means[None]                                  # (n, K, 2): x - mu_k
    r = torch.softmax(-d.square().sum(-1) / (2 * sd**2), dim=1)   # r_k(x)
    return -(r[..., None] * d).sum(1) / sd**2
    ### END SOLUTION


exercises.check("mixture_score", my_mixture_score)

# %% [markdown]
# ### Check against automatic differentiation
#
# To differentiate $\log p_t$ we need it as a function. Write $x_t = \sqrt{\bar\alpha_t}\,\tilde x$
# with $\tilde x = x_0 + \sigma_t\epsilon$, $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$
# (chapter 1). $\tilde x$ is the data blurred by $\mathcal N(0, \sigma_t^2 I)$, whose density
# $p_\sigma$ is the mixture with variances $s_k^2 + \sigma^2$ (`labkit.oracle.mixture_log_prob` with
# `noise_var` $= \sigma^2$); a change of variables in 2-D gives
#
# $$\log p_t(x) = \log p_{\sigma_t}\!\big(x/\sqrt{\bar\alpha_t}\big) - \log\bar\alpha_t .$$
#
# We differentiate this with `torch.autograd` and, independently, by central finite differences,
# at 500 random points and several $t$, and compare with the oracle.

# %%
g = torch.Generator().manual_seed(0)
x = 2.5 * torch.randn(500, 2, generator=g, dtype=torch.float64)
mixture = oracle.MixtureEps(ring8, cosine)


def log_p_t(x, t):
    abar = cosine.alphas_cumprod[t]
    return oracle.mixture_log_prob(ring8, x / abar.sqrt(), cosine.sigmas[t].item() ** 2) - abar.log()


print(f"{'t':>4} {'sigma_t':>8} | max relative difference to the oracle: autograd, finite differences")
for t in [5, 100, 300, 600, 900]:
    oracle_score = mixture.score(x, torch.full((len(x),), float(t), dtype=torch.float64))
    xg = x.clone().requires_grad_()
    (autograd,) = torch.autograd.grad(log_p_t(xg, t).sum(), xg)
    h = 1e-5
    finite = torch.stack([(log_p_t(x + h * e, t) - log_p_t(x - h * e, t)) / (2 * h)
                          for e in torch.eye(2, dtype=torch.float64)], dim=1)
    scale = oracle_score.norm(dim=1).clamp(min=1e-3)
    rel_ad = ((autograd - oracle_score).norm(dim=1) / scale).max().item()
    rel_fd = ((finite - oracle_score).norm(dim=1) / scale).max().item()
    print(f"{t:>4} {cosine.sigmas[t].item():>8.3g} | {rel_ad:.1e}  {rel_fd:.1e}")

# %% [markdown]
# Agreement to rounding (autograd) and to the finite-difference truncation error: the oracle *is*
# the gradient of $\log p_t$.
#
# ### What the score looks like across $t$
#
# Arrows show $s(x, t)$ on a grid, over the noised ring (grey). Its size changes by orders of
# magnitude with $t$ and with the distance to the data, so each panel is rescaled so that its
# longest arrow spans 0.9 grid cell (`fields.display_arrows`); the factor is printed in the title.

# %%
points = fields.grid(3.0, 16)
g = torch.Generator().manual_seed(1)
x0, _ = ring8.sample(600, g)
eps0 = torch.randn(x0.shape, generator=g)
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), layout="constrained")
for ax, t in zip(axes, [5, 150, 400, 800], strict=True):
    s = fields.score_field(exact, cosine, float(t), points)
    arrows, factor = fields.display_arrows(s, 6.0 / 15)
    xt = cosine.q_sample(x0, t, eps0)
    ax.scatter(xt[:, 0], xt[:, 1], s=2, color="0.75", linewidths=0)
    ax.quiver(points[:, 0], points[:, 1], arrows[:, 0], arrows[:, 1], angles="xy", scale_units="xy", scale=1,
              color="tab:blue", width=0.006)
    ax.set_title(f"t = {t}, $\\sigma_t$ = {cosine.sigmas[t].item():.2g}\narrows = score x {factor:.2g}", fontsize=9)
    ax.set_xlim(-3.4, 3.4)
    ax.set_ylim(-3.4, 3.4)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
largest = {t: fields.score_field(exact, cosine, float(t), points).norm(dim=1).max().item() for t in [5, 150, 400, 800]}
print("largest |score| on the grid:", {t: f"{v:.3g}" for t, v in largest.items()})

# %% [markdown]
# At small $t$ every arrow points to the nearest mode and grows with the distance $d$ to it, as
# $d / v_k$ with $v_k = \bar\alpha_t s_k^2 + 1 - \bar\alpha_t$ (hence the 217 at $t = 5$); at large
# $t$ the field is that of a single Gaussian,
# $s \approx -x$, pointing at the origin. A sampler needs the whole family: coarse directions first,
# fine ones at the end.

# %% [markdown]
# ## Learning a score: denoising score matching at one noise level
#
# We cannot evaluate $\|s_\theta(x) - \nabla\log p(x)\|^2$ without knowing $p$. Hyvärinen (2005)
# removed the unknown score by integration by parts (score matching); Vincent (2011) showed that,
# for data blurred by a Gaussian of width $\sigma$, $\tilde x = x_0 + \sigma z$, it is equivalent to
# regress onto the score of the blurring kernel, which we know:
# $\nabla_{\tilde x}\log q(\tilde x\mid x_0) = -(\tilde x - x_0)/\sigma^2 = -z/\sigma$. With the weight
# $\sigma^2$ of Song & Ermon (2019),
#
# $$L_\sigma(\theta) = \sigma^2\,\mathbb E_{x_0, z}\,\big\| s_\theta(x_0 + \sigma z) + z/\sigma \big\|^2
#   = \mathbb E_{x_0, z}\,\big\| \sigma s_\theta(x_0 + \sigma z) + z \big\|^2 ,$$
#
# which differs from $\sigma^2\,\mathbb E\,\|s_\theta(\tilde x) - \nabla\log p_\sigma(\tilde x)\|^2$
# only by a constant. Its minimiser is the score of the **blurred** data $p_\sigma$, not of the
# data (tests/test_dsm.py checks this identity numerically). labkit's version: a small MLP that
# predicts $-z$ (so its output is of size 1 at any $\sigma$), read as $s_\theta = f_\theta / \sigma$.

# %%
print(inspect.getsource(dsm.dsm_loss))
print(inspect.getsource(dsm.ScoreNet.forward))

# %% [markdown]
# ### Exercise: the target of denoising score matching
#
# Write `my_dsm_target(x_tilde, x0, sigma)`: the score of the blurring kernel, $\nabla_{\tilde x}\log q(\tilde
# x\mid x_0)$ with $q = \mathcal N(x_0, \sigma^2 I)$, the target that $s_\theta(\tilde x)$ regresses onto.
# Checked at $\sigma$ = 0.05, 0.5 and 3, the three noise levels below.

# %%
def my_dsm_target(x_tilde, x0, sigma):
    """grad log N(x_tilde; x_0, sigma^2 I) = -(x_tilde - x_0) / sigma^2 (= -z / sigma)."""
    ### BEGIN SOLUTION
    return -(x_tilde - x0) / sigma**2
    ### END SOLUTION


exercises.check("dsm_target", my_dsm_target)

# %% [markdown]
# We train one network at each of three noise levels on the ring (component sd 0.1, modes 1.53
# apart): $\sigma = 0.05$ (below the modes' own width), $\sigma = 0.5$ (about a third of the gap
# between modes) and $\sigma = 3$ (larger than the whole ring). 1000 Adam steps each.

# %%
sigmas = {"small": 0.05, "medium": 0.5, "large": 3.0}
nets, losses = {}, {}
for name, sigma in sigmas.items():
    start = time.perf_counter()
    nets[name], losses[name] = dsm.train_single_sigma(ring8, sigma, steps=1000, seed=0)
    print(f"sigma = {sigma:<4}: final loss {np.mean(losses[name][-100:]):.3f}  ({time.perf_counter() - start:.1f} s)")

# %% [markdown]
# Each learned field next to its error against the exact score of *its own* blurred distribution,
# $\sigma\,\|s_\theta(x) - \nabla\log p_\sigma(x)\|$ (in units of the noise $z$, so the three panels
# compare), with the training inputs $x_0 + \sigma z$ in grey.

# %%
fine = fields.grid(3.0, 61)
g = torch.Generator().manual_seed(2)
x0, _ = ring8.sample(400, g)
z = torch.randn(x0.shape, generator=g)
fig, axes = plt.subplots(2, 3, figsize=(11, 7.2), layout="constrained")
for col, (name, sigma) in enumerate(sigmas.items()):
    with torch.no_grad():
        arrows, factor = fields.display_arrows(nets[name](points), 6.0 / 15)
    xs = x0 + sigma * z
    ax = axes[0, col]
    ax.scatter(xs[:, 0], xs[:, 1], s=2, color="0.7", linewidths=0)
    ax.quiver(points[:, 0], points[:, 1], arrows[:, 0], arrows[:, 1], angles="xy", scale_units="xy", scale=1,
              color="tab:blue", width=0.006)
    ax.set_title(f"learned score, $\\sigma$ = {sigma} (arrows x {factor:.2g})", fontsize=10)
    err = dsm.score_error(nets[name], ring8, sigma, fine).reshape(61, 61)
    image = axes[1, col].imshow(err.numpy(), origin="lower", extent=(-3, 3, -3, 3), cmap="magma",
                                norm=LogNorm(1e-3, 10))
    axes[1, col].scatter(x0[:, 0], x0[:, 1], s=1, color="cyan", linewidths=0)
    axes[1, col].set_title(f"error $\\sigma\\,|s_\\theta - \\nabla\\log p_\\sigma|$, $\\sigma$ = {sigma}", fontsize=10)
    for a in (ax, axes[1, col]):
        a.set_xlim(-3.2, 3.2)
        a.set_ylim(-3.2, 3.2)
        a.set_aspect("equal")
fig.colorbar(image, ax=axes[1, :], shrink=0.8, label="error (units of z)")

# %% [markdown]
# The same errors as a function of the distance to the nearest mode centre, averaged over the fine
# grid (the ring's data sit within about 0.3 of a centre):

# %%
edges = np.array([0.0, 0.15, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.5])
centres = (edges[1:] + edges[:-1]) / 2
fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
by_distance = {}
for name, sigma in sigmas.items():
    by_distance[name] = dsm.error_by_distance(nets[name], ring8, sigma, fine, edges).numpy()
    ax.plot(centres, by_distance[name], "o-", label=f"$\\sigma$ = {sigma}")
ax.axvspan(0, 0.3, color="tab:green", alpha=0.1, label="where the data are")
ax.set_yscale("log")
ax.set_xlabel("distance to the nearest mode centre")
ax.set_ylabel(r"mean $\sigma\,|s_\theta - \nabla\log p_\sigma|$")
ax.legend(fontsize=8)
for name, err in by_distance.items():
    far = np.nanmean(err[6:])
    print(f"sigma = {sigmas[name]:<4}: error near the data {err[0]:.3f}, beyond distance 1.5: {far:.3f}")

# %% [markdown]
# **Too small a $\sigma$: no signal far from the data.** At $\sigma = 0.05$ every training input
# lies within a few tenths of a mode, so nothing in the loss constrains the network elsewhere. Far
# from the ring its field is an arbitrary extrapolation and its error is many times larger than
# near the data (the curve climbs with distance); at the origin and in the corners the arrows do not
# lead to the data. A sampler started from noise, which begins exactly there, would get lost
# (Song & Ermon 2019, Sec. 3.2, call this the problem of low-density regions).
#
# **A medium $\sigma$ learns its target well everywhere we look**, because the blurred training
# inputs now cover the plane around the ring.
#
# **Too large a $\sigma$: details lost.** At $\sigma = 3$ the network learns its own target almost
# perfectly (the lowest curve), but the target itself is the wrong field: blurred by 3, the ring is a
# single round bump. Two exact computations show it: the log-density along the ring circle (its
# contrast between mode and gap) and the direction of the field on the ring, a quarter of the way
# from one mode to the next (where the data's own score points along the ring to the nearest mode).

# %%
angle = torch.linspace(0, 2 * math.pi, 721, dtype=torch.float64)[:-1]
circle = 2.0 * torch.stack([angle.cos(), angle.sin()], dim=1)
between = 2 * math.pi * (torch.arange(8, dtype=torch.float64) + 0.25) / 8
ring_points = 2.0 * torch.stack([between.cos(), between.sin()], dim=1)
tangent = torch.stack([-between.sin(), between.cos()], dim=1)  # along the ring, away from mode k
print(f"{'sigma':>6} | log p_sigma: mode - gap on the ring | learned score on the ring: share along the ring")
for name, sigma in sigmas.items():
    log_p = oracle.mixture_log_prob(ring8, circle, sigma**2)
    with torch.no_grad():
        s = nets[name](ring_points.float()).double()
    along = ((s * tangent).sum(1).abs() / s.norm(dim=1)).mean().item()
    print(f"{sigma:>6} | {(log_p.max() - log_p.min()).item():>34.3g} | {along:>45.2f}")

# %% [markdown]
# With $\sigma = 3$ the density along the ring is flat (the eight modes have merged) and the arrows
# on the ring point inward, at the centre of the ring, not along it to the modes: following them
# would collapse every sample into one blob. With $\sigma = 0.05$ or $0.5$ the arrows on the ring run
# along it, towards the nearest mode.
#
# Neither end works alone, and no single middle value gets both the far field and the fine detail.
# Song & Ermon (2019) therefore trained one network for a whole geometric ladder of noise levels
# and annealed through them; diffusion models do the same with the continuous family indexed by
# $t$ (Song et al. 2021). That is chapter 3: one network $\epsilon_\theta(x, t)$ for all $t$.

# %% [markdown]
# ## Widget: the exact score field as $t$ moves
#
# `ScoreFieldApp` shows one quiver panel per eps function. Here: the exact field of the ring under
# the cosine schedule, over the noised cloud in grey. Drag $t$ from 0 (arrows to the eight modes,
# huge away from them) to 999 (one Gaussian, arrows to the origin). Arrows are rescaled at every $t$
# (longest = 0.9 grid cell; the factor is shown in the panel). Chapter 3 adds a learned panel beside
# the exact one.

# %% [markdown]
# **Predict, then drag.** Where will the arrows point at $t = 999$, and how long is the longest true arrow on
# the grid (half-width 3)? At $t = 5$, where is the longest one? Guess, then drag.
#
# <details><summary>Answer</summary>
#
# At $t = 999$ ($\bar\alpha \approx 2\times 10^{-9}$) $p_t$ is $\mathcal N(0, I)$ to rounding, so $s(x) = -x$:
# every arrow points at the origin and the longest, at a corner, is $3\sqrt 2 = 4.24$ long (the exact field
# equals $-x$ there to float rounding). At $t = 5$ the longest (217, printed above) is at a corner too, 2.24
# from the nearest mode: the score grows as distance $/ v_k$ with $v_k \approx 0.01$.
#
# </details>

# %%
app = ScoreFieldApp(cosine, {"exact score of the noised ring": exact}, target=ring8, t=100)
app  # noqa: B018 (the widget is displayed as the cell's value)

# %% [markdown]
# Its update is a plain method (the tests drive it the same way): after `set_t`, the arrows are the
# display-scaled exact score at the new $t$, computed with one eps call on the 16 x 16 grid.

# %%
app.set_t(30)
quiver = app.quivers["exact score of the noised ring"]
expected, _ = fields.display_arrows(fields.score_field(exact, cosine, 30.0, app.points), app.cell)
print("max |arrow - expected| =", float(np.abs(np.stack([quiver.U, quiver.V], 1) - expected.numpy()).max()))

# %% [markdown]
# ## Summary
#
# * The score of the noised data is $\nabla\log p_t(x) = -\mathbb E[\epsilon\mid x_t = x]/\sqrt{1-\bar\alpha_t}$;
#   for a Gaussian mixture it is exact (`labkit.oracle`), and it agrees with autograd and finite
#   differences of $\log p_t$.
# * Denoising score matching at one $\sigma$ learns the score of the data blurred by $\sigma$, using
#   only samples.
# * Measured here: a small $\sigma$ leaves the field unconstrained away from the data (error grows
#   with distance); a large $\sigma$ learns accurately a field in which the modes have merged and the
#   arrows point to the centre. Hence: many noise levels, one network (chapter 3).
#
# ## References
#
# * A. Hyvärinen (2005). Estimation of non-normalized statistical models by score matching. JMLR 6.
# * P. Vincent (2011). A connection between score matching and denoising autoencoders. Neural
#   Computation 23(7).
# * B. Efron (2011). Tweedie's formula and selection bias. JASA 106(496).
# * Y. Song, S. Ermon (2019). Generative modeling by estimating gradients of the data distribution.
#   arXiv:1907.05600.
# * Y. Song, J. Sohl-Dickstein, D. Kingma, A. Kumar, S. Ermon, B. Poole (2021). Score-based
#   generative modeling through stochastic differential equations. arXiv:2011.13456.
# * J. Ho, A. Jain, P. Abbeel (2020). Denoising diffusion probabilistic models. arXiv:2006.11239.
