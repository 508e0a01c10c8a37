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
# # Chapter 7 — Quality vs steps: measuring samplers with kernel MMD
#
# Chapter 6 measured solver error point by point against a reference solution. What we care about
# in the end is the *distribution* of the samples. This chapter builds a measure of that, learns
# how noisy it is, and uses it to compare DDIM and Heun at every budget of network evaluations,
# once with the exact score and once with a learned model.
#
# **Learning goals**
#
# 1. The unbiased kernel MMD$^2$ estimator (Gretton et al. 2012) with RBF kernels at the median
#    pairwise distance, and why it can be negative.
# 2. The noise floor: the MMD$^2$ between two fresh batches of the target, and how wide it is at
#    n = 200 and n = 1000.
# 3. Read a quality-vs-steps chart: curves against steps and against NFE, error bars over seeds,
#    the floor band, and which sampler wins at which budget, stated from the computed numbers.
# 4. Separate sampler error (exact score) from model error (learned model).

# %%
# %matplotlib widget
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from labkit import cache, metrics, oracle, quality, schedules, targets
from labkit.plotting import plot_quality
from labkit.widgets.samplers import SamplerApp

target, schedule = targets.get("ring8"), schedules.cosine()
exact = oracle.eps_fn(target, schedule)

# %% [markdown]
# ## 1. Kernel MMD
#
# For a kernel $k$ the maximum mean discrepancy between distributions $P$ and $Q$ is the distance
# between their mean embeddings; its square is
#
# $$\mathrm{MMD}^2(P, Q) = \mathbb E\,k(x, x') + \mathbb E\,k(y, y') - 2\,\mathbb E\,k(x, y),
# \qquad x, x' \sim P,\ y, y' \sim Q,$$
#
# zero exactly when $P = Q$ for a characteristic kernel such as the Gaussian RBF. From samples
# $x_1..x_m$ and $y_1..y_n$ the *unbiased* estimator (Gretton et al. 2012, Lemma 6) leaves out the
# diagonal terms $k(x_i, x_i) = 1$, which would otherwise add a positive bias of order $1/m$:
#
# $$\widehat{\mathrm{MMD}}{}^2_u = \frac{1}{m(m-1)}\sum_{i\ne j}k(x_i,x_j) + \frac{1}{n(n-1)}\sum_{i\ne j}k(y_i,y_j)
#   - \frac{2}{mn}\sum_{i,j}k(x_i,y_j).$$
#
# Its mean is the true MMD$^2$, so for two samples of the same distribution it is zero on average
# and **negative about half the time**. labkit sums three RBF kernels
# $k(x, y) = \exp(-|x-y|^2 / 2h^2)$ with $h = \{0.5, 1, 2\}\times$ the median pairwise distance of the
# pooled sample (the median heuristic: no bandwidth to tune, and the same code works for every
# target). Section 2 measures what these bandwidths can and cannot see.

# %%
print(inspect.getsource(metrics.mmd2))

# %% [markdown]
# ## 2. The noise floor, its spread, and what the measure can see
#
# Even a perfect sampler does not score 0: two finite batches of the target differ. The floor is
# the distribution of $\widehat{\mathrm{MMD}}{}^2_u$ between two fresh target batches of size n.
# Its spread, not its mean (about 0, the estimator is unbiased), decides what difference we can
# see. Here it is at n = 200 and n = 1000:

# %%
g = torch.Generator().manual_seed(1)
floors = {size: metrics.noise_floor(target, size, repeats=reps, generator=g) for size, reps in ((200, 60), (1000, 20))}
fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
bins = np.linspace(min(min(f.values) for f in floors.values()), max(max(f.values) for f in floors.values()), 40)
for size, f in floors.items():
    ax.hist(f.values, bins=bins, alpha=0.6, label=f"n = {size}: mean {f.mean:.4f}, sd {f.sd:.4f} "
                                                  f"({len(f.values)} pairs)")
ax.axvline(0, color="k", lw=0.8)
ax.set_xlabel(r"$\widehat{MMD}^2_u$ between two fresh ring8 batches")
ax.set_ylabel("count")
ax.legend(fontsize=8)
plt.show()
f200, f1000 = floors[200], floors[1000]
print(f"n = 200:  sd of one estimate {f200.sd:.4f}; n = 1000: floor mean {f1000.mean:.4f}, sd {f1000.sd:.4f}, "
      f"threshold (mean + 2 sd) {f1000.threshold:.4f}")
