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
# # Chapter 4 — Reverse sampling (DDPM)
#
# Chapters 1–3 built the forward process and a network that predicts its noise. This chapter runs
# the process backwards: from pure noise, about T = 1000 small denoising steps (991, from
# $\sigma_{\max} = 80$: see below) produce samples of the data distribution. We check the result with a
# number (MMD$^2$ against the noise floor), watch the samples form, and compare with the older route
# to sampling from scores: annealed Langevin dynamics.
#
# **Learning goals**
#
# 1. Derive the posterior $q(x_{t-1} \mid x_t, x_0)$ (its mean $\tilde\mu_t$ and variance
#    $\tilde\beta_t$) and turn it into the ancestral sampler of Ho et al. (2020, Algorithm 2).
# 2. Read `labkit.samplers.ddpm` line by line (in $\sigma$: an Euler step to $\sigma_{\rm down}$ plus fresh noise
#    $\sigma_{\rm up}$), see why it starts at $\sigma_{\max} = 80$, and run it with the exact eps and with a
#    trained model; judge the samples against the MMD$^2$ noise floor.
# 3. Scrub the reverse trajectory with a Play widget and see *when* the structure appears.
# 4. Write the reverse-time SDE (Anderson 1982) that DDPM discretises, and run annealed Langevin
#    dynamics (Song & Ermon 2019), an MCMC method rather than a discretisation of it, on the same eps
#    functions.

# %% [markdown]
# ## Setup
#
# The ring of eight Gaussians under the cosine schedule. Two eps functions: the exact one of the
# mixture (`labkit.oracle`, no model error) and labkit's eps-MLP trained here with the default recipe
# (the default recipe, 6000 Adam steps, about ten seconds on a laptop CPU; chapter 3 explains the training).

# %%
# %matplotlib widget
import inspect
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML

from labkit import cache, diagnostics, langevin, metrics, oracle, samplers, schedules, solvers, targets
from labkit.plotting import scatter
from labkit.widgets.trajectory import TrajectoryApp, ddpm_sigmas

target, schedule = targets.get("ring8"), schedules.cosine()
exact = oracle.eps_fn(target, schedule)

# Chapter 3's model (the default recipe): loaded from the model cache, or trained and saved there.
model, history = cache.trained_model(target, schedule, seed=0)
learned = model.eps_fn()
print(f"loss (mean of the last 200 steps) {np.mean(history[-200:]):.3f}")

# %% [markdown]
# ## The reverse step: the posterior $q(x_{t-1} \mid x_t, x_0)$
#
# The forward chain adds a little noise per step, $q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{\alpha_t}\,
# x_{t-1}, \beta_t I)$, and in closed form $q(x_t\mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,
# (1-\bar\alpha_t) I)$. Going back one step *given* $x_0$ is a product of two Gaussians in $x_{t-1}$
# (Bayes: $q(x_{t-1}\mid x_t, x_0) \propto q(x_t\mid x_{t-1})\, q(x_{t-1}\mid x_0)$), hence Gaussian.
# Collecting the quadratic and linear terms in $x_{t-1}$:
#
# $$\frac{1}{\tilde\beta_t} = \frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}}
#   \;\Rightarrow\; \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t, \qquad
#   \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0
#   + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t$$
#
# (using $\alpha_t + \beta_t = 1$ and $\bar\alpha_t = \alpha_t\bar\alpha_{t-1}$). We do not know $x_0$,
# but the network predicts it through the noise: $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/
# \sqrt{\bar\alpha_t}$. Substituting, the $x_t$ coefficients combine to
#
# $$\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
#   \epsilon\Big),$$
#
# and the DDPM step (Ho et al. 2020, Algorithm 2) replaces $\epsilon$ by $\hat\epsilon =
# \epsilon_\theta(x_t, t)$ and adds $\sqrt{\tilde\beta_t}\,z$ (Ho et al. found the variance $\beta_t$
# equally good; labkit uses $\tilde\beta_t$, the exact posterior variance). With labkit's indexing
# ($t = 0$ least noisy, $\bar\alpha_{-1} = 1$), $\tilde\beta_0 = 0$: no noise is added at the last step.
#
# A numeric check of both forms of $\tilde\mu_t$ at a few $t$, and of $\tilde\beta_t \le \beta_t$:

# %%
# NBVAL_CHECK_OUTPUT
betas, alphas, abar = schedule.betas, schedule.alphas, schedule.alphas_cumprod
g = torch.Generator().manual_seed(0)
x0 = torch.randn(5, 2, generator=g, dtype=torch.float64)
eps = torch.randn(5, 2, generator=g, dtype=torch.float64)
for t in (1, 10, 100, 500, 999):
    x_t = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps
    mu_x0 = (abar[t - 1].sqrt() * betas[t] * x0 + alphas[t].sqrt() * (1 - abar[t - 1]) * x_t) / (1 - abar[t])
    mu_eps = (x_t - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
    beta_tilde = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
    print(f"t = {t:3d}: beta = {betas[t]:.4e}, beta~ = {beta_tilde:.4e}, "
          f"max |mu(x0) - mu(eps)| = {float((mu_x0 - mu_eps).abs().max()):.0e}")

# %% [markdown]
# $\tilde\beta_t$ is much smaller than $\beta_t$ only near $t = 0$; elsewhere the two are almost
# equal, which is why Ho et al. saw little difference between them.
#
# ## The sampler
#
# `labkit.samplers.ddpm` is that step in a loop over $t = t_{\max}, \dots, 0$, one network call per step.
# labkit writes every sampler in the noise level $\sigma$ of chapter 1, on the point $x = x_t/\sqrt{\bar\alpha_t}
# = x_0 + \sigma_t\epsilon$, with the denoiser $D(x; \sigma) = \hat x_0 = x - \sigma\hat\epsilon$ (chapter 6 uses
# the same pieces). In these coordinates one DDPM step from $\sigma = \sigma_t$ to $\sigma' = \sigma_{t-1}$
# is an **Euler step** of $dx/d\sigma = (x - D)/\sigma$ down to $\sigma_{\rm down}$, then **fresh noise**
# of sd $\sigma_{\rm up}$:
#
# $$x \leftarrow x + (\sigma_{\rm down} - \sigma)\,\frac{x - D(x;\sigma)}{\sigma} + \sigma_{\rm up}\,z,\qquad
#   \sigma_{\rm up} = \sigma'\sqrt{1 - \sigma'^2/\sigma^2},\quad
#   \sigma_{\rm down} = \sqrt{\sigma'^2 - \sigma_{\rm up}^2} = \sigma'^2/\sigma .$$
#
# The Euler step lands on $\hat x_0 + (\sigma'^2/\sigma^2)(x - \hat x_0)$ and the noise has variance
# $\sigma'^2(\sigma^2 - \sigma'^2)/\sigma^2$: the mean and variance of the posterior $q(x_{t-1}\mid x_t, \hat x_0)$
# in these coordinates (Ho et al. 2020, Eq. 7, with $\eta = 1$; `solvers.ancestral` with $\eta < 1$ is
# DDIM's step, chapter 6). `ddpm` picks the grid $\sigma_{t_{\max}}, \dots, \sigma_0, 0$ of every timestep
# and runs `solvers.ancestral` on it; the last step goes to $\sigma = 0$, so $\sigma_{\rm up} = 0$: no noise.
# What it does *not* do: clip $\hat x_0$ to $[-1, 1]$ (a default of image libraries; our 2-D data
# lives in $[-2.5, 2.5]^2$).

# %%
print(inspect.getsource(samplers.ddpm))
print(inspect.getsource(solvers.ancestral))

# %% [markdown]
# A numeric check that the two forms are one step, on the points of the check above (with $\hat\epsilon
# = \epsilon$): $\sigma_{\rm down} = \sigma_{t-1}^2/\sigma_t$, the Euler point mapped back by
# $\sqrt{\bar\alpha_{t-1}}$ is $\tilde\mu_t$, and $\bar\alpha_{t-1}\sigma_{\rm up}^2 = \tilde\beta_t$:

# %%
for t in (1, 100, 500, 990):
    sigma, sigma_next = float(schedule.sigmas[t]), float(schedule.sigmas[t - 1])
    sigma_up = sigma_next * math.sqrt(1 - sigma_next**2 / sigma**2)
    sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
    x_t = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps
    x = x_t / abar[t].sqrt()                                    # the same point in sigma: x_0 + sigma_t eps
    x_down = x + (sigma_down - sigma) * (x - (x - sigma * eps)) / sigma   # Euler step, D = x - sigma eps_hat
    mu_eps = (x_t - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
    beta_tilde = float((1 - abar[t - 1]) / (1 - abar[t]) * betas[t])
    print(f"t = {t:3d}: |sigma_down sigma_t / sigma_(t-1)^2 - 1| = {abs(sigma_down * sigma / sigma_next**2 - 1):.0e}, "
          f"max |sqrt(abar_(t-1)) x_down - mu~| = {float((abar[t - 1].sqrt() * x_down - mu_eps).abs().max()):.0e}, "
          f"|abar_(t-1) sigma_up^2 / beta~ - 1| = {abs(float(abar[t - 1]) * sigma_up**2 / beta_tilde - 1):.0e}")

# %% [markdown]
# ### Exercises: the predicted $\hat x_0$ and one DDPM step
#
# `my_x0_hat(x_t, eps_hat, abar)`: the data point the noise prediction implies, $\hat x_0 = (x_t -
# \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$, for one float $\bar\alpha_t$. `my_ddpm_step(x_t,
# eps_hat, beta_t, abar_t, abar_prev, z)`: Ho et al.'s Algorithm 2, line 4, with the posterior variance
# $\tilde\beta_t$ (floats: $\beta_t$, $\bar\alpha_t$, $\bar\alpha_{t-1}$; `z` the fresh noise).
# `exercises.check` runs it against labkit on random and corner inputs and prints one line: *passed*, or *not
# yet* with what differs. Later cells use labkit's own function, so the chapter runs either way. (Here: with the
# exact eps of the ring at $t$ = 900, 500 and 1.)

# %%
from labkit import exercises  # noqa: E402


def my_x0_hat(x_t, eps_hat, abar):
    """x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)."""
    ### BEGIN SOLUTION
    return (x_t - math.sqrt(1 - abar) * eps_hat) / math.sqrt(abar)
    ### END SOLUTION


def my_ddpm_step(x_t, eps_hat, beta_t, abar_t, abar_prev, z):
    """x_(t-1) = (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t) + sqrt(beta~_t) z."""
    ### BEGIN SOLUTION
    mu = (x_t - beta_t / math.sqrt(1 - abar_t) * eps_hat) / math.sqrt(1 - beta_t)
    beta_tilde = (1 - abar_prev) / (1 - abar_t) * beta_t
    return mu + math.sqrt(beta_tilde) * z
    ### END SOLUTION


exercises.check("x0_hat", my_x0_hat)
exercises.check("ddpm_step", my_ddpm_step)

# %% [markdown]
# ### Where to start: $\sigma_{\max} = 80$
#
# Ho et al. start at the last timestep, $x_{T-1} = $ noise. Under the cosine schedule that is
# $\sigma_{T-1} \approx 2\times 10^4$, and the last betas reach the clip 0.999. In the update
# $x_{t-1} = (x_t - \beta_t\hat\epsilon/\sqrt{1-\bar\alpha_t})/\sqrt{\alpha_t} + \dots$ an error in $\hat\epsilon$ is
# multiplied by $\beta_t/(\sqrt{1-\bar\alpha_t}\sqrt{\alpha_t})$. labkit starts instead, as its other samplers do
# (Karras et al. 2022), at $t_{\max}$, the largest $t$ with $\sigma_t \le 80$, from noise
# $\times\sqrt{1-\bar\alpha_{t_{\max}}}$ (`sigma_max=None` gives Ho et al.'s start). The steps it skips:

# %%
t_max = schedule.last_t_below(80.0)
print(f"t_max = {t_max}, sigma = {float(schedule.sigmas[t_max]):.1f}: the signal sqrt(abar) |x_0| = 2 sqrt(abar) is "
      f"{2 * float(abar[t_max].sqrt()):.3f} there, against noise of sd {float((1 - abar[t_max]).sqrt()):.4f}")
print(f"{'t':>4} {'sigma_t':>8} {'beta_t':>7} {'1/sqrt(alpha_t)':>16} {'error gain':>11}")
for t in range(schedule.T - 1, t_max, -1):
    gain = float(betas[t] / ((1 - abar[t]).sqrt() * alphas[t].sqrt()))
    print(f"{t:>4} {float(schedule.sigmas[t]):8.1f} {float(betas[t]):7.4f} {float(1 / alphas[t].sqrt()):16.2f} "
          f"{gain:11.2f}")

# %% [markdown]
# One step, the first (t = 999, $\beta = 0.999$), multiplies an error in $\hat\epsilon$ by about 32; the
# next by 1.5, the rest by less than 1. The exact eps makes no error there, but a learned one does: the
# next section runs the trained model from both starts.
# ## Samples, and are they any good?
#
# 1000 points from the same starting noise with the exact eps and with the trained model. We judge
# them with the unbiased kernel MMD$^2$ against 1000 fresh target points (Gretton et al. 2012;
# chapter 7 explains it). Even two independent target batches have a nonzero MMD$^2$ estimate: its
# mean and spread over repeats is the **noise floor**, and a sampler "at the floor" (below mean + 2 sd)
# cannot be told apart from the target with this many points.

# %%
n = 1000
g = torch.Generator().manual_seed(1)
noise = torch.randn(n, 2, generator=g)
reference = target.sample(n, g)[0]
floor = metrics.noise_floor(target, n, repeats=10, generator=g)
print(f"noise floor at n = {n}: {floor.mean:.4f} +- {floor.sd:.4f} (threshold {floor.threshold:.4f})")

results, mmd = {}, {}
for name, eps_fn in [("exact", exact), ("learned", learned)]:
    start = time.perf_counter()
    results["DDPM", name] = samplers.ddpm(eps_fn, schedule, noise, generator=torch.Generator().manual_seed(2))
    mmd["DDPM", name] = metrics.mmd2(results["DDPM", name].x, reference)
    print(f"DDPM, {name:7s} eps: NFE = {results['DDPM', name].nfe}, MMD^2 = {mmd['DDPM', name]:.4f} "
          f"({'at' if mmd['DDPM', name] < floor.threshold else 'ABOVE'} the floor), "
          f"{time.perf_counter() - start:.1f} s")

# %% [markdown]
# Points are coloured by their nearest mode.

# %%
def nearest_mode(x):
    return torch.cdist(x.double(), target.means).argmin(1)


fig, axes = plt.subplots(1, 3, figsize=(10, 3.5), layout="constrained")
_ = scatter(axes[0], reference, nearest_mode(reference), title="target (fresh batch)")
for ax, name in zip(axes[1:], ["exact", "learned"], strict=True):
    x = results["DDPM", name].x
    _ = scatter(ax, x, nearest_mode(x), title=f"DDPM, {name} eps\nMMD$^2$ = {mmd['DDPM', name]:.4f}")

# %% [markdown]
# The same learned model, noise and seed from Ho et al.'s start $\sigma_{T-1}$ (all 1000 steps): the
# largest $|x|$ along the way (noised data and noise lie within $|x| \lesssim 5$ at every $t$, all the
# network was trained on), the share of points that ever pass $|x| = 5$, and the share of final points
# farther than 0.5 (5 sds) from every mode:

# %%
runs = {"sigma_(T-1) = 2e4": samplers.ddpm(learned, schedule, noise, sigma_max=None,
                                           generator=torch.Generator().manual_seed(2)),
        "sigma_max = 80": results["DDPM", "learned"]}
for start_label, run in runs.items():
    norms = torch.stack(run.trajectory).norm(dim=2)                  # (steps + 1, n)
    off_mode = torch.cdist(run.x.double(), target.means).min(dim=1).values > 0.5
    escaped = (norms > 5).any(dim=0).double().mean()
    print(f"from {start_label:17s} ({run.nfe} steps): largest |x| {float(norms.max()):5.1f} at step "
          f"{int(norms.max(dim=1).values.argmax()):3d}, ever beyond |x| = 5: {float(escaped):.1%}, "
          f"final points off every mode: {float(off_mode.double().mean()):.1%}")

# %% [markdown]
# From $\sigma_{T-1}$ the first step throws points out to $|x| = 19$ and 2% of them beyond $|x| = 5$,
# into a region the network never saw (stored run: 19.0 and 2.0%, against 5.0 and 0.1% from 80). This
# model happens to bring them back (1.2% of the final points off every mode, against 1.5% from 80: its
# own smearing between modes), but nothing guarantees it: a ring8 model trained 20 000 steps sent one
# point in 1000 to NaN from there (measured while building labkit; `tests/test_samplers.py` reproduces
# the effect with an eps wrong by 0.3 above $\sigma = 80$). Starting at 80 costs nothing, since there the
# data contribute 0.028 to points of size about 1.4 (printed above): labkit's default.

# %% [markdown]
# ## Watching the samples form
#
# Press **Play** (or drag the slider) to scrub the 992 entries of the learned model's trajectory,
# from the starting noise at $t = 990$ to the samples. Six points are followed with their paths. The
# title gives the step, $\sigma_t$ and $t$. Points are shown in the sampler's (variance-preserving)
# coordinates, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$, so the cloud stays of
# order 1 throughout.

# %% [markdown]
# **Predict, then drag.** Before pressing Play: at which of the 991 steps will half of the points have chosen
# the mode they end in: early, in the middle, or near the end?
#
# <details><summary>Answer</summary>
#
# In the middle: step 436 ($t = 554$, $\sigma_t = 1.2$, 555 steps left); nine in ten only at step 736 ($t =
# 254$, $\sigma_t = 0.43$), when the noise becomes smaller than the gaps between modes (measured below the
# player). The first few hundred steps mostly shrink the cloud from $\sigma = 80$.
#
# </details>

# %%
trajectory_app = TrajectoryApp(results["DDPM", "learned"], sigmas=ddpm_sigmas(schedule), schedule=schedule,
                               target=target, title="DDPM, learned eps")
trajectory_app  # noqa: B018 (the widget is displayed as the cell's value)

# %% [markdown]
# The Play button needs a running kernel. The same trajectory as a player that runs in any browser
# (a notebook viewer, the course website): 25 frames rendered once, side by side in one small PNG
# (`TrajectoryApp.to_html`); its paths join the 25 rendered steps.

# %%
HTML(trajectory_app.to_html(frames=25))

# %% [markdown]
# The same trajectory at fixed steps, and two numbers against the step $k$ ($t = 990 - k$): the mean
# distance of each point from its *final* position, and the share of points whose nearest mode (in
# direction, since the cloud is scaled by $\sqrt{\bar\alpha_t}$) is already the mode it ends on.

# %%
traj = torch.stack(results["DDPM", "learned"].trajectory)           # (992, n, 2): t = 990, ..., 0, then data
distance = (traj - traj[-1]).norm(dim=2).mean(dim=1)
final_mode = nearest_mode(traj[-1])
decided = torch.stack([(nearest_mode(x) == final_mode).double().mean() for x in traj])
steps_shown = [0, 500, 700, 800, 900, 950, t_max + 1]
fig = plt.figure(figsize=(12, 4.8), layout="constrained", dpi=72)
top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
axes = top.subplots(1, len(steps_shown))
for ax, k in zip(axes, steps_shown, strict=True):
    _ = scatter(ax, traj[k], final_mode, s=1.5,
                title=f"step {k}\nt = {t_max - k}" if k <= t_max else f"step {k}\nsamples")
    ax.set_xticks([])
    ax.set_yticks([])
ax = bottom.subplots()
ax.plot(np.arange(len(distance)), distance / distance[0], label="mean |x_k - x_final| (relative to step 0)")
ax.plot(np.arange(len(decided)), decided, label="share of points already nearest their final mode")
ax.set_xlabel(f"step k (t = {t_max} - k)")
ax.legend(fontsize=8)


def when(mask):
    k = int(mask.nonzero()[0])
    return f"step {k} (t = {t_max - k}, sigma_t = {float(schedule.sigmas[t_max - k]):.2f}, {t_max - k + 1} steps left)"


print(f"share with the final mode at step 0: {float(decided[0]):.2f} (chance: 1/8 = 0.125)")
print(f"points are halfway to their final position at {when(distance <= distance[0] / 2)}")
print(f"50% of the points have their final mode at {when(decided >= 0.5)}")
print(f"90% of the points have their final mode at {when(decided >= 0.9)}")

# %% [markdown]
# Both curves move steadily over the whole run (numbers from the stored run): there is no single
# moment when the samples "appear". The modes, though, are settled late in terms of noise: half of the
# points have their final mode at $\sigma_t \approx 1.2$ ($t = 554$), nine in ten only at $\sigma_t \approx
# 0.43$ ($t = 254$, with 255 of the 991 steps left), where the noise becomes smaller than the gaps
# between modes. The
# snapshots show the same order: first a disc, then a ring, then eight modes. Coarse structure first,
# detail last: this is why the cosine schedule (chapter 1) spends more steps at low noise than the
# linear one, and why the fast samplers of chapter 6 place their few steps densely at small $\sigma$.
#
# ## The reverse-time SDE, and annealed Langevin dynamics
#
# **What DDPM discretises.** With steps of size $\beta_t \to 0$, the forward chain $x_t = \sqrt{1-\beta_t}\,
# x_{t-1} + \sqrt{\beta_t}\,z$ becomes the variance-preserving SDE $dx = -\tfrac12\beta(t)\,x\,dt +
# \sqrt{\beta(t)}\,dW$ (Song et al. 2021). Anderson (1982) showed that a diffusion run backwards in time is
# again a diffusion, with the drift corrected by the score of the marginals $p_t$:
#
# $$dx = \big[-\tfrac12\beta(t)\,x - \beta(t)\,\nabla_x\log p_t(x)\big]\,dt + \sqrt{\beta(t)}\,d\bar W,$$
#
# with $dt < 0$ and $\bar W$ a Brownian motion in reverse time. One step of it from $t$ to $t - 1$, with
# $\nabla\log p_t = -\hat\epsilon/\sqrt{1-\bar\alpha_t}$, is $x_{t-1} \approx x_t + \beta_t\big(\tfrac12 x_t -
# \hat\epsilon/\sqrt{1-\bar\alpha_t}\big) + \sqrt{\beta_t}\,z$ (Euler-Maruyama), and DDPM's mean
# $(x_t - \beta_t\hat\epsilon/\sqrt{1-\bar\alpha_t})/\sqrt{\alpha_t}$ is the same to first order in $\beta_t$,
# since $1/\sqrt{\alpha_t} = 1 + \tfrac12\beta_t + O(\beta_t^2)$; its noise $\tilde\beta_t \approx \beta_t$ away from
# $t = 0$ (the table above). DDPM is thus a discretisation of the reverse-time SDE on the schedule's own
# grid, each step the exact posterior given $\hat x_0$: there is no step size to tune.
#
# **Langevin dynamics is something else.** Before DDPM, Song & Ermon (2019) sampled with a score
# network by Langevin dynamics, a Markov chain Monte Carlo method: with a score $s = \nabla \log p$ and
# step size $\delta$,
#
# $$x \leftarrow x + \tfrac{\delta}{2}\, s(x) + \sqrt{\delta}\, z,\qquad z\sim\mathcal N(0, I),$$
#
# has $p$ as its stationary distribution as $\delta \to 0$ and the number of steps grows. It samples one
# fixed distribution; it does not move through time. Run at a single small noise level it mixes badly
# between separated modes, and the score is poorly learned far from the data. **Annealing** fixes both:
# run a few steps at each of a geometric sequence of noise levels $\sigma_1 > \dots > \sigma_L$, starting
# where $p_{\sigma_1}$ is nearly Gaussian, with step $\delta_i = \delta\,\sigma_i^2/\sigma_L^2$ (their
# Algorithm 1; labkit uses the same ratio in its coordinates, $\delta\,(1-\bar\alpha_{t_i})/(1-\bar\alpha_{t_L})$,
# the code's `step_size` being $\delta$). labkit drives it with the same eps functions as DDPM, through
# $s(x, t) = -\epsilon(x, t)/\sqrt{1-\bar\alpha_t}$ at $t = t(\sigma_i)$. Each Langevin step targets the fixed
# distribution $p_{t_i}$; only the annealing schedule moves between levels. Song et al. (2021) combine
# the two in their predictor-corrector samplers: a discretisation of the reverse SDE (such as DDPM's
# step) as the *predictor*, a few Langevin steps at the new level as the *corrector* (MCMC that pulls
# the samples back toward $p_t$), not a second discretisation of the SDE.

# %%
print(inspect.getsource(langevin.annealed_langevin))

# %% [markdown]
# The same 1000 noise points, 10 levels from $\sigma = 10$ to $0.01$ with 100 steps each: the same
# NFE (1000) as DDPM's 991 steps, to within 1%.

# %%
levels, per_level = 10, 100
for name, eps_fn in [("exact", exact), ("learned", learned)]:
    start = time.perf_counter()
    results["Langevin", name] = langevin.annealed_langevin(eps_fn, schedule, noise, levels=levels,
                                                           steps_per_level=per_level,
                                                           generator=torch.Generator().manual_seed(3))
    mmd["Langevin", name] = metrics.mmd2(results["Langevin", name].x, reference)
    print(f"annealed Langevin, {name:7s} eps: NFE = {results['Langevin', name].nfe}, "
          f"MMD^2 = {mmd['Langevin', name]:.4f} "
          f"({'at' if mmd['Langevin', name] < floor.threshold else 'ABOVE'} the floor), "
          f"{time.perf_counter() - start:.1f} s")

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), layout="constrained")
for ax, key in zip(axes, [("DDPM", "exact"), ("Langevin", "exact"), ("DDPM", "learned"), ("Langevin", "learned")],
                   strict=True):
    x = results[key].x
    _ = scatter(ax, x, nearest_mode(x), title=f"{key[0]}, {key[1]} eps\nMMD$^2$ = {mmd[key]:.4f}")

