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
# # Chapter 3 — Training the denoiser
#
# Chapter 2 trained one score network per noise level. A diffusion model trains a single network
# for *all* noise levels at once, told which level it is at through a time embedding, and (here)
# which class it should produce through a class embedding. This chapter builds that objective from
# denoising score matching, trains labkit's small eps-MLP live, and measures where it is still wrong.
#
# **Learning goals**
#
# 1. Derive the eps-prediction loss of Ho et al. (2020) from denoising score matching, and the link
#    $s_\theta(x, t) = -\epsilon_\theta(x, t) / \sqrt{1 - \bar\alpha_t}$ between eps and score.
# 2. See why the loss cannot reach zero: its minimum is $\mathbb E\,\mathrm{Var}[\epsilon \mid x_t]$,
#    which we compute exactly for the ring of Gaussians.
# 3. Read the sinusoidal time embedding and the class embedding with its null token, trained by
#    label dropout.
# 4. Train live (Train / Stop, progress bar, loss curve) and compare the learned field with the
#    exact one, noise level by noise level.

# %% [markdown]
# ## Setup
#
# The ring of eight Gaussians (radius 2, component sd 0.1, class = mode) under the cosine schedule
# (Nichol & Dhariwal 2021). Its exact eps is known in closed form (`labkit.oracle`, chapter 2), so
# every error of the learned model can be measured against the truth.

# %%
# %matplotlib widget
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from labkit import cache, diagnostics, model, oracle, samplers, schedules, targets, train
from labkit.plotting import scatter
from labkit.widgets.score_field import ScoreFieldApp
from labkit.widgets.training import TrainingApp

target, schedule = targets.get("ring8"), schedules.cosine()
exact = oracle.eps_fn(target, schedule)
print(target, schedule)

# %% [markdown]
# ## From denoising score matching to eps-prediction
#
# We want the score $\nabla_x \log p_t(x)$ of the noised data at every $t$. Denoising score
# matching (Vincent 2011) replaces this unknown target by the score of the noising kernel, which we
# know: with $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$,
#
# $$\nabla_{x_t} \log q(x_t \mid x_0) = -\frac{x_t - \sqrt{\bar\alpha_t}\,x_0}{1 - \bar\alpha_t}
#   = -\frac{\epsilon}{\sqrt{1-\bar\alpha_t}},$$
#
# and minimising $\mathbb E\,\| s_\theta(x_t, t) - \nabla_{x_t}\log q(x_t\mid x_0)\|^2$ over
# $x_0, \epsilon$ gives the same minimiser as matching the true score $\nabla\log p_t$ (the two
# losses differ by a constant independent of $\theta$). Now *parameterise* the score through a
# noise predictor, $s_\theta(x, t) = -\epsilon_\theta(x, t)/\sqrt{1-\bar\alpha_t}$. Then
#
# $$\Big\| s_\theta - \nabla\log q \Big\|^2 = \frac{1}{1-\bar\alpha_t}\,
#   \big\|\epsilon_\theta(x_t, t) - \epsilon\big\|^2 ,$$
#
# so DSM at level $t$ *is* noise regression, up to the weight $1/(1-\bar\alpha_t)$. Ho et al. (2020,
# Eq. 14) drop that weight (a weight $1 - \bar\alpha_t$ on the score loss) and draw $t$
# uniformly:
#
# $$L = \mathbb E_{t, x_0, \epsilon}\, \big\| \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 +
#   \sqrt{1-\bar\alpha_t}\,\epsilon,\ t) \big\|^2 .$$
#
# The minimiser is the conditional mean $\epsilon^*(x_t, t) = \mathbb E[\epsilon \mid x_t]
# = -\sqrt{1-\bar\alpha_t}\,\nabla\log p_t(x_t)$ (Tweedie's formula), so a perfect eps-network
# gives the exact score. This is labkit's `train`, line by line DDPM's Algorithm 1 (plus label
# dropout, below): each step draws $x_0, c$ from the data, $t$ uniformly, $\epsilon \sim \mathcal N(0, I)$,
# forms $x_t$ with `q_sample` (chapter 1) and returns $\|\epsilon_\theta(x_t, t, c) - \epsilon\|^2$. The loop
# around it, `train.fit` (Adam, learning-rate decay, progress, Ctrl-C), is the same for every model of
# the course: the radius model of chapter 5 uses this `train`, the single-sigma score nets of chapter 2
# give `fit` their own loss.