print(f"one n = 200 estimate has a spread {f200.sd / f1000.sd:.1f} x the n = 1000 spread "
      f"and {f200.sd / f1000.threshold:.1f} x the whole n = 1000 threshold")
print(f"n = 200 estimates range over [{min(f200.values):.4f}, {max(f200.values):.4f}] "
      f"for two samples of the very same distribution")

# %% [markdown]
# The spread falls roughly like $1/n$ (the sd ratio above against $1000/200 = 5$). With n = 200 a
# single measurement cannot tell a sampler at the floor from one that is measurably off, so the
# curves below use n = 1000, average over seeds with error bars (sd over seeds), and draw the floor
# band (mean $\pm$ 2 sd) on the chart. "At the floor" means a mean below floor mean + 2 sd.

# %% [markdown]
# ### What the measure can see
#
# Distorted copies of ring8 against a fresh ring8 batch, all at n = 1000, next to the n = 1000
# threshold. The kernel widths follow from the median pairwise distance of ring8:

# %%
g = torch.Generator().manual_seed(0)
n = 1000
ring, _ = target.sample(n, g)
median = metrics.median_distance(ring)
widths = ", ".join(f"{scale * median:.2f}" for scale in (0.5, 1, 2))
gap = float((target.means[0] - target.means[1]).norm())
print(f"median pairwise distance {median:.2f} -> kernel widths h = {widths}; ring8: radius 2, "
      f"mode sd {float(target.stds[0]):.1f}, neighbouring modes {gap:.2f} apart")


def ring_like(radius=1.0, sd_factor=1.0, modes=8):
    """ring8-like points: the same modes scaled by ``radius``, wider by ``sd_factor``, using the first ``modes``."""
    _, c = target.sample(n, g)
    c = c % modes
    return radius * target.means[c].float() + sd_factor * float(target.stds[0]) * torch.randn(n, 2, generator=g)


candidates = {
    "another ring8 batch": target.sample(n, g)[0],
    "modes 2x wider (sd 0.2)": ring_like(sd_factor=2),
    "modes 5x wider (sd 0.5)": ring_like(sd_factor=5),
    "radius x 1.1": ring_like(radius=1.1),
    "radius x 1.2": ring_like(radius=1.2),
    "4 of the 8 modes": ring_like(modes=4),
    "one standard Gaussian": torch.randn(n, 2, generator=g),
}
for name, x in candidates.items():
    value = metrics.mmd2(x, ring)
    print(f"{name:<26} MMD^2 = {value:8.4f}   {'above' if value > f1000.threshold else 'within'} the n = 1000 floor")

# %% [markdown]
# The measure sees where the mass is, at the scale of the whole ring (a wrong radius, missing modes,
# a Gaussian blob), but the smallest kernel is about as wide as the gap between neighbouring modes
# and over ten times the mode width, so it is nearly blind to how *sharp* the modes are. Keep that
# in mind below: "at the floor" on ring8 means "the right modes with the right weights at the right
# places", not "modes as tight as the target's"; look at the samples too (the widget at the end).

# %% [markdown]
# ## 3. DDIM vs Heun on the exact score: sampler error only
#
# `labkit.quality.run_quality` runs every sampler at every step count on the same noises per seed
# (so the samplers' differences are not drowned by sampling noise), measures MMD$^2$ against a
# fresh target batch per seed, and computes the floor. Here: N in {4, ..., 128}, n = 1000, 3 seeds.

# %%
print(inspect.getsource(quality.run_quality))

# %%
STEPS, N_POINTS, SEEDS = (4, 8, 16, 32, 64, 128), 1000, 3
start = time.perf_counter()
res_exact = quality.run_quality(exact, target, schedule, ("ddim", "heun"), STEPS, n=N_POINTS, seeds=SEEDS,
                                seed=0, progress=False)
print(f"exact score: {time.perf_counter() - start:.1f} s")
print(quality.format_table(res_exact))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
plot_quality(res_exact, axes[0], x_axis="steps")
plot_quality(res_exact, axes[1], x_axis="nfe")
for ax in axes:
    ax.set_title("exact score: " + ax.get_title(), fontsize=9)
plt.show()

