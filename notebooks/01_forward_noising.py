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
# # Chapter 1 — Forward noising
#
# A diffusion model learns to undo a fixed process that destroys data by adding Gaussian noise a
# little at a time. This chapter is about that forward process alone: no network yet. We write it
# down, prove (and check numerically) that it can be sampled at any step in one shot, compare the
# two noise schedules the rest of the course uses, and watch a 2-D point cloud dissolve into noise.
#
# **Learning goals**
#
# 1. Derive the closed form $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I)$
#    from the one-step kernel, and check it against a step-by-step simulation.
# 2. Read a schedule through $\bar\alpha_t$, the signal-to-noise ratio
#    $\mathrm{SNR}_t = \bar\alpha_t / (1-\bar\alpha_t)$ and the noise level
#    $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$.
# 3. Compare the linear schedule of Ho et al. (2020) with the cosine schedule of Nichol & Dhariwal
#    (2021), including the huge $\sigma_{T-1}$ of the cosine schedule that matters for samplers later.

# %%
# %matplotlib widget
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from labkit import schedules, targets
from labkit.plotting import scatter
from labkit.widgets.forward import NoisingApp

linear, cosine = schedules.linear(), schedules.cosine()
ring8 = targets.get("ring8")
print(linear)
print(cosine)

# %% [markdown]
# ## Notation (the whole course)
#
# Every chapter uses these symbols with these meanings only; labkit's names are in the last column.
#
# | symbol | meaning | labkit |
# |---|---|---|
# | $x_0$ | a data point (only data, never a sampler's start) | `Target.sample` |
# | $t$, $T$ | step $0, \dots, T-1$, $t = 0$ least noisy (the papers' step $t + 1$); $T = 1000$ | `.T` |
# | $\beta_t$, $\alpha_t$ | variance of one forward step; $\alpha_t = 1 - \beta_t$ | `.betas`, `.alphas` |
# | $\bar\alpha_t$ | $\prod_{s \le t}\alpha_s$, the signal variance left at $t$ | `.alphas_cumprod` |
# | $x_t$ | noised point $\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ (VP coordinates) | `.q_sample` |
# | $\epsilon$; $z$ | the noise in $x_t$; fresh $\mathcal N(0, I)$ noise drawn inside a step | |
# | $\mathrm{SNR}_t$ | $\bar\alpha_t / (1-\bar\alpha_t)$ | `.snr()` |
# | $\sigma_t$, $\sigma$ | **only the noise level**, $\sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$ | `.sigmas` |
# | $\sigma_{\max}$, $\sigma_{\min}$ | the largest and smallest noise level of a schedule or a sampler | `sigma_max=` |
# | $\lambda$ | $-\log\sigma$ (half the log-SNR), DPM-Solver's time (chapter 6) | |
# | $p_t$ | the density of $x_t$; $p_0$ is the data | |
# | $\nabla\log p_t$, $s_\theta$ | the score of $p_t$, and a network's estimate of it | `score_field` |
# | $\epsilon_\theta$, $\hat\epsilon$, $\epsilon^*$ | the eps-network; its output in a sampler; the exact eps | |
# | $\hat x_0$ | predicted data point $(x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$ | |
# | $D(x; \sigma)$ | the denoiser: $\hat x_0$ from $x = x_0 + \sigma\epsilon$ (chapters 4, 6) | `Denoiser` |
# | $\tilde\mu_t$, $\tilde\beta_t$ | mean and variance of the posterior $q(x_{t-1}\mid x_t, x_0)$ (chapter 4) | |
# | $\sigma_{\rm up}$, $\sigma_{\rm down}$ | an ancestral step's fresh noise, Euler target (chapter 4) | `ancestral` |
# | $\delta_i$ | the step size of Langevin dynamics (chapter 4) | `step_size` |
# | $c$, $\varnothing$ | a condition (class or radius), and the null token | `null` |
# | $w$ | CFG weight, $w = 0$ conditional; diffusers' guidance scale is $s = 1 + w$ (chapter 5) | `cfg` |
# | $\mu_k$, $s_k$, $\pi_k$ | mean, sd and weight of a mixture component | `target.means` |
# | $\eta$ | DDIM's noise: 0 deterministic, 1 DDPM (chapter 6) | `eta=` |
#
# A score always carries its arguments, $s_\theta(x, t)$ or $s(x)$; a bare $s$ is the cosine schedule's
# offset 0.008 (below) or, in chapter 5 only, diffusers' guidance scale.

