"""Classifier-free guidance, live: the guided score field and guided samples for a class and w.

Left panel: the score of the guided eps-prediction (Ho & Salimans 2022),

    s_w(x, t | c) = -eps_hat(x, t) / sqrt(1 - abar_t),   eps_hat = (1 + w) eps(x, t, c) - w eps(x, t, null),

as arrows on a grid at timestep t, over the noised target at t. Right panel: a fixed batch of
noise taken to data by Heun (EDM) with eps_hat, over faint target points. The w slider and the
class picker redraw both panels; the t slider redraws the field only.
"""

from __future__ import annotations

import time

import ipywidgets as W
import matplotlib as mpl
import torch

from .. import fields
from .._checks import check_float, check_int, check_seed
from ..guidance import cfg
from ..samplers import heun
from .base import App


class GuidanceApp(App):
    """w slider, class picker and t slider over the guided score field and guided samples.

    ``model`` is anything :func:`labkit.guidance.cfg` accepts: a trained
    :class:`~labkit.model.EpsMLP` or the exact :class:`~labkit.oracle.MixtureEps` of ring8.
    """

    def __init__(self, model, target, schedule, *, w: float = 0.0, w_max: float = 8.0, cls: int = 0,
                 t: int | None = None, lim: float = 3.0, size: int = 16, n: int = 300, steps: int = 16,
                 seed: int = 0, n_target: int = 2000):
        if model.num_classes != target.num_classes:
            raise ValueError(f"model has {model.num_classes} classes but target {target.name!r} has "
                             f"{target.num_classes}")
        self.model, self.target, self.schedule = model, target, schedule
        self.w_max = check_float("w_max", w_max, 0.0, 1000.0, low_open=True)
        self.w = check_float("w", w, 0.0, self.w_max)
        self.cls = check_int("cls", cls, 0, target.num_classes - 1)
        self.t = check_int("t", int(0.2 * (schedule.T - 1)) if t is None else t, 0, schedule.T - 1)
        self.lim = check_float("lim", lim, 0.0, 100.0, low_open=True)
        self.steps = check_int("steps", steps, 1, 1000)
        n = check_int("n", n, 1, 100_000)
        g = torch.Generator().manual_seed(check_seed(seed))
        self.noise = torch.randn(n, 2, generator=g)
        self.x0, self.c0 = target.sample(check_int("n_target", n_target, 2, 100_000), g)
        self.eps_t = torch.randn(self.x0.shape, generator=g)   # fixed noise for the noised background
        self.points = fields.grid(self.lim, size)
        self.cell = 2 * self.lim / (size - 1)
        self.timings_ms: dict[str, list[float]] = {"field": [], "samples": []}

        super().__init__(figsize=(9, 4.6), ncols=2)
        self.ax_field, self.ax_samples = self.axes
        for ax in self.axes:
            ax.set_xlim(-self.lim, self.lim)
            ax.set_ylim(-self.lim, self.lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
        self.background = self.ax_field.scatter(*self.x0.T, s=2, c="0.75", linewidths=0)
        self.quiver = self.ax_field.quiver(*self.points.T, torch.zeros(len(self.points)), torch.zeros(len(self.points)),
                                           angles="xy", scale_units="xy", scale=1.0, width=0.005)
        self.ax_samples.scatter(*self.x0.T, s=2, c="0.85", linewidths=0)
        self.class_points = self.ax_samples.scatter(*self.x0[:1].T, s=2, linewidths=0, alpha=0.35)
        self.sample_points = self.ax_samples.scatter(*self.noise.T, s=5, linewidths=0)

        self.w_slider = W.FloatSlider(value=self.w, min=0.0, max=self.w_max, step=0.25, description="w",
                                      readout_format=".2f", continuous_update=False)
        self.class_picker = W.Dropdown(options=[(name, k) for k, name in enumerate(target.class_names)],
                                       value=self.cls, description="class")
        self.t_slider = W.IntSlider(value=self.t, min=0, max=schedule.T - 1, description="t (field)")
        self.on_change(self.w_slider, lambda: self.set_w(self.w_slider.value))
        self.on_change(self.class_picker, lambda: self.set_class(self.class_picker.value))
        self.on_change(self.t_slider, lambda: self.set_t(self.t_slider.value))
        self.guarded(self.update)
        # Lay the figure out once (two-line titles included) and keep it: redraws then skip the
        # constrained-layout solve, which is about half of a draw's time.
        engine = self.fig.get_layout_engine()
        if engine is not None:
            engine.execute(self.fig)
            self.fig.set_layout_engine("none")

    def controls(self):
        return [W.HBox([self.w_slider, self.class_picker, self.t_slider])]

    # --- plain methods (tests call these) -------------------------------------------------------

    def set_w(self, w: float) -> None:
        """Guidance weight w in [0, w_max]: redraw the field and the samples."""
        self.w = check_float("w", w, 0.0, self.w_max)
        self.set_quietly(self.w_slider, self.w)
        self.update()

    def set_class(self, cls: int) -> None:
        """Class c in [0, num_classes - 1]: redraw the field and the samples."""
        self.cls = check_int("cls", cls, 0, self.target.num_classes - 1)
        self.set_quietly(self.class_picker, self.cls)
        self.update()

    def set_t(self, t: int) -> None:
        """Timestep t of the field in [0, T - 1]: redraw the field only."""
        self.t = check_int("t", t, 0, self.schedule.T - 1)
        self.set_quietly(self.t_slider, self.t)
        self.update_field()
        self.redraw()

    def eps_fn(self):
        """The guided eps function for the current class and w."""
        return cfg(self.model, self.cls, self.w)

    def update(self) -> None:
        self.update_field()
        self.update_samples()
        self.redraw()

    def update_field(self) -> None:
        """Score s_w(x, t | c) on the grid (kept raw in ``self.field``) and the noised target at t."""
        start = time.perf_counter()
        self.field = fields.score_field(self.eps_fn(), self.schedule, self.t, self.points)
        arrows = _capped_arrows(self.field, self.cell)
        self.quiver.set_UVC(arrows[:, 0].numpy(), arrows[:, 1].numpy())
        self.quiver.set_color(self._color())
        abar = float(self.schedule.alphas_cumprod[self.t])
        self.background.set_offsets((abar**0.5 * self.x0 + (1 - abar) ** 0.5 * self.eps_t).numpy())
        sigma = float(self.schedule.sigmas[self.t])
        self.ax_field.set_title(f"guided score at t = {self.t} (sigma = {sigma:.3g})\n"
                                f"arrow length ~ |s| (capped), over the noised target", fontsize=9)
        self.timings_ms["field"].append(1000 * (time.perf_counter() - start))

    def update_samples(self) -> None:
        """A fixed batch of noise taken to data by Heun with the guided eps (kept in ``self.samples``)."""
        start = time.perf_counter()
        self.samples = heun(self.eps_fn(), self.schedule, self.noise, self.steps).x
        self.sample_points.set_offsets(self.samples.numpy())
        self.sample_points.set_color(self._color())
        mine = self.x0[self.c0 == self.cls]
        self.class_points.set_offsets(mine.numpy())
        self.class_points.set_color(self._color())
        outside = int((self.samples.abs() > self.lim).any(dim=1).sum())
        name = self.target.class_names[self.cls]
        note = f", {outside} outside the view" if outside else ""
        self.ax_samples.set_title(f"class {name!r}, w = {self.w:g} (s = 1 + w = {1 + self.w:g})\n"
                                  f"{len(self.samples)} samples, Heun {self.steps} steps{note}", fontsize=9)
        self.timings_ms["samples"].append(1000 * (time.perf_counter() - start))

    # --- helpers ----------------------------------------------------------------------------------

    def _color(self):
        return mpl.colormaps["tab10"](self.cls % 10)


def _capped_arrows(vectors: torch.Tensor, cell: float) -> torch.Tensor:
    """Arrows whose 75th-percentile length is 0.9 ``cell``, longer ones capped at that length.

    The score grows like distance / (1 - abar_t) away from the data, so scaling by the longest
    arrow (:func:`labkit.fields.display_arrows`) would hide the arrows near the data, where
    guidance acts; capping keeps every arrow's direction visible.
    """
    v, _ = fields.display_arrows(vectors, cell)          # finite, longest = 0.9 cell
    length = v.norm(dim=1, keepdim=True)
    ref = float(length.quantile(0.75)) if len(v) else 0.0
    if ref <= 0:
        return v
    v = v * (0.9 * cell / ref)
    return v * torch.clamp(0.9 * cell / v.norm(dim=1, keepdim=True).clamp_min(1e-30), max=1.0)