# %% [markdown]
# MMD$^2$ with the median-heuristic bandwidth (about the ring's diameter) mostly sees the ring, not
# the width of each mode. `labkit.diagnostics.mode_stats` looks mode by mode: the share of points
# nearest each of the eight means (exact: 1/8 each) and the rms distance per coordinate to the nearest
# mean (exact: the component sd, 0.1).

# %%
print(f"noise floor of MMD^2: {floor.mean:.4f} +- {floor.sd:.4f} (threshold {floor.threshold:.4f})")
print(f"{'sampler':10s} {'eps':8s} {'NFE':>5s} {'MMD^2':>8s} {'at floor':>9s} {'mode width':>11s} "
      f"{'max |share - 1/8|':>18s}")
ref_stats = diagnostics.mode_stats(reference, target)
print(f"{'target':10s} {'':8s} {'':5s} {'':8s} {'':9s} {ref_stats.rms_distance:11.3f} "
      f"{float((ref_stats.shares - 1 / 8).abs().max()):18.3f}")
for (sampler, name), value in mmd.items():
    stats = diagnostics.mode_stats(results[sampler, name].x, target)
    print(f"{sampler:10s} {name:8s} {results[sampler, name].nfe:5d} {value:8.4f} {str(value < floor.threshold):>9s} "
          f"{stats.rms_distance:11.3f} {float((stats.shares - 1 / 8).abs().max()):18.3f}")