# %%
print(inspect.getsource(train.train))

# %% [markdown]
# ### Exercises: eps is a score, and the loss
#
# `my_eps_to_score(eps, abar)`: the score an eps prediction stands for, at one $\bar\alpha_t$ (a float).
# `my_eps_loss(eps_fn, x0, t, eps, abar)`: the loss of one batch as in `train` above (without label dropout):
# form $x_t$ from `x0` (shape (n, 2)), `eps` and `abar` (shape (n,), the $\bar\alpha_t$ of each row's `t`), call
# `eps_fn(x_t, t)` and return the mean squared error as a 0-d tensor. The check passes the exact eps of the
# ring, so what your function returns estimates the floor of the next section (at uniform $t$, at $t = 0$ and at
# $t = 999$).

# %%
import math  # noqa: E402

from labkit import exercises  # noqa: E402


def my_eps_to_score(eps, abar):
    """s = -eps / sqrt(1 - abar_t)."""
    ### BEGIN SOLUTION
    return -eps / math.sqrt(1 - abar)
    ### END SOLUTION


def my_eps_loss(eps_fn, x0, t, eps, abar):
    """|| eps - eps_fn(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2, averaged over rows and coordinates."""
    ### BEGIN SOLUTION
    a = abar[:, None]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    return (eps_fn(x_t, t) - eps).square().mean()
    ### END SOLUTION


exercises.check("eps_to_score", my_eps_to_score)
exercises.check("eps_loss", my_eps_loss)

# %% [markdown]
# ### The loss has a floor
#
# Since $\epsilon^*$ is a conditional mean, the loss of any network splits as
#
# $$\mathbb E\|\epsilon_\theta - \epsilon\|^2 = \underbrace{\mathbb E\|\epsilon_\theta -
#   \epsilon^*\|^2}_{\text{model error}} + \underbrace{\mathbb E\|\epsilon^* - \epsilon\|^2}_{\text{floor}
#   \,=\, \mathbb E\,\mathrm{Var}[\epsilon\mid x_t]} .$$
#
# The floor is zero only where $x_t$ determines $\epsilon$. For the ring we can compute it with the
# exact eps (`labkit.diagnostics.dsm_loss_by_t`, per coordinate). While the modes do not overlap,
# $p_t$ is locally one Gaussian of variance $v = \bar\alpha_t s^2 + 1 - \bar\alpha_t$ and the floor
# is $\bar\alpha_t s^2 / v$: nearly 1 at $t = 0$ (the noise is much smaller than the component's own
# spread, so it cannot be told apart from the data) and 0 at $t = T-1$ ($x_t$ *is* the noise).

# %%
ts_floor = torch.arange(0, 1000, 10)
floor_by_t = diagnostics.dsm_loss_by_t(exact, schedule, target, ts_floor, n=1000,
                                       generator=torch.Generator().manual_seed(0))
abar = schedule.alphas_cumprod[ts_floor]
one_gaussian = abar * 0.1**2 / (abar * 0.1**2 + 1 - abar)
fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
ax.plot(ts_floor, floor_by_t, label=r"exact $\epsilon^*$: $\mathbb{E}\|\epsilon^* - \epsilon\|^2$ (measured)")
ax.plot(ts_floor, one_gaussian, "--", label=r"one Gaussian per mode: $\bar\alpha_t s^2 / v$")
ax.set_xlabel("t")
ax.set_ylabel("least possible loss")
ax.legend(fontsize=8)
ax.set_title("the eps loss cannot go below this, even for the exact eps")
print(f"floor averaged over t (unconditional): {floor_by_t.mean():.3f}")

# %% [markdown]
# The two curves agree until about $t \approx 130$; beyond, the noised modes merge, $x_t$ no longer
# tells which mode it came from, and the floor rises above the one-Gaussian value before falling to
# zero. A training loss that settles around a few tenths is therefore *not* a sign of a bad model.

# %% [markdown]
# ## Telling the network the noise level: the time embedding
#
# One network serves all $t$, so $t$ is an input. labkit feeds it through sinusoidal features
# (Vaswani et al. 2017, as in DDPM) at geometric frequencies: slow features vary across the whole
# range of $t$, fast ones resolve neighbouring steps. The angle is computed from the real number $t$,
# so fractional timesteps (needed by the ODE samplers of chapter 6) are meaningful.

