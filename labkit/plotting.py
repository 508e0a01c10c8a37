"""Static matplotlib figures used by the chapters and the command line."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

SAMPLER_COLORS = {"ddpm": "tab:gray", "ddim": "tab:blue", "heun": "tab:orange"}


def scatter(ax, x: torch.Tensor, c: torch.Tensor | None = None, *, s: float = 3, lim: float = 3.0,
            title: str | None = None):
    """Points x (n, 2) colored by class c on a square [-lim, lim]^2 axis; returns the artist."""
    x = x.detach().cpu()
    colors = None if c is None else c.detach().cpu().numpy()
    artist = ax.scatter(x[:, 0], x[:, 1], s=s, c=colors, cmap="tab10", vmin=0, vmax=9, linewidths=0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return artist


def plot_quality(result: dict, ax=None, x_axis: str = "nfe"):
    """MMD^2 (mean +- sd over seeds) against NFE or steps per sampler, with the floor band."""
    if x_axis not in ("nfe", "steps"):
        raise ValueError(f"x_axis must be 'nfe' or 'steps', got {x_axis!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    floor = result["floor"]
    ax.axhspan(max(floor["mean"] - 2 * floor["sd"], 1e-6), floor["mean"] + 2 * floor["sd"],
               color="tab:green", alpha=0.15, label="noise floor (mean +- 2 sd)")
    ax.axhline(max(floor["mean"], 1e-6), color="tab:green", lw=1)
    for name in dict.fromkeys(r["sampler"] for r in result["records"]):
        recs = [r for r in result["records"] if r["sampler"] == name]
        xs = [r[x_axis] for r in recs]
        ys = [max(r["mmd2_mean"], 1e-6) for r in recs]
        errs = [r["mmd2_sd"] for r in recs]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=name, color=SAMPLER_COLORS.get(name))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("network evaluations (NFE)" if x_axis == "nfe" else "sampler steps N")
    ax.set_ylabel("MMD$^2$ to the target")
    ax.set_title(f"{result['target']}: quality vs {'NFE' if x_axis == 'nfe' else 'steps'} "
                 f"(n = {result['n']}, {result['seeds']} seeds)")
    ax.legend(fontsize=8)
    return ax
