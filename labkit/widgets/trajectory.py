"""Scrub the reverse time of a sampler run: a Play button linked to a step slider.

At step k the cloud is moved to ``trajectory[k]`` (``set_offsets``) and a few highlighted
points draw their paths up to step k (``Line2D.set_data``); the title gives k and, when the
noise levels of the entries are known, sigma (and t on the schedule).
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from .. import targets as _targets
from .._checks import check_float, check_int
from ..samplers import SampleResult
from ..schedules import Schedule
from .base import App


def ddpm_sigmas(schedule: Schedule) -> list[float]:
    """sigma of each entry of a :func:`labkit.samplers.ddpm` trajectory: sigma_{T-1}, ..., sigma_0, then 0."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    return schedule.sigmas.flip(0).tolist() + [0.0]


class TrajectoryApp(App):
    """Animate ``result_or_trajectory`` (a SampleResult or a list of (n, 2) tensors, first = start).

    ``sigmas`` (one per entry, 0 for clean data) labels each step with its noise level, and with
    its timestep when ``schedule`` is given. ``paths`` points (evenly spread over the batch) are
    drawn with their paths; ``target`` adds a light reference sample. The Play button advances
    ``stride`` entries every ``interval`` ms.
    """

    def __init__(self, result_or_trajectory, *, sigmas=None, schedule: Schedule | None = None, target=None,
                 paths: int = 6, lim: float = 3.0, stride: int | None = None, interval: int = 40,
                 n_target: int = 1000, seed: int = 0, title: str = "reverse process", figsize=(4.6, 4.8)):
        traj = result_or_trajectory.trajectory if isinstance(result_or_trajectory, SampleResult) \
            else result_or_trajectory
        if not isinstance(traj, (list, tuple)) or len(traj) < 2 or not all(isinstance(x, torch.Tensor) for x in traj):
            raise TypeError("result_or_trajectory must be a SampleResult or a list of at least 2 tensors")
        shapes = {tuple(x.shape) for x in traj}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[1] != 2:
            raise ValueError(f"every trajectory entry must have the same shape (n, 2), got {sorted(shapes)}")
        self.points = torch.stack([x.detach().cpu().float() for x in traj]).numpy()       # (K + 1, n, 2)
        self.steps = len(self.points) - 1
        if sigmas is not None:
            sigmas = [float(s) for s in sigmas]
            if len(sigmas) != len(self.points):
                raise ValueError(f"sigmas must have one entry per trajectory entry ({len(self.points)}), "
                                 f"got {len(sigmas)}")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a labkit Schedule or None, got {type(schedule).__name__}")
        self.sigmas, self.schedule = sigmas, schedule
        self.target = _targets.get(target) if isinstance(target, str) else target
        if self.target is not None and not isinstance(self.target, _targets.Target):
            raise TypeError(f"target must be a labkit Target, a name or None, got {type(target).__name__}")
        n = self.points.shape[1]
        paths = check_int("paths", paths, 0, n)
        self.lim = check_float("lim", lim, 0.0, 1e3, low_open=True)
        stride = max(1, self.steps // 100) if stride is None else check_int("stride", stride, 1, self.steps)
        interval = check_int("interval", interval, 1, 10_000)
        self.title = str(title)
        self.path_index = np.linspace(0, n - 1, paths).round().astype(int) if paths else np.zeros(0, int)

        super().__init__(figsize=figsize)
        ax = self.ax = self.axes[0]
        if self.target is not None:
            ref, _ = self.target.sample(check_int("n_target", n_target, 1, 100_000),
                                        torch.Generator().manual_seed(check_int("seed", seed, 0, 2**62)))
            ax.scatter(ref[:, 0], ref[:, 1], s=2, color="0.8", linewidths=0, zorder=0, label="target")
        self.cloud = ax.scatter(*self.points[0].T, s=3, color="tab:blue", linewidths=0, zorder=1, label="samples")
        colors = [f"C{(i + 1) % 10}" for i in range(paths)]
        self.path_lines = [ax.plot([], [], lw=1.0, color=col, zorder=2)[0] for col in colors]
        self.heads = ax.scatter(*self.points[0, self.path_index].T, s=25, c=colors, edgecolors="k",
                                linewidths=0.5, zorder=3)
        ax.set_xlim(-self.lim, self.lim)
        ax.set_ylim(-self.lim, self.lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        self._title = ax.set_title("")
        self.step = 0

        self.slider = W.IntSlider(value=0, min=0, max=self.steps, step=1, description="step",
                                  continuous_update=True, layout=W.Layout(width="70%"))
        self.play = W.Play(value=0, min=0, max=self.steps, step=stride, interval=interval, description="play")
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.on_change(self.slider, lambda: self.set_step(self.slider.value))
        self.set_step(0)
        self.fig.draw_without_rendering()
        self.fig.set_layout_engine("none")  # fixed layout: a redraw only moves artists

    def label(self, k: int) -> str:
        """The title of step k: the step count, and sigma and t where known."""
        text = f"{self.title}: step {k} / {self.steps}"
        if self.sigmas is not None:
            sigma = self.sigmas[k]
            text += f"\nsigma = {sigma:.3g}"
            if self.schedule is not None:
                if sigma == 0:
                    text += " (data, after t = 0)"
                elif self.schedule.sigma_min * (1 - 1e-9) <= sigma <= self.schedule.sigma_max * (1 + 1e-9):
                    text += f", t = {float(self.schedule.sigma_to_t(sigma)):.0f}"
        return text

    def set_step(self, k) -> None:
        """Show the samples at trajectory entry ``k`` (0 = start) and the highlighted paths up to it."""
        k = check_int("k", k, 0, self.steps)
        self.step = k
        self.set_quietly(self.slider, k)
        self.cloud.set_offsets(self.points[k])
        for line, i in zip(self.path_lines, self.path_index, strict=True):
            line.set_data(self.points[: k + 1, i, 0], self.points[: k + 1, i, 1])
        self.heads.set_offsets(self.points[k, self.path_index])
        self._title.set_text(self.label(k))
        self.redraw()

    def controls(self):
        return [W.HBox([self.play, self.slider])]