# %%
print(inspect.getsource(model.time_embedding))

# %%
t_all = torch.arange(1000, dtype=torch.float32)
features = model.time_embedding(t_all, 32, 1000)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
image = ax0.imshow(features.T, aspect="auto", cmap="RdBu", extent=(0, 999, 31.5, -0.5))
ax0.set_xlabel("t")
ax0.set_ylabel("feature (sin 0..15, cos 16..31)")
fig.colorbar(image, ax=ax0)
for k in (0, 4, 8, 15):
    ax1.plot(t_all, features[:, k], label=f"sin, frequency {k}")
ax1.set_xlim(0, 200)
ax1.set_xlabel("t (first 200 steps)")
ax1.legend(fontsize=7, loc="lower right")
fig.suptitle("time_embedding(t, dim=32, T=1000)")
similarity = features @ features.T / 16
print("cosine similarity of the embeddings of t = 500 and t = 500 + d:",
      {d: round(float(similarity[500, 500 + d]), 3) for d in (1, 10, 100, 400)})

# %% [markdown]
# The similarity falls in two stages (the numbers are exact, the embedding has no randomness): the
# fastest features already decorrelate within a few steps (0.957 at distance 1, only 0.629 at 10), then
# it stays almost flat (0.583 at 100) while the slow features turn (0.239 at 400). So the embedding
# does *not* make nearby timesteps look alike: its high frequencies tell even $t = 500$ and $510$
# apart, and its low frequencies place $t$ on the whole range. Because every feature is a smooth
# function of $t$, fractional $t$ in between is meaningful, which the fast samplers of chapter 6 use.
#
# ## Telling the network the class: a class embedding with a null token
#
# Each label $c \in \{0, \dots, K-1\}$ gets a learned vector; one extra row, index $K$, is the
# **null token** meaning "no label". During training each label is replaced by the null token with
# probability `p_uncond = 0.3` (label dropout, Ho & Salimans 2022; 0.3 is the default recipe's value,
# `train.recipe`), so the same weights learn both the conditional $\epsilon_\theta(x, t, c)$ and
# the unconditional $\epsilon_\theta(x, t, \varnothing)$.
# Chapter 5 combines the two into classifier-free guidance.

# %%
print(inspect.getsource(model.EpsMLP.forward))
net = train.new_model(target, schedule, seed=0)
print(net)
print(f"classes: {target.num_classes}, class embedding rows: {net.cond_embedding.num_embeddings} "
      f"(null token = {net.null}), parameters: {sum(p.numel() for p in net.parameters())}")

# %% [markdown]
# `x_features` is the identity here: the network sees the point $x$ itself. A target with finer detail
# can ask for $m$ random Fourier features instead, $[x, \sin(2\pi x B), \cos(2\pi x B)]$ with a fixed
# random $2 \times m$ matrix $B$ (Tancik et al. 2020): an MLP fed $x$ alone learns smooth functions of $x$
# first, and sines of $x$ let it bend sharply sooner. The spirals' recipe uses $m = 16$: without them,
# a model trained as long as the benchmarks allow (30 s) extends each arm a little past its inner end,
# and DDPM leaves a few points in 1000 there (`benchmarks/NOTES.md`).

# %% [markdown]
# ## Live training
#
# `TrainingApp` wraps `labkit.train.train`: **Train** runs it in a background thread (the kernel
# stays free to hear **Stop**), a progress bar counts steps, and the loss curve is redrawn every 100
# steps. Stop ends training after the current step, so the model always holds the weights of a
# completed step. Each click continues from the current weights.
#
# When this notebook is executed top to bottom (as it was to produce the stored outputs), the next
# cell calls `app.train()`, which trains synchronously for 2000 steps (a few seconds on a laptop
# CPU) and updates the same figure. Click **Train** afterwards to keep training.

# %% [markdown]
# **Predict, then drag.** The floor above, averaged over $t$, is 0.360 for the exact *unconditional* eps. Before
# pressing Train: will the training loss settle above or below 0.360?
#
# <details><summary>Answer</summary>
#
# Below (the number is printed under the next cell). The model is given the class in most steps (the label is
# dropped with probability `p_uncond` only), and knowing the mode removes the uncertainty that lifts the
# unconditional floor where the noised modes merge: given the class, $p_t(x\mid c)$ is one Gaussian and the
# floor is the dashed curve $\bar\alpha_t s^2/v$ at every $t$.
#
# </details>

