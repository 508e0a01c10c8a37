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
# # Chapter 8 — The Diffusion Lab
#
# Everything from chapters 1 to 7 on one dashboard: pick a 2-D target, train an eps-prediction
# network on it while you watch, sample it with any sampler of `labkit.samplers.SAMPLERS` (DDPM,
# DDIM, Heun, DPM-Solver++(2M)) on either sigma grid, steer it with classifier-free guidance, look
# at its score field at any noise level, and measure how many network evaluations a sampler needs
# to reach the target.
#
# **Learning goals**
#
# 1. Watch the score field $s_\theta(x, t) = -\hat\epsilon_\theta(x, t, c)/\sqrt{1-\bar\alpha_t}$ form
#    during training: first at large $t$ (a pull toward the origin), then at small $t$ (the target's
#    shape).
# 2. Compare samplers at equal cost: DDPM with every timestep below $\sigma_{max}$, DDIM with $N$
#    steps (Song, Meng & Ermon 2021), Heun with $N$ steps and $2N-1$ evaluations (Karras et al. 2022),
#    each on DDIM's trailing grid or the Karras grid.
# 3. See guidance at work: $\hat\epsilon = (1+w)\,\epsilon(x,t,c) - w\,\epsilon(x,t,\varnothing)$
#    (Ho & Salimans 2022) sharpens one class as $w$ grows.
# 4. Read a quality-vs-NFE chart against its noise floor (kernel MMD$^2$, Gretton et al. 2012).
# 5. Write the lab's two readings yourself: what a sampler call costs in network evaluations, and
#    from which $N$ a sampler stays at the floor.
#
# The same notebook runs as a standalone app: `voila notebooks/08_diffusion_lab.ipynb`.

# %% [markdown]
# ## The lab
#
# `LabApp` (in `labkit.widgets.lab`) builds one figure with five panels and updates its artists in
# place. Training runs in a background thread, so every slider stays live while the model learns;
# the score field and the loss curve refresh a few times a second. The samples re-render by
# themselves when you change the sampler, the grid, the steps $N$, the class or $w$ (a moment after
# the controls settle, so dragging $w$ costs one render, not one per position); **Sample** draws
# them again with the latest weights. Press **Train** (and **Stop** whenever you like: the weights
# are those of the last finished step) or **Quality vs steps** (in the background too, with a
# progress bar and **Cancel**). Each target keeps its own model for the session: switch to `moons`
# and back and the ring8 model is still there; the samples' title names the model and its training
# steps. The quality run here uses n = 500 points and 2 seeds so it takes seconds; chapter 7 does
# the careful version.

# %%
# %matplotlib widget
import inspect
import resource

import numpy as np

from labkit.quality import at_floor, first_at_floor, format_table
from labkit.widgets.background import Background, frozen
from labkit.widgets.lab import LabApp

app = LabApp("ring8", sampler="heun", steps=16, t=100, train_steps=1500, quality_n=500, quality_seeds=2, seed=0)
app  # noqa: B018 (the app is this cell's displayed value)

# %% [markdown]
# ## How to read it
#
# - **Target** — 300 fresh samples of $p(x, c)$, coloured by class $c$. The samples and the score field
#   to its right share its axes.
# - **Samples** — the model's samples from the same fixed noise each time, so a change you see is
#   the sampler's, the class's or $w$'s, not the noise's. The title gives the model (target and
#   training steps), the sampler, the steps $N$, the grid and the network evaluations (NFE).
# - **Score field** — arrows of $s_\theta(x, t)$ on a 16 × 16 grid at the noise level $t$ of the
#   slider, all scaled so the longest spans one grid cell (its true length is in the title). With
#   "all classes" the unconditional model is used ($w$ is then disabled: guidance needs a class).
# - **Training loss** — $\lVert \epsilon - \hat\epsilon_\theta \rVert^2$ per step and its running
#   mean, averaged over $t$. It levels off above 0, and chapter 3 measured where that floor comes
#   from: near $t = 0$ the tiny noise in $x_t$ is hidden in the data's own spread, so $\epsilon$ cannot
#   be predicted (an irreducible loss of about 1), while at $t = T-1$, $x_t$ is almost $\epsilon$
#   itself (about 0).
# - **Quality vs steps** — MMD$^2$ between samples of the unconditional model (frozen when you
#   press the button; the chart's title says which model and grid) and fresh target points against
#   NFE, for DDIM and Heun at $N \in \{4, 8, \dots, 128\}$, mean ± sd over seeds. The green band is the noise floor:
#   the MMD$^2$ of two fresh target batches. A point inside the band is as close to the target as
#   the target is to itself at this sample size.
#
# Things to try: drag $t$ from 999 down to 0 before and during training; pick a class and raise $w$;
# compare Heun and DDIM at $N = 4$ and $N = 16$; switch the target to `spirals` or `text` and train
# again.