# %% [markdown]
# ## The forward process
#
# Fix variances $\beta_1, \dots, \beta_T \in (0, 1)$ (the *schedule*) and add noise one step at a
# time (Ho et al. 2020, Eq. 2):
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big),
#   \qquad\text{i.e.}\qquad x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,z_t,\quad \alpha_t = 1-\beta_t .$$
#
# The factor $\sqrt{\alpha_t}$ shrinks the signal while the noise is added, so the total variance
# stays 1 for unit-variance data: this is the *variance-preserving* process.
#
# **Closed form.** Suppose $x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,x_0 + \sqrt{1-\bar\alpha_{t-1}}\,\epsilon'$
# with $\bar\alpha_t = \prod_{s \le t}\alpha_s$. Then
#
# $$x_t = \sqrt{\alpha_t\bar\alpha_{t-1}}\,x_0 + \underbrace{\sqrt{\alpha_t(1-\bar\alpha_{t-1})}\,\epsilon'
#   + \sqrt{1-\alpha_t}\,z_t}_{\text{sum of independent Gaussians}} .$$
#
# A sum of independent zero-mean Gaussians is Gaussian with the variances added:
# $\alpha_t(1-\bar\alpha_{t-1}) + 1 - \alpha_t = 1 - \bar\alpha_t$. (Equivalently, the marginal
# $\int q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0)\,dx_{t-1}$ of a product of Gaussians is Gaussian.) By
# induction, for every $t$ (Ho et al. 2020, Eq. 4):
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),
#   \qquad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad \epsilon\sim\mathcal N(0, I).$$
#
# Training never runs the chain: it jumps straight to a random $t$. In labkit the steps are indexed
# $t = 0, \dots, T-1$ with $t = 0$ the least noisy (as in diffusers): labkit's $t$ is the papers' step
# $t + 1$, and $\bar\alpha_{-1} = 1$. `Schedule.q_sample` is this formula:

# %%
print(inspect.getsource(schedules.Schedule.q_sample))

# %% [markdown]
# ### Exercise: the closed form
#
# Write `my_q_sample(x0, abar, eps)`: $x_t$ from data points `x0` (shape (n, 2)), one $\bar\alpha_t$ (a float)
# and the noise `eps`. `exercises.check` runs it against labkit on random and corner inputs and prints one line:
# *passed*, or *not yet* with what differs. Later cells use labkit's own function, so the chapter runs either
# way. (Here: at $\bar\alpha_t$ = 0.9999, 0.5 and $10^{-4}$.)

# %%
import math  # noqa: E402

from labkit import exercises  # noqa: E402


