"""The forward (noising) process as a widget: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.

Left: the noised cloud, coloured by class; x_0 and eps are drawn once per target (seeded), so
moving t morphs the same points. Right: abar_t and SNR_t = abar_t / (1 - abar_t) of the
schedule on a log scale, with markers at the current t.
"""

from __future__ import annotations

import ipywidgets as W
import torch

from .. import schedules as _schedules
from .. import targets as _targets
from .._checks import check_int, check_seed
from .base import App

SCHEDULES = ("linear", "cosine")


class NoisingApp(App):
    """t slider, schedule picker and target picker moving the noised cloud q(x_t | x_0)."""

    def __init__(self, target: str = "ring8", schedule: str = "cosine", t: int = 0, n: int = 1000,
                 seed: int = 0, lim: float = 3.5):
        self.n = check_int("n", n, 1, 100_000)
        self.seed = check_seed(seed)
        self.lim = lim
        super().__init__(figsize=(9, 4), ncols=2)
        self.ax_cloud, self.ax_curve = self.axes

        self.schedule_picker = W.Dropdown(options=list(SCHEDULES), value=self._check_schedule(schedule),
                                          description="schedule")
        self.target_picker = W.Dropdown(options=_targets.names(2), value=self._check_target(target),
                                        description="target")
        self.schedule = _schedules.get(schedule)
        self.t_slider = W.IntSlider(value=0, min=0, max=self.schedule.T - 1, description="t",
                                    continuous_update=True, layout=W.Layout(width="60%"))
        self.t = check_int("t", t, 0, self.schedule.T - 1)
        self.t_slider.value = self.t

        # The cloud: built once, later moved with set_offsets and recoloured with set_array.
        self._draw_data(target)
        self.cloud = self.ax_cloud.scatter(*self.noised().T.numpy(), c=self.c.numpy(), s=3, cmap="tab10",
                                           vmin=0, vmax=9, linewidths=0)
        self.ax_cloud.set_xlim(-lim, lim)
        self.ax_cloud.set_ylim(-lim, lim)
        self.ax_cloud.set_aspect("equal")

        # The schedule's curves and the markers at t.
        steps = torch.arange(self.schedule.T).numpy()
        (self.abar_line,) = self.ax_curve.plot(steps, self.schedule.alphas_cumprod.numpy(), label=r"$\bar\alpha_t$")
        (self.snr_line,) = self.ax_curve.plot(steps, self.schedule.snr().numpy(),
                                              label=r"SNR$_t = \bar\alpha_t / (1 - \bar\alpha_t)$")
        (self.abar_marker,) = self.ax_curve.plot([], [], "o", color="tab:blue")
        (self.snr_marker,) = self.ax_curve.plot([], [], "o", color="tab:orange")
        self.t_line = self.ax_curve.axvline(self.t, color="0.5", lw=1, ls="--")
        self.ax_curve.set_yscale("log")
        self.ax_curve.set_ylim(1e-10, 1e5)
        self.ax_curve.set_xlim(0, self.schedule.T - 1)
        self.ax_curve.set_xlabel("t")
        self.ax_curve.legend(loc="lower left", fontsize=8)
        self.ax_curve.grid(alpha=0.3, which="major")

        self.on_change(self.t_slider, lambda: self.set_t(self.t_slider.value))
        self.on_change(self.schedule_picker, lambda: self.set_schedule(self.schedule_picker.value))
        self.on_change(self.target_picker, lambda: self.set_target(self.target_picker.value))
        self._update()
        self.fig.draw_without_rendering()  # lay out once; later redraws keep the axes in place
        self.fig.set_layout_engine("none")

    # ---- checks and state ----
    @staticmethod
    def _check_schedule(name) -> str:
        if name not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {name!r}")
        return name

    @staticmethod
    def _check_target(name) -> str:
        if name not in _targets.names(2):
            raise ValueError(f"target must be one of {_targets.names(2)}, got {name!r}")
        return name

    def _draw_data(self, target: str) -> None:
        """Fix x_0 (with its classes) and eps for ``target``, from the app's seed."""
        self.target = _targets.get(target)
        g = torch.Generator().manual_seed(self.seed)
        self.x0, self.c = self.target.sample(self.n, g)
        self.eps = torch.randn(self.x0.shape, generator=g)

    def noised(self, t: int | None = None) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for the fixed x_0, eps (the current t by default)."""
        return self.schedule.q_sample(self.x0, self.t if t is None else t, self.eps)

    # ---- the update logic (plain methods; tests call them directly) ----
    def set_t(self, t: int) -> None:
        """Move the cloud and the markers to timestep ``t`` (an integer in [0, T-1])."""
        self.t = check_int("t", t, 0, self.schedule.T - 1)
        self.set_quietly(self.t_slider, self.t)
        self._update()

    def set_schedule(self, name: str) -> None:
        """Switch to the 'linear' or 'cosine' schedule (same x_0 and eps, same t)."""
        self.schedule = _schedules.get(self._check_schedule(name))
        self.set_quietly(self.schedule_picker, name)
        self.abar_line.set_ydata(self.schedule.alphas_cumprod.numpy())
        self.snr_line.set_ydata(self.schedule.snr().numpy())
        self._update()

    def set_target(self, name: str) -> None:
        """Switch target: draw its x_0 and eps once (seeded) and recolour the cloud by class."""
        self._draw_data(self._check_target(name))
        self.set_quietly(self.target_picker, name)
        self.cloud.set_array(self.c.numpy())
        self._update()

    def _update(self) -> None:
        t, s = self.t, self.schedule
        self.cloud.set_offsets(self.noised().numpy())
        abar, snr = float(s.alphas_cumprod[t]), float(s.snr()[t])
        self.abar_marker.set_data([t], [abar])
        self.snr_marker.set_data([t], [snr])
        self.t_line.set_xdata([t, t])
        self.ax_cloud.set_title(f"{self.target.name}: $x_t$ at t = {t}", fontsize=10)
        self.ax_curve.set_title(f"{s.name}: abar_t = {abar:.3g}, SNR_t = {snr:.3g}, sigma_t = {float(s.sigmas[t]):.3g}",
                                fontsize=10)
        self.redraw()

    def controls(self):
        return [W.HBox([self.target_picker, self.schedule_picker]), self.t_slider]