# %%
app = TrainingApp(target, schedule, model=net, steps=train.recipe(target)["steps"], seed=0)
app  # noqa: B018 (the last expression displays the widget)

# %%
losses = app.train()
if app.calls == 1 and len(app.history) == train.recipe(target)["steps"]:  # one whole run of the recipe:
    print("saved to the model cache for chapters 4-7:", cache.store(net, app.history, target, schedule, seed=0))
print(f"{len(app.history)} steps, loss: first 50 steps {np.mean(losses[:50]):.3f}, "
      f"last 200 steps {np.mean(losses[-200:]):.3f}")

# %% [markdown]
# The loss falls from about 1 (a network predicting zero pays $\mathbb E\,\epsilon^2 = 1$ per
# coordinate) to about 0.1 (the mean of the last 200 steps, printed above). It ends *below* the
# unconditional floor printed above because 90% of the training examples carry their class, which
# tells the network the mode and removes much of the ambiguity at large $t$.
#
# ## Learned versus exact score field
#
# Left: the exact score $\nabla\log p_t$ of the ring; right: the learned one,
# $-\epsilon_\theta(x, t, \varnothing)/\sqrt{1-\bar\alpha_t}$ with the null token. Both panels use one
# arrow scale. Drag $t$: at large $t$ the two fields are indistinguishable (everything points to the
# centre); at small $t$ look at the regions between modes and far from the data, where training
# examples are rare. The field is refreshed after every Train click.

# %%
learned = net.eps_fn()
fields = ScoreFieldApp(schedule, {"exact": exact, "learned (null token)": learned}, target=target, t=100)
app.after_train.append(lambda: fields.set_t(fields.t))
fields  # noqa: B018 (the last expression displays the widget)

# %% [markdown]
# ## Where is the model wrong? Error as a function of t
#
# `labkit.diagnostics` draws fresh $x_t \sim q(x_t)$ at each $t$ and measures the model error
# $\mathbb E\|\epsilon_\theta - \epsilon^*\|^2$ (per coordinate) against the exact eps, and the same
# error in score space, $\mathbb E\|s_\theta - s^*\|^2 = \mathbb E\|\epsilon_\theta -
# \epsilon^*\|^2 / (1-\bar\alpha_t)$. With the same draws we also measure the training loss of both
# networks: the split "loss = floor + model error" above should hold.

# %%
print(inspect.getsource(diagnostics.eps_error_by_t))

# %%
ts = torch.tensor([0, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 700, 800, 900, 999])
err = diagnostics.eps_error_by_t(learned, exact, schedule, target, ts, n=2000,
                                 generator=torch.Generator().manual_seed(1))
loss_learned = diagnostics.dsm_loss_by_t(learned, schedule, target, ts, n=2000,
                                         generator=torch.Generator().manual_seed(1))
loss_exact = diagnostics.dsm_loss_by_t(exact, schedule, target, ts, n=2000,
                                       generator=torch.Generator().manual_seed(1))

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
ax0.plot(ts, loss_learned, "o-", ms=3, label=r"loss of $\epsilon_\theta$ (null token)")
ax0.plot(ts, loss_exact, "s-", ms=3, label=r"loss of exact $\epsilon^*$ (floor)")
ax0.plot(ts, loss_exact + err.eps_mse, "k:", label="floor + model error")
ax0.plot(ts, err.eps_mse, "^-", ms=3, color="tab:red", label=r"model error $\|\epsilon_\theta - \epsilon^*\|^2$")
ax0.set_xlabel("t")
ax0.set_title("eps space (what the loss sees)")
ax0.legend(fontsize=7)
ax1.semilogy(ts, err.score_mse, "^-", ms=3, color="tab:red")
ax1.set_xlabel("t")
ax1.set_title(r"score space: $\|s_\theta - s^*\|^2 = \|\epsilon_\theta - \epsilon^*\|^2 / (1 - \bar\alpha_t)$")
k_eps, k_score = int(err.eps_mse.argmax()), int(err.score_mse.argmax())
print(f"largest eps-space error  {err.eps_mse[k_eps]:.3f} at t = {int(ts[k_eps])} "
      f"(sigma_t = {float(schedule.sigmas[ts[k_eps]]):.2f})")