def my_q_sample(x0, abar, eps):
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, for one float abar_t."""
    ### BEGIN SOLUTION
    return math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
    ### END SOLUTION


exercises.check("q_sample", my_q_sample)

# %% [markdown]
# ### Check: the chain and the closed form agree
#
# Start 20 000 copies of one point $x_0 = (2, 0)$ (a mode of the ring), run the chain step by step
# with fresh noise at every step, and compare the empirical mean and variance of $x_t$ with
# $\sqrt{\bar\alpha_t}\,x_0$ and $1-\bar\alpha_t$ (cosine schedule). The standard error of the
# empirical mean is about $\sqrt{(1-\bar\alpha_t)/(2\cdot 10^4)} \le 0.007$.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
x0 = torch.tensor([2.0, 0.0], dtype=torch.float64)
x = x0.repeat(20_000, 1)
checkpoints = {0: None, 99: None, 299: None, 599: None, 999: None}
for t in range(cosine.T):  # one step of q(x_t | x_{t-1}) at a time
    x = cosine.alphas[t].sqrt() * x + cosine.betas[t].sqrt() * torch.randn(x.shape, generator=g, dtype=x.dtype)
    if t in checkpoints:
        checkpoints[t] = (x[:, 0].mean().item(), x.var(dim=0).mean().item())
print(f"{'t':>4} | {'sqrt(abar) x0':>13} {'chain mean':>10} | {'1 - abar':>8} {'chain var':>9}")
for t, (mean, var) in checkpoints.items():
    abar = cosine.alphas_cumprod[t].item()
    print(f"{t:>4} | {abar ** 0.5 * 2:>13.3f} {mean:>10.3f} | {1 - abar:>8.3f} {var:>9.3f}")

# %% [markdown]
# The two columns agree to the Monte Carlo error at every $t$: the chain is never needed.

# %% [markdown]
# ## Two schedules
#
# **Linear** (Ho et al. 2020, Sec. 4): $\beta_t$ linear from $10^{-4}$ to $0.02$ over $T = 1000$.
#
# **Cosine** (Nichol & Dhariwal 2021, Eq. 17): define $\bar\alpha$ directly. In the paper's indexing
# (steps $1, \dots, T$, with $\bar\alpha = 1$ at step 0), $\bar\alpha = f(\tau)/f(0)$ at step $\tau$, with
# $f(\tau) = \cos^2\!\big(\frac{\tau/T + s}{1+s}\cdot\frac{\pi}{2}\big)$, $s = 0.008$ (an offset, used
# only here), and $\beta = \min(1 - \bar\alpha_\tau/\bar\alpha_{\tau-1},\ 0.999)$. labkit counts from 0:
# **labkit's $t$ is the paper's step $\tau = t + 1$**, so $\bar\alpha_t = f(t+1)/f(0)$ and labkit's
# $t = 0$ already holds one step of noise ($\sigma_0 = 0.0064$, printed below); the code below computes
# $\beta_t$ from $f((t+1)/T)/f(t/T)$ for exactly that reason. The schedule was designed so that
# $\bar\alpha_t$ falls roughly linearly in the middle of the process instead of collapsing early, which
# wastes fewer steps on almost-pure noise.

# %%
print(inspect.getsource(schedules.cosine))

# %% [markdown]
# ### Exercise: from $\beta_t$ to $\bar\alpha_t$
#
# Write `my_abar_from_betas(betas)`: $\bar\alpha_t$ for every $t$ from a schedule's $\beta_t$ (a float64 tensor
# of length $T$, labkit's indexing: $\bar\alpha_0 = 1 - \beta_0$). Checked to $10^{-12}$ on the linear schedule
# with $T = 10$ and the cosine schedule with $T = 50$.

# %%
def my_abar_from_betas(betas):
    """abar_t = prod_{s <= t} (1 - beta_s), for every t (same length as betas)."""
    ### BEGIN SOLUTION
    return torch.cumprod(1 - betas, dim=0)
    ### END SOLUTION


exercises.check("abar_from_betas", my_abar_from_betas)

# %% [markdown]
# Three ways to read a schedule, all computed from labkit's `Schedule` objects:
# $\bar\alpha_t$ (the fraction of signal variance left), $\mathrm{SNR}_t$ on a log scale, and
# $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t} = \mathrm{SNR}_t^{-1/2}$, the noise level of the
# equivalent *variance-exploding* process $x_t/\sqrt{\bar\alpha_t} = x_0 + \sigma_t\,\epsilon$
# (Song et al. 2021; Karras et al. 2022), which chapters 2 and 6 use.

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3), layout="constrained")
steps = np.arange(linear.T)
for s, color in [(linear, "tab:blue"), (cosine, "tab:orange")]:
    axes[0].plot(steps, s.alphas_cumprod, color=color, label=s.name)
    axes[1].plot(steps, s.snr(), color=color, label=s.name)
    axes[2].plot(steps, s.sigmas, color=color, label=s.name)
axes[0].set_title(r"$\bar\alpha_t$")
axes[1].set_title(r"SNR$_t = \bar\alpha_t / (1 - \bar\alpha_t)$")
axes[2].set_title(r"$\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$")
axes[1].set_yscale("log")
axes[2].set_yscale("log")
for ax in axes:
    ax.set_xlabel("t")
    ax.grid(alpha=0.3)
axes[0].legend()

# %% [markdown]
# The linear schedule destroys the signal faster: its $\bar\alpha_t$ is already small in the
# middle of the process. Counting steps makes this concrete: where is half of the signal variance
# gone, and how many steps are spent at an SNR below $10^{-2}$, where the ring is invisible?

# %%
for s in (linear, cosine):
    half = int((s.alphas_cumprod > 0.5).sum())
    drowned = int((s.snr() < 1e-2).sum())
    print(f"{s.name:>6}: abar_t < 0.5 from t = {half};  {drowned} of {s.T} steps have SNR_t < 0.01")

# %% [markdown]
# At the other end, the cosine schedule goes much further. Its last $\bar\alpha$ is tiny, because
# $f(T) / f(0) = \cos^2(\frac{\pi}{2}) / \cos^2(\dots) = 0$ before the clip at $\beta = 0.999$, so
# $\sigma_{T-1}$ is about $2 \times 10^4$, against about 157 for the linear schedule. A sampler that
# starts at $t = T-1$ with a learned eps therefore starts far outside anything the network saw
# carefully; chapter 6 shows why samplers start at $\sigma_{\max} = 80$ instead (Karras et al. 2022).

# %%
# NBVAL_CHECK_OUTPUT
for s in (linear, cosine):
    print(f"{s.name:>6}: abar_(T-1) = {s.alphas_cumprod[-1].item():.2e}, sigma_max = {s.sigma_max:.3g}, "
          f"sigma_min = {s.sigma_min:.3g}, t with sigma_t <= 80: up to {s.last_t_below(80.0)}")

# %% [markdown]
# ## The ring dissolving
#
# The same 1000 points of the ring of eight Gaussians and the same noise $\epsilon$, pushed through
# $q(x_t\mid x_0)$ at a few $t$ under each schedule. At equal $t$ the linear schedule is noisier
# (it has the smaller $\bar\alpha_t$ for every $t < 995$, printed below); both end at (almost)
# $\mathcal N(0, I)$.

# %%
g = torch.Generator().manual_seed(0)
x0, c = ring8.sample(1000, g)
eps = torch.randn(x0.shape, generator=g)
ts = [0, 100, 250, 500, 750, 999]
fig, axes = plt.subplots(2, len(ts), figsize=(12, 4.3), layout="constrained")
for row, s in zip(axes, (linear, cosine), strict=True):
    for ax, t in zip(row, ts, strict=True):
        scatter(ax, s.q_sample(x0, t, eps), c, s=2, lim=3.5, title=f"{s.name}, t = {t}")
        ax.set_xticks([])
        ax.set_yticks([])
print("linear abar_t < cosine abar_t for t <", int((linear.alphas_cumprod < cosine.alphas_cumprod).long().argmin()))

# %% [markdown]
# ## Widget: move t yourself
#
# Drag $t$ to morph the cloud (the points $x_0$ and the noise $\epsilon$ are drawn once per target,
# so you follow the same points), switch schedule to compare them at the same $t$, and pick another
# target. The right panel shows where you are on the schedule's $\bar\alpha_t$ and SNR curves.
# Things to try: find the $t$ at which the eight modes stop being separable under each schedule;
# compare `checkerboard` and `text` at $t = 100$.

# %% [markdown]
# **Predict, then drag.** At $t = 500$, guess $\bar\alpha_t$ under each schedule and whether the ring is still
# there; then drag $t$ to 500 and switch schedules.
#
# <details><summary>Answer</summary>
#
# Cosine: $\bar\alpha_{500} = 0.49$ (SNR 0.97; it crosses 0.5 at $t = 496$, printed above): the ring, shrunk to
# radius $2\sqrt{0.49} = 1.4$, under noise of sd $\sqrt{1 - 0.49} = 0.71$, is still a blurred ring. Linear:
# $\bar\alpha_{500} = 0.078$ (SNR 0.084, below 0.5 since $t = 259$): radius 0.56 under noise of sd 0.96, one
# round cloud.
#
# </details>

# %%
app = NoisingApp(target="ring8", schedule="cosine", t=200, n=1000, seed=0)
app  # noqa: B018 (the widget is displayed as the cell's value)

# %% [markdown]
# The widget's update is a plain method, so it can also be driven from code (this is how the tests
# check it): after `set_t(t)` the plotted points are exactly `q_sample(x0, t, eps)`.

# %%
app.set_t(400)
offsets = torch.as_tensor(np.asarray(app.cloud.get_offsets()), dtype=torch.float32)
print("max |plotted - q_sample| =", float((offsets - cosine.q_sample(app.x0, 400, app.eps)).abs().max()))

# %% [markdown]
# ## Summary
#
# * One step adds a little noise and shrinks the signal; because Gaussians compose, any step can be
#   sampled directly: $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ (checked
#   against the step-by-step chain above).
# * A schedule is best read through $\bar\alpha_t$, the SNR, or $\sigma_t = \mathrm{SNR}_t^{-1/2}$.
# * The linear schedule spends many more steps at SNR $< 10^{-2}$ than the cosine schedule (counted
#   above); the cosine schedule ends at $\sigma_{T-1} \approx 2\times 10^4$, a fact samplers must
#   respect (chapter 6).
#
# ## References
#
# * J. Ho, A. Jain, P. Abbeel (2020). Denoising diffusion probabilistic models. arXiv:2006.11239.
# * J. Sohl-Dickstein, E. Weiss, N. Maheswaranathan, S. Ganguli (2015). Deep unsupervised learning
#   using nonequilibrium thermodynamics. arXiv:1503.03585.
# * A. Nichol, P. Dhariwal (2021). Improved denoising diffusion probabilistic models. arXiv:2102.09672.
# * Y. Song, J. Sohl-Dickstein, D. Kingma, A. Kumar, S. Ermon, B. Poole (2021). Score-based
#   generative modeling through stochastic differential equations. arXiv:2011.13456.
# * T. Karras, M. Aittala, T. Aila, S. Laine (2022). Elucidating the design space of diffusion-based
#   generative models. arXiv:2206.00364.