# %% [markdown]
# On the log scale, values at or below zero (possible for the unbiased estimator, see above) are
# drawn at $10^{-6}$; the band is what matters there. The left panel compares samplers per *step*,
# but a Heun step costs two evaluations, so the fair axis is the right one, *NFE*: Heun with N steps
# (2N - 1 NFE) against DDIM with 2N steps (2N NFE). The verdict at each budget, read off the table
# (a "tie" is when both are at the floor, or the gap is within the floor's 2 sd):


# %%
def verdicts(result):
    """For each Heun N with a DDIM run at 2N: which sampler has the lower MMD^2 at about equal NFE."""
    rec = {(r["sampler"], r["steps"]): r for r in result["records"]}
    floor = result["floor"]
    lines = []
    for (name, N), h in rec.items():
        d = rec.get(("ddim", 2 * N))
        if name != "heun" or d is None:
            continue
        both_at_floor = max(h["mmd2_mean"], d["mmd2_mean"]) <= floor["mean"] + 2 * floor["sd"]
        if both_at_floor or abs(h["mmd2_mean"] - d["mmd2_mean"]) <= 2 * floor["sd"]:
            verdict = "tie (both at the floor)" if both_at_floor else "tie (gap within 2 floor sd)"
        else:
            verdict = "Heun better" if h["mmd2_mean"] < d["mmd2_mean"] else "DDIM better"
        lines.append((h["nfe"], d["nfe"], h["mmd2_mean"], d["mmd2_mean"], verdict))
    for hn, dn, hm, dm, v in lines:
        print(f"Heun {hn:>3} NFE: {hm:8.4f}   DDIM {dn:>3} NFE: {dm:8.4f}   -> {v}")
    for who in ("Heun better", "DDIM better", "tie"):
        budgets = [f"~{dn}" for hn, dn, hm, dm, v in lines if v.startswith(who)]
        print(f"{who if who != 'tie' else 'ties'}: {', '.join(budgets) + ' NFE' if budgets else 'nowhere'}")
    return lines


lines_exact = verdicts(res_exact)

# %% [markdown]
# And the first step count at which each sampler reaches the floor (the cheapest budget that is
# "good enough" for this target and this n):


# %%
def first_at_floor(result):
    for name in ("ddim", "heun"):
        hits = [r for r in result["records"] if r["sampler"] == name and quality.at_floor(result, name, r["steps"])]
        first = f"N = {hits[0]['steps']} ({hits[0]['nfe']} NFE)" if hits else "not within the step counts tried"
        print(f"{name}: first at the floor at {first}")


first_at_floor(res_exact)

# %% [markdown]
# With the exact score the only error left is the sampler's, and the lines above are the answer to
# "which sampler for which budget" on this target. Two things shape it. At small budgets a Heun
# step is long and its corrector is evaluated far from where the Euler step started, so Heun's
# extra evaluation can buy less than DDIM spending it on one more step. At large budgets Heun's
# $N^{-2}$ error beats DDIM's $N^{-1}$ (chapter 6 measured both, point by point); but MMD at
# n = 1000 cannot see errors below its floor, and once both samplers are in the band the chart
# calls it a tie. Chapter 6's per-point comparison is the finer instrument at large budgets; this
# chart says what is visible in the distribution.

# %% [markdown]
# ## 4. A learned model: sampler error plus model error
#
# Now the same experiment with an eps-MLP trained here (the default recipe, 6000 Adam steps).

# %%
model, history = cache.trained_model(target, schedule, seed=0)  # chapter 3's model, from the model cache
learned = model.eps_fn()
start = time.perf_counter()
res_learned = quality.run_quality(learned, target, schedule, ("ddim", "heun"), STEPS, n=N_POINTS, seeds=SEEDS,
                                  seed=0, progress=False)
print(f"quality run {time.perf_counter() - start:.1f} s")
print(quality.format_table(res_learned))

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 7.2), layout="constrained")
for row, (label, res) in zip(axes, (("exact score", res_exact), ("learned model", res_learned)), strict=True):
    for ax, x_axis in zip(row, ("steps", "nfe"), strict=True):
        plot_quality(res, ax, x_axis=x_axis)
        ax.set_title(f"{label}: " + ax.get_title(), fontsize=9)
ymin = min(ax.get_ylim()[0] for ax in axes.flat)
ymax = max(ax.get_ylim()[1] for ax in axes.flat)
for ax in axes.flat:
    ax.set_ylim(ymin, ymax)