# %% [markdown]
# What the table shows (recomputed on every run; the values quoted are from the stored run):
#
# * **With the exact eps, both samplers are right** on all three counts: MMD$^2$ at the floor, mode
#   width about 0.10, shares within about 0.01 of 1/8. With (almost) the same NFE, the two algorithms are
#   equally good when the score is exact.
# * **DDPM with the learned eps is at the MMD floor and its modes are close to the right width**
#   (about 0.12 instead of 0.10: slightly blurred). The remaining excess fits the model error
#   measured in chapter 3, largest in eps space around $t \approx 100$–$200$, where the modes
#   separate: the network smooths the gaps between modes a little, and DDPM samples that smoothed
#   distribution. An MMD$^2$ with a bandwidth of the order of the ring's size barely sees mode width
#   (chapter 7 discusses the measure); with labkit's earlier recipe (lr 3e-3, 4000 steps) the modes
#   came out about twice too wide while the MMD$^2$ was still at the floor.
# * **Annealed Langevin with the learned eps passes the MMD test, but mode by mode it is off**: its
#   modes are too *narrow* (about 0.065) and their shares unequal (off by up to about 0.06).
#   A likely cause: Langevin spends 100 steps at
#   each of the smallest noise levels, where chapter 3 found the learned *score* error to be largest
#   (it is divided by $1 - \bar\alpha_t$), and its stationary distribution there is set by that score
#   alone, whereas each DDPM step only moves a point by about $\sigma_t$. So the sampler that equals
#   DDPM on the exact score reacts differently to the model's errors at low noise.
#
# The Langevin trajectory, scrubbed the same way. Its title shows the current level: within a
# level the cloud jitters around the same distribution, between levels it contracts.

