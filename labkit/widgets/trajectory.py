"""Scrub the reverse time of a sampler run: a Play button linked to a step slider.

At step k the cloud is moved to ``trajectory[k]`` (``set_offsets``) and a few highlighted
points draw their paths up to step k (``Line2D.set_data``); the title gives k and, when the
noise levels of the entries are known, sigma (and t on the schedule).

The Play button needs a live kernel. :meth:`TrajectoryApp.to_html` renders a few steps once into a
self-contained HTML player (palette PNG frames, a slider and a play button in a few lines of
JavaScript) that plays in a notebook viewer or on a static website.
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid

import ipywidgets as W
import numpy as np
import torch
from PIL import Image

from .. import samplers
from .. import targets as _targets
from .._checks import check_float, check_int
from ..samplers import SampleResult
from ..schedules import Schedule
from .base import App


def ddpm_sigmas(schedule: Schedule, sigma_max: float | None = 80.0) -> list[float]:
    """sigma of each entry of a :func:`labkit.samplers.ddpm` trajectory started at ``sigma_max`` (its
    default): sigma_{t_max}, ..., sigma_0, then 0 (``sigma_max=None``: from sigma_{T-1})."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a labkit Schedule, got {type(schedule).__name__}")
    return samplers.trailing(schedule, schedule.last_t_below(sigma_max) + 1, sigma_max)


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

    def to_html(self, frames: int | None = None, dpi: float = 40.0, interval: int = 150, colors: int = 32) -> str:
        """A static player of the trajectory: ``frames`` evenly spaced steps (first and last included;
        default 30, or every entry of a shorter trajectory), rendered once at ``dpi`` side by side into one
        ``colors``-colour PNG (the frames share their background, which the PNG then stores about once),
        shown one at a time by a play button and a slider in plain HTML/JavaScript. The highlighted paths
        run through the rendered steps only (a path through every step of a stochastic sampler is a
        scribble that doubles the size of a frame). The app is left at the step it showed.
        """
        frames = min(30, self.steps + 1) if frames is None else check_int("frames", frames, 2, self.steps + 1)
        dpi = check_float("dpi", dpi, 10.0, 300.0)
        interval = check_int("interval", interval, 10, 10_000)
        colors = check_int("colors", colors, 2, 256)
        shown, title = self.step, self._title.get_text()
        ks = np.linspace(0, self.steps, frames).round().astype(int).tolist()
        images, labels = [], []
        try:
            for j, k in enumerate(ks):
                self.set_step(k)
                for line, i in zip(self.path_lines, self.path_index, strict=True):
                    line.set_data(self.points[ks[: j + 1], i, 0], self.points[ks[: j + 1], i, 1])
                self._title.set_text("")
                buffer = io.BytesIO()
                self.fig.savefig(buffer, format="png", dpi=dpi)
                images.append(Image.open(buffer).convert("RGB"))
                labels.append(self.label(k).replace("\n", ", "))
        finally:
            self.set_step(shown)
            self._title.set_text(title)
        return _player_html(images, labels, interval, colors)


def _palette_png(image: Image.Image, colors: int) -> bytes:
    """``image`` (RGB) as a PNG quantised to ``colors`` colours without dithering."""
    out = io.BytesIO()
    image.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return out.getvalue()


_PLAYER = """<div id="{id}" style="font: 12px sans-serif">
<div style="width: {w}px; height: {h}px; overflow: hidden">
<img alt="reverse trajectory" src="data:image/png;base64,{sheet}" style="max-width: none; margin-left: -{last_x}px">
</div>
<button type="button">play</button>
<input type="range" min="0" max="{end}" value="{end}" style="width: 55%; vertical-align: middle">
<span>{last_label}</span>
<script>
(function () {{
  const root = document.getElementById("{id}"), labels = {labels}, width = {w};
  const frame = root.querySelector("img"), slider = root.querySelector("input");
  const button = root.querySelector("button"), text = root.querySelector("span");
  let timer = null;
  function show(i) {{
    slider.value = i; frame.style.marginLeft = (-i * width) + "px"; text.textContent = labels[i];
  }}
  function stop() {{ clearInterval(timer); timer = null; button.textContent = "play"; }}
  slider.oninput = function () {{ stop(); show(+slider.value); }};
  button.onclick = function () {{
    if (timer) {{ stop(); return; }}
    if (+slider.value === labels.length - 1) show(0);
    button.textContent = "pause";
    timer = setInterval(function () {{
      if (+slider.value >= labels.length - 1) stop(); else show(+slider.value + 1);
    }}, {interval});
  }};
}})();
</script>
</div>"""


def _player_html(images: list[Image.Image], labels: list[str], interval: int, colors: int) -> str:
    """The HTML of a player over equal-sized ``images``: one PNG, the frames side by side, seen through a
    window one frame wide (the last frame until played)."""
    w, h = images[0].size
    sheet = Image.new("RGB", (w * len(images), h), "white")
    for j, image in enumerate(images):
        sheet.paste(image, (j * w, 0))
    return _PLAYER.format(id=f"labkit-player-{uuid.uuid4().hex}", w=w, h=h, last_x=w * (len(images) - 1),
                          sheet=base64.b64encode(_palette_png(sheet, colors)).decode(), end=len(images) - 1,
                          last_label=html.escape(labels[-1]), labels=json.dumps(labels), interval=interval)