plt.show()

# %%
lines_learned = verdicts(res_learned)
first_at_floor(res_learned)

# %% [markdown]
# Where the two charts part: budgets at which the sampler is good enough for the exact score but
# not for the learned model. There, long steps magnify the model's errors (its eps is least accurate
# where the steps are longest, at large $\sigma$):

# %%
for name in ("ddim", "heun"):
    parted = [r["steps"] for r in res_exact["records"] if r["sampler"] == name
              and quality.at_floor(res_exact, name, r["steps"]) and not quality.at_floor(res_learned, name, r["steps"])]
    print(f"{name}: exact at the floor but learned above it at N = {parted if parted else 'none'}")

# %% [markdown]
# Row against row (same y axis), the difference is the model's error: the exact curves fall
# into the band as the sampler converges, while the learned curves can only fall to the level at
# which the *model's* distribution differs from the target. With many steps the sampler is exact
# for the model, so the largest-NFE values measure model error alone:

# %%
for name in ("ddim", "heun"):
    big = max(r["steps"] for r in res_learned["records"] if r["sampler"] == name)
    learned_big = next(r for r in res_learned["records"] if r["sampler"] == name and r["steps"] == big)
    exact_big = next(r for r in res_exact["records"] if r["sampler"] == name and r["steps"] == big)
    at = quality.at_floor(res_learned, name, big)
    print(f"{name} N = {big}: exact {exact_big['mmd2_mean']:.4f}, learned {learned_big['mmd2_mean']:.4f} "
          f"+- {learned_big['mmd2_sd']:.4f} -> the model is {'at' if at else 'above'} the floor "
          f"(threshold {res_learned['floor']['mean'] + 2 * res_learned['floor']['sd']:.4f})")

# %% [markdown]
# The full-size chart for any target, with the same code and a model trained (or loaded) first:
#
# ```
# python -m labkit quality --target ring8 --samplers ddim,heun --steps 4,8,16,32,64,128 --n 1000 --seeds 3 --out out/
# ```
#
# (add `--exact` for the exact-score curves of a mixture target). It writes `quality.json` and
# `quality.png`.

# %% [markdown]
# ## 5. Widget: look at a point of the chart
#
# The learned model again, now with n = 1000 samples so the MMD$^2$ in the title is on the scale of
# the chart (measured against one fixed target batch, beside the floor at that n). Pick a sampler and
# a step count from the table above and see what an MMD$^2$ of that size looks like.

# %%
app = SamplerApp(learned, schedule, target, sampler="ddim", steps=8, n=1000, n_paths=8)
app  # noqa: B018 (the last expression displays the widget)

# %% [markdown]
# ## Summary
#
# - The unbiased MMD$^2$ is zero on average for equal distributions and can be negative; what
#   limits it is its spread, which shrinks about like 1/n (computed above at n = 200 and 1000).
# - A sampler comparison needs n = 1000 or several seeds, error bars and the floor band on the chart.
# - Against NFE, not steps, is the fair axis: Heun's N steps cost 2N - 1 evaluations. The verdict
#   lines above say, from this chapter's numbers, at which budgets DDIM or Heun is ahead.
# - Exact-score curves isolate the sampler's error; the learned model's curves level off at its own
#   error, which no number of steps removes (for this model the printed lines say whether that
#   level is visible above the floor), and they can reach the floor later, as long steps magnify
#   it (here DDIM does, while Heun reaches it at the same N: see the first-at-the-floor lines).
# - MMD with median-heuristic kernels sees the layout of the modes, not their sharpness (computed in
#   section 2): check samples by eye as well.
#
# ## References
#
# - A. Gretton, K. M. Borgwardt, M. J. Rasch, B. Schölkopf, A. Smola (2012). A Kernel Two-Sample Test.
#   JMLR 13:723-773 (Lemma 6: the unbiased estimator).
# - J. Song, C. Meng, S. Ermon (2021). Denoising Diffusion Implicit Models. arXiv:2010.02502.
# - T. Karras, M. Aittala, T. Aila, S. Laine (2022). Elucidating the Design Space of Diffusion-Based
#   Generative Models. arXiv:2206.00364.
# - Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole (2021). Score-Based Generative
#   Modeling through Stochastic Differential Equations. arXiv:2011.13456.