print(f"largest score-space error {err.score_mse[k_score]:.3g} at t = {int(ts[k_score])}")
print(f"eps error for t >= 600: at most {err.eps_mse[ts >= 600].max():.4f}")
print(f"max |loss - (floor + error)| over t: {(loss_learned - loss_exact - err.eps_mse).abs().max():.3f}")

# %% [markdown]
# What the numbers say (they are recomputed on every run):
#
# * **At large $t$ the model is almost exact.** There $p_t$ is close to a Gaussian and
#   $\epsilon^* \approx x_t$ is nearly linear: easy to learn.
# * **The eps-space error peaks at intermediate-to-small $t$** (around $t \approx 50$–$200$ here, where
#   $\sigma_t$ is a few tenths). That is where the ring's eight modes separate: $\epsilon^*$ changes
#   quickly across the gaps between modes, whose width is comparable to the noise, and a small MLP
#   smooths these sharp transitions.
# * **In score space the error is largest at the smallest $t$**, because the same eps error is
#   divided by $1 - \bar\alpha_t$, tiny near $t = 0$. A sampler that leans on the score itself at
#   low noise (annealed Langevin) feels this most; DDPM's last steps move points only by about
#   $\sigma_t$. Chapter 4 measures what both errors do to the samples.
# * The measured loss matches floor + model error, as the decomposition says, up to sampling noise.

# %% [markdown]
# ## One network, conditional and unconditional
#
# Label dropout trained the null token and the class tokens together. Sampling with each (Heun, 16
# steps, chapter 6) shows both work: with the null token the samples cover all eight modes; with
# class $c$ they land on mode $c$. We count how many samples end nearest to the requested mode.

# %%
g = torch.Generator().manual_seed(2)
noise = torch.randn(600, 2, generator=g)
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), layout="constrained")
for ax, classes in zip(axes, [None, 0, 3], strict=True):
    x = samplers.heun(net.eps_fn(classes), schedule, noise, 16).x
    nearest = torch.cdist(x.double(), target.means).argmin(1)
    scatter(ax, x, nearest, title="null token" if classes is None else f"class c = {classes}")
    if classes is None:
        share = torch.bincount(nearest, minlength=8) / len(x)
        print("null token: share of samples per mode", [round(float(s), 3) for s in share])
    else:
        print(f"class {classes}: {float((nearest == classes).double().mean()):.1%} of samples nearest mode {classes}")

# %% [markdown]
# ## Summary
#
# * Denoising score matching with the score written as $s = -\epsilon/\sqrt{1-\bar\alpha_t}$ becomes
#   noise regression; dropping the $1/(1-\bar\alpha_t)$ weight gives the DDPM loss.
# * The optimum is $\epsilon^* = \mathbb E[\epsilon\mid x_t]$; the loss never goes below
#   $\mathbb E\,\mathrm{Var}[\epsilon\mid x_t]$, which we computed exactly for the ring.
# * Time enters through continuous sinusoidal features; classes through an embedding with a null
#   token trained by label dropout, so one network is both conditional and unconditional.
# * After 2000 steps the learned eps is nearly exact at large $t$; its error is largest in eps space
#   where the modes separate, and in score space near $t = 0$.
#
# ## References
#
# * P. Vincent (2011). A connection between score matching and denoising autoencoders. Neural
#   Computation 23(7).
# * J. Ho, A. Jain, P. Abbeel (2020). Denoising diffusion probabilistic models. arXiv:2006.11239.
# * Y. Song, J. Sohl-Dickstein, D. Kingma, A. Kumar, S. Ermon, B. Poole (2021). Score-based
#   generative modeling through stochastic differential equations. arXiv:2011.13456.
# * A. Nichol, P. Dhariwal (2021). Improved denoising diffusion probabilistic models. arXiv:2102.09672.
# * A. Vaswani et al. (2017). Attention is all you need. arXiv:1706.03762.
# * J. Ho, T. Salimans (2022). Classifier-free diffusion guidance. arXiv:2207.12598.
# * B. Efron (2011). Tweedie's formula and selection bias. JASA 106(496).
# * M. Tancik et al. (2020). Fourier features let networks learn high frequency functions in low
#   dimensional domains. arXiv:2006.10739.