# %%
sigmas = langevin.noise_levels(levels, 10.0, 0.01)
TrajectoryApp(results["Langevin", "learned"], sigmas=[sigmas[0]] + [s for s in sigmas for _ in range(per_level)],
              schedule=schedule, target=target, title="annealed Langevin, learned eps")

# %% [markdown]
# ## Summary
#
# * The reverse step of DDPM is the posterior $q(x_{t-1}\mid x_t, x_0)$ with $x_0$ predicted through
#   $\hat\epsilon$: mean $(x_t - \beta_t\hat\epsilon/\sqrt{1-\bar\alpha_t})/\sqrt{\alpha_t}$,
#   variance $\tilde\beta_t$, no noise at the last step.
# * In the noise level $\sigma$, a DDPM step is an Euler step to $\sigma_{\rm down} = \sigma_{t-1}^2/\sigma_t$ plus
#   fresh noise of sd $\sigma_{\rm up}$ (`solvers.ancestral`, $\eta = 1$), checked on $\tilde\mu_t$, $\tilde\beta_t$.
# * DDPM starts at $\sigma_{\max} = 80$ (991 steps): the skipped first step from $\sigma_{T-1}$ multiplies an eps
#   error by about 32 and threw 2% of the learned model's points beyond $|x| = 5$.
# * With 991 steps, DDPM from the exact eps and from a model trained for a few seconds both reach
#   the MMD$^2$ noise floor; a mode-by-mode look shows the learned model's modes slightly too wide.
# * Samples settle coarse-to-fine: the mode a point ends on is decided only in the last few hundred
#   steps, at $\sigma_t$ below about half.
# * DDPM discretises the reverse-time SDE (Anderson 1982); Langevin dynamics is MCMC at a fixed level,
#   the corrector of Song et al.'s predictor-corrector samplers.
# * Annealed Langevin dynamics (Song & Ermon 2019) matches DDPM on the exact score at the same NFE,
#   but with the learned score it inherits the model's low-noise errors (too narrow, unevenly
#   weighted modes), and it has a step size to tune, which DDPM's derivation fixes for us.
#
# ## References
#
# * J. Ho, A. Jain, P. Abbeel (2020). Denoising diffusion probabilistic models. arXiv:2006.11239.
# * Y. Song, S. Ermon (2019). Generative modeling by estimating gradients of the data distribution.
#   arXiv:1907.05600.
# * Y. Song, J. Sohl-Dickstein, D. Kingma, A. Kumar, S. Ermon, B. Poole (2021). Score-based
#   generative modeling through stochastic differential equations. arXiv:2011.13456.
# * B. D. O. Anderson (1982). Reverse-time diffusion equation models. Stochastic Processes and their
#   Applications 12(3), 313-326.
# * T. Karras, M. Aittala, T. Aila, S. Laine (2022). Elucidating the design space of diffusion-based
#   generative models. arXiv:2206.00364.
# * A. Nichol, P. Dhariwal (2021). Improved denoising diffusion probabilistic models. arXiv:2102.09672.
# * A. Gretton, K. Borgwardt, M. Rasch, B. Schölkopf, A. Smola (2012). A kernel two-sample test.
#   JMLR 13.
