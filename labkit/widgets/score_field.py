"""Score fields s(x, t) = -eps(x, t) / sqrt(1 - abar_t) as quiver plots, one panel per eps function.

A t slider re-renders every panel: one eps call per panel on a size x size grid, then
``set_UVC`` on the existing quiver and ``set_offsets`` on the noised cloud (never a new figure).
The score is huge near t = 0 away from the data, so arrows are drawn at a common display
length (:func:`labkit.fields.display_arrows`): the longest arrow over all panels spans 0.9 of a
grid cell, and each panel states the factor, so lengths compare within and across panels.
"""

from __future__ import annotations

import ipywidgets as W
import torch

from .. import schedules as _schedules
from .. import targets as _targets
from .._checks import check_float, check_int, check_seed
from ..fields import display_arrows, grid, score_field
from .base import App


def _check_fields(fields) -> dict:
    if not isinstance(fields, dict) or not fields:
        raise TypeError("fields must be a non-empty dict {panel title: eps_fn}")
    for title, fn in fields.items():
        if not callable(fn):
            raise TypeError(f"fields[{title!r}] must be an eps function eps_fn(x, t), got {type(fn).__name__}")
    return dict(fields)


class ScoreFieldApp(App):
    """Quiver plots of the score of each eps function in ``fields`` at a t chosen by a slider.

    ``schedule`` is a :class:`~labkit.schedules.Schedule` or a name; ``fields`` maps panel titles
    to eps functions; ``target`` (a Target, a name or None) adds its noised cloud
    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps in light grey, with x_0 and eps drawn once
    (``seed``) so moving t morphs the same points. ``t`` defaults to the step where sigma_t is
    closest to 0.5. ``common_scale=False`` scales each panel's arrows on its own.
    """

    def __init__(self, schedule, fields, *, target=None, t=None, lim: float = 3.0, size: int = 16,
                 n_points: int = 500, seed: int = 0, common_scale: bool = True, panel_size: float = 3.6):
        self.schedule = _schedules.get(schedule) if isinstance(schedule, str) else schedule
        if not isinstance(self.schedule, _schedules.Schedule):
            raise TypeError(f"schedule must be a labkit Schedule or a name, got {type(schedule).__name__}")
        fields = _check_fields(fields)
        self.target = _targets.get(target) if isinstance(target, str) else target
        if self.target is not None and not isinstance(self.target, _targets.Target):
            raise TypeError(f"target must be a labkit Target, a name or None, got {type(target).__name__}")
        self.lim = check_float("lim", lim, 0.0, 1e3, low_open=True)
        self.size = check_int("size", size, 2, 200)
        n_points = check_int("n_points", n_points, 1, 100_000)
        seed = check_seed(seed)
        self.common_scale = bool(common_scale)
        T = self.schedule.T
        if t is None:
            t = round(float(self.schedule.sigma_to_t(min(max(0.5, self.schedule.sigma_min), self.schedule.sigma_max))))
        t = check_float("t", t, 0.0, T - 1)

        super().__init__(figsize=(panel_size * len(fields), panel_size + 0.4), ncols=len(fields))
        self.points = grid(self.lim, self.size)
        self.cell = 2 * self.lim / (self.size - 1)
        self.fields = fields
        self.t = t
        self.factors: dict[str, float] = {}

        self.x0 = self.noise = None
        if self.target is not None:
            g = torch.Generator().manual_seed(seed)
            self.x0, _ = self.target.sample(n_points, g)
            self.noise = torch.randn(self.x0.shape, generator=g)

        px, py = self.points[:, 0].numpy(), self.points[:, 1].numpy()
        zeros = torch.zeros(len(self.points)).numpy()
        self.quivers, self.clouds, self._notes = {}, {}, {}
        for ax, title in zip(self.axes, fields, strict=True):
            if self.x0 is not None:
                self.clouds[title] = ax.scatter(*self.noised_cloud(t).T.numpy(), s=3, color="0.75", linewidths=0,
                                                zorder=1)
            self.quivers[title] = ax.quiver(px, py, zeros, zeros, angles="xy", scale_units="xy", scale=1.0,
                                            width=0.006, color="tab:blue", zorder=2)
            self._notes[title] = ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=8, color="0.3",
                                         bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0})
            ax.set_title(title)
            ax.set_xlim(-self.lim - self.cell, self.lim + self.cell)
            ax.set_ylim(-self.lim - self.cell, self.lim + self.cell)
            ax.set_aspect("equal")
            ax.set_xticks([-2, 0, 2] if self.lim >= 2 else [0])
            ax.set_yticks([-2, 0, 2] if self.lim >= 2 else [0])
            ax.tick_params(labelsize=7, labelleft=ax is self.axes[0])
        self._suptitle = self.fig.suptitle("")

        self.t_slider = W.FloatSlider(value=t, min=0, max=T - 1, step=1.0, description="t",
                                      readout_format=".0f", continuous_update=True,
                                      layout=W.Layout(width="60%"))
        self.on_change(self.t_slider, self._on_slider)
        self._update()
        # Lay the figure out once, then keep the axes where they are: re-running the constrained
        # layout on every slider move would double the cost of a redraw.
        self.fig.draw_without_rendering()
        self.fig.set_layout_engine("none")

    # ---- the update logic (plain methods; tests call them directly) ----
    def noised_cloud(self, t: float) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for the app's fixed x_0 and eps."""
        if self.x0 is None:
            raise ValueError("this app has no target, so no cloud")
        abar = float(self.schedule.abar(torch.tensor(float(t), dtype=torch.float64)))
        return abar**0.5 * self.x0 + (1 - abar) ** 0.5 * self.noise

    def scores(self, t: float) -> dict[str, torch.Tensor]:
        """The raw score s(x, t) of every panel on the grid (one eps call per panel)."""
        return {title: score_field(fn, self.schedule, t, self.points) for title, fn in self.fields.items()}

    def set_t(self, t) -> None:
        """Move every panel to timestep ``t`` (fractional allowed) and redraw."""
        t = check_float("t", t, 0.0, self.schedule.T - 1)
        self.t = t
        self.set_quietly(self.t_slider, t)  # keep the slider in step without a second update
        self._update()

    def set_fields(self, fields) -> None:
        """Swap the eps functions (same number of panels; titles may change) and redraw."""
        fields = _check_fields(fields)
        if len(fields) != len(self.fields):
            raise ValueError(f"fields must have {len(self.fields)} entries (one per panel), got {len(fields)}")
        old = list(self.fields)
        self.quivers = {new: self.quivers[o] for new, o in zip(fields, old, strict=True)}
        self.clouds = {new: self.clouds[o] for new, o in zip(fields, old, strict=True) if o in self.clouds}
        self._notes = {new: self._notes[o] for new, o in zip(fields, old, strict=True)}
        for ax, title in zip(self.axes, fields, strict=True):
            ax.set_title(title)
        self.fields = fields
        self._update()

    def _on_slider(self) -> None:
        self.t = float(self.t_slider.value)
        self._update()

    def _update(self) -> None:
        t = self.t
        raw = self.scores(t)
        if self.common_scale:  # one factor for all panels: the longest arrow over every panel
            scaled, factor = display_arrows(torch.cat(list(raw.values())), self.cell)
            arrows = dict(zip(raw, scaled.split(len(self.points)), strict=True))
            factors = dict.fromkeys(raw, factor)
        else:
            pairs = {title: display_arrows(s, self.cell) for title, s in raw.items()}
            arrows = {title: v for title, (v, _) in pairs.items()}
            factors = {title: f for title, (_, f) in pairs.items()}
        for title, v in arrows.items():
            factor = factors[title]
            self.factors[title] = factor
            self.quivers[title].set_UVC(v[:, 0].numpy(), v[:, 1].numpy())
            self._notes[title].set_text(f"arrows = score x {factor:.3g}\n(longest = 0.9 grid cell)")
        if self.x0 is not None:
            cloud = self.noised_cloud(t).numpy()
            for artist in self.clouds.values():
                artist.set_offsets(cloud)
        sigma = float(self.schedule.t_to_sigma(torch.tensor(t, dtype=torch.float64)))
        self._suptitle.set_text(f"score s(x, t) = -eps / sqrt(1 - abar_t) at t = {t:.0f}, sigma_t = {sigma:.3g}")
        self.redraw()

    def controls(self):
        return [self.t_slider]