# %% [markdown]
# ## How the training thread and the sliders share the model
#
# The training thread changes the weights in place at every Adam step. The sliders must never
# evaluate a half-updated network, so between two steps the thread publishes a frozen copy, and
# every panel evaluates the latest copy. The thread never touches the figure or a widget: it asks
# the kernel's event loop to refresh the panels, and it runs torch on one core so the two threads do
# not fight over the two cores of a laptop or a Binder machine. The same worker
# (`labkit.widgets.background.Background`) runs chapter 3's Train button and the lab's quality run.

# %%
print(inspect.getsource(Background.train))
print(inspect.getsource(Background._run))
print(inspect.getsource(frozen))

# %% [markdown]
# ## A session in code
#
# The buttons call plain methods, so a whole session can be scripted (and tested). Here: train
# 1500 steps (the dashboard above follows along), sample with Heun at 16 steps, and measure quality.

# %%
app.train(1500, blocking=True)
print(app.status.value)
print(f"loss: first 50 steps {np.mean(app.history[:50]):.3f}, last 50 steps {np.mean(app.history[-50:]):.3f}")

# %%
result = app.sample()
radius = result.x.norm(dim=1)
print(f"{app.sampler_picker.value}, N = {app.steps_slider.value}: {result.nfe} network evaluations")
print(f"sample radius: median {radius.median():.2f}, 90% within [{radius.quantile(0.05):.2f}, "
      f"{radius.quantile(0.95):.2f}] (the ring has radius 2)")

# %% [markdown]
# ### Exercise: what a sampler call costs
#
# The lab compares samplers by their cost in network evaluations (NFE), the number in the samples'
# title. Write `my_nfe(sampler, N, w, t_max)`: the forwards of one call of `sampler` (a key of
# `labkit.samplers.SAMPLERS`) with $N$ steps and guidance $w$. DDPM takes no $N$: it steps through
# every timestep from $t_{max}$, the largest $t$ with $\sigma_t \le \sigma_{max} = 80$, down to 0
# (chapter 4). DDIM, DPM-Solver++(2M) and Euler ancestral evaluate the network once per step. Heun
# corrects each step with a second evaluation at the landing point, except the last step, to
# $\sigma = 0$ (chapter 6). A guided call with $w > 0$ needs $\epsilon(x, t, c)$ and
# $\epsilon(x, t, \varnothing)$ (chapter 5). `exercises.check` compares your count with the `.nfe` that
# labkit's samplers report, for every sampler of the registry, at $N = 1, 7, 16$ and $w = 0, 0.5, 3$,
# on the lab's schedule ($t_{max} = 990$) and a short one.

# %%
from labkit import exercises  # noqa: E402


def my_nfe(sampler, N, w, t_max):
    """Network forwards of one call of `sampler` with N steps and guidance w (DDPM starts at t_max)."""
    ### BEGIN SOLUTION
    per_call = 2 if w > 0 else 1  # eps(x, t, c) and eps(x, t, null)
    if sampler == "ddpm":
        return per_call * (t_max + 1)
    if sampler == "heun":
        return per_call * (2 * N - 1)
    return per_call * N
    ### END SOLUTION


exercises.check("nfe", my_nfe)

# %%
app.quality(blocking=True)  # the button runs the same without waiting
quality = app.quality_result
print(format_table(quality))
print("Heun reaches the floor at N = 16:", at_floor(quality, "heun", 16))

# %% [markdown]
# ### Exercise: from which $N$ a sampler stays at the floor
#
# The table gives one verdict per step count, and the number to read off it is the smallest $N$ from
# which the sampler is at the floor at *every* larger $N$ tried: a step count at the floor followed by
# one that is not is luck, not convergence. Write `my_first_at_floor(result, sampler)`: that $N$ for
# `sampler` in a result of `run_quality` (here `app.quality_result`, a dict whose `"records"` hold one
# dict per sampler and step count, with the keys `"sampler"`, `"steps"`, `"nfe"` and `"at_floor"`), or
# None when the sampler is not at the floor at the largest $N$. `exercises.check` compares it with
# `labkit.quality.first_at_floor` (chapter 7 uses it) on results with a lucky step count, a late one
# and a sampler that drops off the floor at the largest $N$.

# %%
def my_first_at_floor(result, sampler):
    """The smallest N from which `sampler` is at the floor at every larger N of `result`; None if none."""
    ### BEGIN SOLUTION
    records = sorted((r for r in result["records"] if r["sampler"] == sampler), key=lambda r: r["steps"])
    first = None
    for r in reversed(records):  # down from the largest N, while at the floor
        if not r["at_floor"]:
            break
        first = r["steps"]
    return first
    ### END SOLUTION


exercises.check("first_at_floor", my_first_at_floor)

# %% [markdown]
# The lab's run, read with labkit's `first_at_floor`:

# %%
mmd_max, detail_max = quality["floor"]["threshold"], quality["detail_floor"]["threshold"]
for name in app.quality_samplers:
    rec = first_at_floor(quality, name)
    runs = sorted((r for r in quality["records"] if r["sampler"] == name), key=lambda r: r["steps"])
    mmd_ok = next((r for r in runs if r["mmd2_mean"] <= mmd_max), runs[-1])
    print(f"{name}: " + (f"at the floor from N = {rec['steps']} ({rec['nfe']} NFE)" if rec else
                         f"not at the floor at N = {runs[-1]['steps']}") +
          f"; MMD^2 first under {mmd_max:.4f} at N = {mmd_ok['steps']}; detail statistic "
          f"{mmd_ok['detail_miss_mean']:.3f} there and {runs[-1]['detail_miss_mean']:.3f} at N = {runs[-1]['steps']} "
          f"({runs[-1]['detail_miss_mean'] / detail_max:.1f} x its threshold {detail_max:.4f})")

# %% [markdown]
# Where a sampler's MMD$^2$ is under its threshold and its detail statistic no longer falls as $N$
# grows, more sampler steps do not help: what is left is the error of the model after 1500 training
# steps, not of the sampler. (Chapter 7 makes the same measurement with a model trained for 6000
# steps, 3 seeds and every solver.)

# %% [markdown]
# **Predict, then drag.** Pick class 2 (the mode at $(0, 2)$) in the lab and drag $w$ from 0 to 8, the
# slider's end. Do the samples keep tightening on their mode as $w$ grows?
#
# <details><summary>Answer</summary>
#
# No. The cell below prints it for this session's model: at $w = 1$ the class is tighter than without
# guidance (spread 0.074 against 0.106) and a little further out (mean radius 2.05); at $w = 3$ it
# spreads again (0.141); at $w = 8$ the whole cloud has left the mode, at a mean radius of 3.94, almost
# twice the ring's. $\hat\epsilon = (1+w)\,\epsilon(x,t,c) - w\,\epsilon(x,t,\varnothing)$ extrapolates
# away from the unconditional prediction, and the network's errors with it.
#
# </details>

# %% [markdown]
# The same in code: the samples of class 2 for four values of $w$. We print the mean radius (the
# ring's is 2) and the spread (the mode's own sd is 0.1).

# %%
app.set_class(2)
for w in (0.0, 1.0, 3.0, 8.0):
    app.set_w(w)
    x = app.sample().x
    print(f"class 2, w = {w:g}: mean radius {x.norm(dim=1).mean():.2f}, spread (sd) {x.std(0).mean():.3f}")

# %% [markdown]
# A moderate $w$ tightens the class and pushes it a little away from the other classes (larger
# radius). A large $w$ multiplies the network's errors by $1 + w$ far from the data, where it was
# hardly trained: the cloud breaks away from the mode. (Chapter 5 measures this trade-off.) The
# dashboard above now shows the last setting; drag $w$ back to watch the field relax.

# %% [markdown]
# The kernel's peak memory after this session (train, sample, quality) — Binder gives 2 GB:

# %%
print(f"peak RSS of this kernel: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

# %% [markdown]
# ## Summary
#
# - One dashboard holds the whole pipeline: data $\to$ eps-network $\to$ score field $\to$ sampler
#   $\to$ quality. Every control calls a plain `LabApp` method, so what you click is also scriptable.
# - Training in a background thread keeps the interface live; the threads share the model through
#   frozen copies of the weights, published between optimiser steps, and only the kernel's own loop
#   redraws.
# - The quality chart places both samplers against the noise floor at a glance; with n = 500 the
#   floor band is wide, which is why chapter 7 uses more points and seeds for its conclusions.
# - Guidance with a moderate $w$ tightens a class; a large $w$ amplifies the model's errors.
# - You wrote the lab's two readings: the cost of a call (DDPM every timestep from $t_{max}$, Heun
#   $2N - 1$, the others $N$; twice that with guidance) and the $N$ from which a sampler stays at the
#   floor, which one lucky step count cannot fake.
#
# ## References
#
# - J. Ho, A. Jain, P. Abbeel (2020). Denoising diffusion probabilistic models. arXiv:2006.11239.
# - J. Song, C. Meng, S. Ermon (2021). Denoising diffusion implicit models. arXiv:2010.02502.
# - A. Nichol, P. Dhariwal (2021). Improved denoising diffusion probabilistic models. arXiv:2102.09672.
# - J. Ho, T. Salimans (2022). Classifier-free diffusion guidance. arXiv:2207.12598.
# - T. Karras, M. Aittala, T. Aila, S. Laine (2022). Elucidating the design space of diffusion-based
#   generative models. arXiv:2206.00364.
# - A. Gretton, K. Borgwardt, M. Rasch, B. Schölkopf, A. Smola (2012). A kernel two-sample test. JMLR 13.
