"""Static matplotlib figures used by the chapters and the command line."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .metrics import STATISTICS
from .samplers import SAMPLERS


def scatter(ax, x: torch.Tensor, c: torch.Tensor | None = None, *, s: float = 3, lim: float = 3.0,
            title: str | None = None):
    """Points x (n, 2) colored by class c on a square [-lim, lim]^2 axis; returns the artist."""
    x = x.detach().cpu()
    by_class = {} if c is None else {"c": c.detach().cpu().numpy(), "cmap": "tab10", "vmin": 0, "vmax": 9}
    artist = ax.scatter(x[:, 0], x[:, 1], s=s, linewidths=0, **by_class)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return artist


def plot_quality(result: dict, ax=None, x_axis: str = "nfe", metric: str = "mmd2"):
    """``metric`` (mean +- sd over seeds) against NFE or steps, one line per (sampler, grid), with the
    noise floor's band (up to its threshold, ``metrics.Floor.threshold``). The y axis is symlog, so
    values under the floor's mean show, negative ones included (the unbiased MMD^2 of two samples of
    one distribution is negative more than half the time: its null distribution is skewed right)."""
    if x_axis not in ("nfe", "steps"):
        raise ValueError(f"x_axis must be 'nfe' or 'steps', got {x_axis!r}")
    floor_key = {"mmd2": "floor", "detail_miss": "detail_floor"}.get(metric)
    if floor_key is None or floor_key not in result:
        raise ValueError(f"metric must be 'mmd2' or 'detail_miss' (when the result has it), got {metric!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    floor = result[floor_key]
    ax.axhspan(floor["mean"] - floor["threshold"] + floor["mean"], floor["threshold"], color="tab:green", alpha=0.15,
               label="noise floor (up to its threshold)")
    ax.axhline(floor["mean"], color="tab:green", lw=1)
    for name, grid in dict.fromkeys((r["sampler"], r.get("grid")) for r in result["records"]):
        recs = [r for r in result["records"] if r["sampler"] == name and r.get("grid") == grid]
        label = SAMPLERS[name].label + (f", {grid}" if grid else "")
        ax.errorbar([r[x_axis] for r in recs], [r[f"{metric}_mean"] for r in recs],
                    yerr=[r[f"{metric}_sd"] for r in recs], marker="o", capsize=3, label=label,
                    color=SAMPLERS[name].colour, ls="--" if grid == "trailing" else "-")
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=max(abs(floor["threshold"]), 1e-6))
    ax.set_xlabel("network evaluations (NFE)" if x_axis == "nfe" else "sampler steps N")
    ax.set_ylabel(STATISTICS[metric][0].replace("MMD²", "MMD$^2$"))
    ax.set_title(f"{result['target']}: quality vs {'NFE' if x_axis == 'nfe' else 'steps'} "
                 f"(n = {result['n']}, {result['seeds']} seeds)")
    ax.legend(fontsize=7)
    return ax


def image_grid(ax, x: torch.Tensor, *, ncols: int | None = None, shape: tuple[int, int] = (8, 8),
               lim: float = 1.0, pad: int = 1, title: str | None = None):
    """Rows of x (n, h * w) drawn as h x w grey images side by side, ``ncols`` per row (default:
    one row); values in [-lim, lim] map black to white, values beyond are clipped. Returns the
    AxesImage (update it with ``set_data(grid_array(...))``)."""
    artist = ax.imshow(grid_array(x, ncols=ncols, shape=shape, pad=pad), cmap="gray_r", vmin=-lim, vmax=lim,
                       interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return artist


def grid_array(x: torch.Tensor, *, ncols: int | None = None, shape: tuple[int, int] = (8, 8), pad: int = 1):
    """The (rows (h + pad), ncols (w + pad)) array of :func:`image_grid`, pads at NaN (drawn blank)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != shape[0] * shape[1]:
        raise ValueError(f"x must be a tensor of shape (n, {shape[0] * shape[1]}) for images of shape {shape}, "
                         f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    n = len(x)
    ncols = max(n, 1) if ncols is None else ncols
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be an integer >= 1, got {ncols!r}")
    nrows = -(-n // ncols)
    h, w = shape
    out = torch.full((nrows, ncols, h + pad, w + pad), float("nan"))
    images = x.detach().cpu().to(torch.float32).reshape(n, h, w)
    out.view(-1, h + pad, w + pad)[:n, :h, :w] = images
    return out.permute(0, 2, 1, 3).reshape(nrows * (h + pad), ncols * (w + pad))[:-pad or None, :-pad or None].numpy()
