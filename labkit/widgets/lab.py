"""The Diffusion Lab: one dashboard to train, sample, inspect the score field and measure quality.

Panels (one figure, built once, artists updated in place): 300 fresh target samples, the
model's samples from fixed noise (re-rendered when the sampler, grid, steps N, class or w change,
debounced on the kernel's loop), the score field s(x, t) = -eps(x, t, c) / sqrt(1 - abar_t) on a
16 x 16 grid at the t slider (guided by CFG, eps = (1 + w) eps_c - w eps_null, for a chosen class),
the training loss, and MMD^2 against NFE (Quality vs steps).

Training and the quality run go to background workers
(:class:`~labkit.widgets.background.Background`) so the sliders stay live. The workers never
touch matplotlib or the widgets: between optimiser steps the training worker publishes a frozen
copy of the weights (``view``), every evaluation in the UI uses the latest copy, and the kernel's
loop redraws. Each target keeps its own model for the session. Outside a kernel (no running
event loop) the panels refresh when ``train(blocking=True)``, ``stop()`` or ``refresh_training()``
is called, and controls re-render the samples at once.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from .. import samplers as _samplers
from .. import schedules as _schedules
from .. import targets as _targets
from .. import train as _train
from .._checks import check_float, check_int, check_seed
from ..fields import display_arrows, grid, score_field
from ..guidance import cfg
from ..plotting import plot_quality
from ..quality import DEFAULT_STEPS, first_at_floor, run_quality
from .background import Background, frozen
from .base import App, moving_average

MAX_STEPS = 128
MAX_W = 8.0
ALL = -1  # the class picker's value for "all classes" (a Dropdown shows None as no selection)
HOW_TO_READ = """
<b>How to read this.</b>
<b>Target</b>: 300 fresh samples of p(x, c), coloured by class; the samples and the score field share its axes.
<b>Samples</b>: the model's samples from fixed noise, re-drawn when you change the sampler, the grid, the
step count N, the class or w (and after training); the title names the model and its training steps.
DDPM takes every timestep below sigma_max, Heun costs 2N - 1 network evaluations.
<b>Score field</b>: arrows of s(x, t) = -eps(x, t, c) / sqrt(1 - abar_t) at the noise level t, all scaled
so the longest spans one grid cell (the title gives the longest |s|); at small t they point sharply at
the data, at large t they point at the origin. With a class chosen, w > 0 pushes harder toward that
class. During training the field morphs from noise into the target's shape.
<b>Loss</b>: the training loss (raw and a running mean of 50 steps), averaged over t; it flattens above 0:
near t = 0 the tiny noise in x_t is hidden in the data's own spread, so eps cannot be predicted (an
irreducible loss of about 1), while at t = T-1 x_t is almost eps itself (about 0).
<b>Quality vs steps</b>: MMD^2 between samples of the unconditional model and fresh target points against
network evaluations, mean +- sd over seeds, with the noise floor band (two target batches compared);
it runs in the background (Cancel stops it).
"""


def _colors(c: torch.Tensor | None, n: int) -> np.ndarray:
    """RGBA colours for class labels (tab10), grey when there are none."""
    import matplotlib

    if c is None:
        return np.tile(np.array([[0.35, 0.35, 0.35, 1.0]]), (n, 1))
    return matplotlib.colormaps["tab10"](c.numpy() % 10)


class Trained:
    """One target's model in the session: the weights being trained, the frozen copy the panels
    evaluate (``view``), the loss history and the number of Train presses."""

    def __init__(self, model):
        self.model, self.view = model, frozen(model)
        self.history: list[float] = []
        self.presses = self.run_total = 0


class LabApp(App):
    """The lab dashboard: target, sampler, grid, class, w, steps and t controls; Train/Stop, Sample,
    Quality/Cancel.

    ``target`` is a labkit target name (2-D), ``schedule`` a schedule name or Schedule, ``sampler``
    a name of :data:`labkit.samplers.SAMPLERS` and ``grid`` one of :data:`labkit.samplers.GRIDS`.
    ``train_steps`` Adam steps run per Train press (continuing from the current weights). ``n``
    points are drawn for the target and sample panels; ``quality_n``, ``quality_seeds`` and
    ``quality_samplers`` set the quality run. ``refresh_s`` is how often the panels refresh while
    a worker runs; ``debounce_s`` how long the samples wait for the controls to settle.
    """

    def __init__(self, target: str = "ring8", schedule="cosine", *, sampler: str = "heun", grid: str = "karras",
                 steps: int = 16, t: int = 100, w: float = 0.0, cls: int | None = None, train_steps: int = 1500,
                 n: int = 300, size: int = 16, lim: float = 3.0, quality_n: int = 500, quality_seeds: int = 2,
                 quality_samplers=("ddim", "heun"), seed: int = 0, refresh_s: float = 0.3,
                 debounce_s: float = 0.15):
        self._check_target(target)
        self.schedule = schedule if isinstance(schedule, _schedules.Schedule) else _schedules.get(schedule)
        _samplers.check_sampler(sampler)
        _samplers.check_grid(grid)
        steps = check_int("steps", steps, 1, MAX_STEPS)
        t = check_int("t", t, 0, self.schedule.T - 1)
        w = check_float("w", w, 0.0, MAX_W)
        self.n = check_int("n", n, 2, 100_000)
        self.size = check_int("size", size, 2, 100)
        self.lim = check_float("lim", lim, 0.0, 100.0, low_open=True)
        self.quality_n = check_int("quality_n", quality_n, 2, 100_000)
        self.quality_seeds = check_int("quality_seeds", quality_seeds, 1, 100)
        self.quality_samplers = tuple(quality_samplers)
        for name in self.quality_samplers:
            _samplers.check_sampler(name, "quality_samplers")
        self.seed = check_seed(seed)
        refresh_s = check_float("refresh_s", refresh_s, 0.0, 60.0)
        self.debounce_s = check_float("debounce_s", debounce_s, 0.0, 10.0)
        train_steps = check_int("train_steps", train_steps, 1, 1_000_000)

        super().__init__(figsize=(9.6, 6.0), nrows=2, ncols=3)
        self.trainer = Background(lambda: self.guarded(self.refresh_training), refresh_s=refresh_s,
                                  name="labkit-lab-train")
        self.measurer = Background(lambda: self.guarded(self.refresh_quality), refresh_s=refresh_s,
                                   name="labkit-lab-quality")
        self.models: dict[str, Trained] = {}  # one model per target, kept for the session
        self.result = None  # the last SampleResult
        self.quality_result = None
        self.train_error: str | None = None
        self._pending_samples = None  # the timer of a debounced sample re-render
        self._samples_of = None  # (target, training steps) of the model the samples panel shows
        self._quality_done = (0, 1)
        self._quality_about = ""
        self._quality_open = False  # a quality run whose end the UI has not shown yet

        self._build_controls(target, sampler, grid, steps, t, w, train_steps)
        self._build_panels()
        self.change_target()
        if cls is not None:
            self.set_class(cls)

    # ----- construction -------------------------------------------------------------------
    def _build_controls(self, target, sampler, grid_name, steps, t, w, train_steps):
        def tagged(widget, name):
            widget.add_class(f"lab-{name}")
            return widget

        wide = {"description_width": "initial"}
        registry = _samplers.SAMPLERS
        self.target_picker = tagged(W.Dropdown(options=_targets.names(2), value=target, description="target",
                                               style=wide, layout=W.Layout(width="200px")), "target")
        self.sampler_picker = tagged(W.Dropdown(options=[(info.label, name) for name, info in registry.items()],
                                                value=sampler, description="sampler", style=wide,
                                                layout=W.Layout(width="240px")), "sampler")
        self.grid_picker = tagged(W.Dropdown(options=list(_samplers.GRIDS), value=grid_name, description="grid",
                                             style=wide, layout=W.Layout(width="150px")), "grid")
        self.steps_slider = tagged(W.IntSlider(value=steps, min=1, max=MAX_STEPS, description="steps N",
                                               continuous_update=False, style=wide), "steps")
        self.class_picker = tagged(W.Dropdown(description="class", style=wide, layout=W.Layout(width="230px")),
                                   "class")
        # w sends its value on release, like N: during a continuous drag the kernel, busy redrawing for
        # each position, was seen to keep an intermediate w (the readout said 4.00, the kernel 4.75)
        self.w_slider = tagged(W.FloatSlider(value=w, min=0.0, max=MAX_W, step=0.25, description="CFG w",
                                             continuous_update=False, style=wide), "w")
        self.t_slider = tagged(W.IntSlider(value=t, min=0, max=self.schedule.T - 1, description="noise level t",
                                           style=wide, layout=W.Layout(width="420px")), "t")
        self.train_steps = tagged(W.BoundedIntText(value=train_steps, min=1, max=1_000_000, description="train steps",
                                                   style=wide, layout=W.Layout(width="180px")), "train-steps")
        self.train_button = tagged(W.Button(description="Train", icon="play", button_style="success"), "train")
        self.stop_button = tagged(W.Button(description="Stop", icon="stop", button_style="danger", disabled=True),
                                  "stop")
        self.sample_button = tagged(W.Button(description="Sample", icon="random", button_style="info"), "sample")
        self.quality_button = tagged(W.Button(description="Quality vs steps", icon="line-chart"), "quality")
        self.cancel_button = tagged(W.Button(description="Cancel", icon="times", disabled=True), "cancel")
        self.progress = tagged(W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="200px")), "progress")
        self.status = tagged(W.Label(value="untrained"), "status")
        self.quality_progress = tagged(W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="200px")),
                                       "quality-progress")
        self.quality_status = tagged(W.Label(value=""), "quality-status")
        self.help = tagged(W.HTML(value=HOW_TO_READ.strip().replace("\n<b>", "<br><b>")), "help")
        if isinstance(self.fig.canvas, W.DOMWidget):
            self.fig.canvas.add_class("lab-canvas")

        self.on_change(self.target_picker, self.change_target)
        for control in (self.sampler_picker, self.class_picker):
            self.on_change(control, self._sync_controls)
        for control in (self.class_picker, self.w_slider, self.t_slider):
            self.on_change(control, self.update_field)
        for control in (self.sampler_picker, self.grid_picker, self.steps_slider, self.class_picker, self.w_slider):
            self.on_change(control, self.samples_changed)
        self.train_button.on_click(lambda _: self.guarded(lambda: self.train()))
        self.stop_button.on_click(lambda _: self.guarded(self.stop))
        self.sample_button.on_click(lambda _: self.guarded(self.sample))
        self.quality_button.on_click(lambda _: self.guarded(lambda: self.quality()))
        self.cancel_button.on_click(lambda _: self.guarded(self.cancel_quality))

    def _build_panels(self):
        ax_target, ax_samples, ax_field, ax_loss, ax_q1, ax_q2 = self.axes
        gs = ax_q1.get_subplotspec().get_gridspec()
        ax_q1.remove()
        ax_q2.remove()
        ax_quality = self.fig.add_subplot(gs[1, 1:])
        self.ax = {"target": ax_target, "samples": ax_samples, "field": ax_field, "loss": ax_loss,
                   "quality": ax_quality}
        empty = np.zeros((0, 2))
        for name in ("target", "samples", "field"):
            ax = self.ax[name]
            ax.set_xlim(-self.lim, self.lim)
            ax.set_ylim(-self.lim, self.lim)
            ax.set_aspect("equal")
            if name != "target":  # the target's axes serve all three: fewer labels to draw at each slider move
                ax.set_xticks([])
                ax.set_yticks([])
        self.target_points = ax_target.scatter(empty[:, 0], empty[:, 1], s=4, linewidths=0)
        self.sample_points = ax_samples.scatter(empty[:, 0], empty[:, 1], s=4, linewidths=0)
        self.field_points = ax_field.scatter(empty[:, 0], empty[:, 1], s=3, linewidths=0, color="0.8")
        self.points = grid(self.lim, self.size)
        zeros = np.zeros(len(self.points))
        self.quiver = ax_field.quiver(self.points[:, 0].numpy(), self.points[:, 1].numpy(), zeros, zeros,
                                      angles="xy", scale_units="xy", scale=1.0, width=0.006, color="tab:blue")
        (self.loss_raw,) = ax_loss.plot([], [], color="tab:gray", lw=0.5, alpha=0.6, label="loss")
        (self.loss_mean,) = ax_loss.plot([], [], color="tab:red", lw=1.5, label="running mean (50)")
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("training step")
        ax_loss.set_title("training loss", fontsize=9)
        ax_loss.set_xlim(0, 100)
        ax_loss.set_ylim(0.1, 1.5)
        ax_loss.legend(fontsize=8, loc="upper right")
        # Constrained layout costs half of every draw; the lab lays out when titles or ticks change shape
        # (a new target, the end of a training run, the quality chart), not on every slider move.
        self._layout = self.fig.get_layout_engine()
        self.fig.set_layout_engine("none")
        self._quality_placeholder()

    def _relayout(self) -> None:
        self._layout.execute(self.fig)

    def _quality_placeholder(self, text: str = "press Quality vs steps: MMD$^2$ against NFE") -> None:
        ax = self.ax["quality"]
        ax.clear()
        ax.set_axis_off()
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
        self._relayout()

    def controls(self) -> list[W.Widget]:
        return [W.HBox([self.target_picker, self.sampler_picker, self.grid_picker, self.steps_slider]),
                W.HBox([self.class_picker, self.w_slider, self.t_slider]),
                W.HBox([self.train_steps, self.train_button, self.stop_button, self.progress, self.status]),
                W.HBox([self.sample_button, self.quality_button, self.cancel_button, self.quality_progress,
                        self.quality_status])]

    @property
    def widget(self) -> W.Widget:
        box = super().widget
        *body, errors = box.children
        box.children = (*body, self.help, errors)
        box.add_class("lab-app")
        return box

    # ----- state ------------------------------------------------------------------------------
    @property
    def trained(self) -> Trained:
        """The picked target's model, its frozen view and its loss history."""
        return self.models[self.target.name]

    @property
    def model(self):
        return self.trained.model

    @property
    def view(self):
        return self.trained.view

    @property
    def history(self) -> list[float]:
        return self.trained.history

    @property
    def training(self) -> bool:
        return self.trainer.running

    @property
    def chosen_class(self) -> int | None:
        """The class picked (None: all classes, the unconditional model)."""
        value = self.class_picker.value
        return None if value == ALL else value

    def eps_fn(self, model=None):
        """The eps function the panels use: CFG with the chosen class and w (unconditional for all classes)."""
        model = self.view if model is None else model
        cls = self.chosen_class
        if cls is None:
            return cfg(model, None, 0.0)
        return cfg(model, cls, self.w_slider.value)

    # ----- checks -----------------------------------------------------------------------------
    @staticmethod
    def _check_target(name) -> str:
        if name not in _targets.names(2):
            raise ValueError(f"target must be one of {_targets.names(2)}, got {name!r}")
        return name

    # ----- plain methods (what the controls call; tests call them directly) -------------------
    def set_target(self, name: str) -> None:
        self.target_picker.value = self._check_target(name)

    def set_sampler(self, name: str) -> None:
        self.sampler_picker.value = _samplers.check_sampler(name)

    def set_grid(self, name: str) -> None:
        self.grid_picker.value = _samplers.check_grid(name)

    def set_steps(self, steps: int) -> None:
        self.steps_slider.value = check_int("steps", steps, 1, MAX_STEPS)

    def set_class(self, cls: int | None) -> None:
        """Choose a class (0..num_classes-1) or None for all classes (unconditional)."""
        if cls is not None:
            cls = check_int("cls", cls, 0, self.target.num_classes - 1)
        self.class_picker.value = ALL if cls is None else cls

    def set_w(self, w: float) -> None:
        self.w_slider.value = check_float("w", w, 0.0, MAX_W)

    def set_t(self, t: int) -> None:
        self.t_slider.value = check_int("t", t, 0, self.schedule.T - 1)

    def change_target(self) -> None:
        """Stop the workers; show the picked target with its model (a fresh one the first time)."""
        self.stop()
        self.cancel_quality()
        self.target = _targets.get(self.target_picker.value)
        if self.target.name not in self.models:
            self.models[self.target.name] = Trained(_train.new_model(self.target, self.schedule, seed=self.seed))
        options = [("all classes (unconditional)", ALL)] + [
            (f"{i}: {name}", i) for i, name in enumerate(self.target.class_names)]
        self.set_quietly(self.class_picker, None)  # the old value may not be among the new options
        self.class_picker.options = options
        self.set_quietly(self.class_picker, ALL)
        x, c = self.target.sample(self.n, torch.Generator().manual_seed(self.seed))
        self.target_points.set_offsets(x.numpy())
        self.target_points.set_color(_colors(c, len(c)))
        self.ax["target"].set_title(f"target: {self.target.name} ({self.n} samples)", fontsize=9)
        self.field_points.set_offsets(x.numpy())
        self.quality_result = None
        self._quality_placeholder()
        self._sync_controls()
        self._samples_of = None
        self.refresh_training()  # the loss, the field and (as the samples show another model) the samples

    def _sync_controls(self) -> None:
        takes_steps = _samplers.SAMPLERS[self.sampler_picker.value].takes_steps
        self.steps_slider.disabled = self.grid_picker.disabled = not takes_steps
        self.w_slider.disabled = self.chosen_class is None  # guidance needs a class

    def update_field(self) -> None:
        """Re-draw the score-field arrows at the t slider with the latest weights."""
        t = self.t_slider.value
        with _train.one_torch_thread():
            s = score_field(self.eps_fn(), self.schedule, t, self.points)
        arrows, _ = display_arrows(s, 2 * self.lim / (self.size - 1))
        self.quiver.set_UVC(arrows[:, 0].numpy(), arrows[:, 1].numpy())
        longest = float(torch.nan_to_num(s).norm(dim=1).max())
        sigma = float(self.schedule.sigmas[t])
        self.ax["field"].set_title(f"score at t = {t} (sigma = {sigma:.3g})\nlongest |s| = {longest:.3g}", fontsize=9)
        self.redraw()

    def samples_changed(self) -> None:
        """Re-render the samples once the controls have settled for ``debounce_s`` (several changes,
        one render), on the kernel's loop, so t slider messages are handled in between; at once
        without a loop."""
        loop = self.trainer.loop
        if loop is None:
            self.sample()
            return
        if self._pending_samples is not None:
            self._pending_samples.cancel()
        self._pending_samples = loop.call_later(self.debounce_s, lambda: self.guarded(self.sample))

    def sample(self) -> _samplers.SampleResult:
        """Sample n points from fixed noise with the chosen sampler, grid, steps, class and w."""
        if self._pending_samples is not None:
            self._pending_samples.cancel()
            self._pending_samples = None
        name, grid_name, steps = self.sampler_picker.value, self.grid_picker.value, self.steps_slider.value
        info = _samplers.SAMPLERS[name]
        g = torch.Generator().manual_seed(self.seed + 1)
        noise = torch.randn(self.n, 2, generator=g)
        kwargs = {"grid": grid_name} if info.takes_steps else {}
        with _train.one_torch_thread():
            result = _samplers.run(name, self.eps_fn(), self.schedule, noise, steps, generator=g,
                                   keep_trajectory=False, **kwargs)
        cls, done = self.chosen_class, len(self.history)
        self.result, self._samples_of = result, (self.target.name, done)
        x = torch.nan_to_num(result.x, nan=0.0, posinf=1e3, neginf=-1e3)
        self.sample_points.set_offsets(x.numpy())
        self.sample_points.set_color(_colors(None if cls is None else torch.full((self.n,), cls), self.n))
        how = f"N = {steps}, {grid_name} grid" if info.takes_steps else f"N = {result.nfe}"
        who = "all classes (unconditional)" if cls is None else f"class {cls}, w = {self.w_slider.value:g}"
        outside = int((x.abs() > self.lim).any(dim=1).sum())
        note = f", {outside} outside the view" if outside else ""
        self.ax["samples"].set_title(f"{self.target.name} model after {done} training steps\n{info.label}, {how} "
                                     f"({result.nfe} NFE)\n{who}{note}", fontsize=8)
        self.redraw()
        return result

    def quality(self, blocking: bool = False) -> bool:
        """Start MMD^2 vs NFE of the unconditional model (frozen now) in the background; False if one runs."""
        if self.measurer.running:
            return False
        eps_fn, grid_name, done = cfg(self.view, None, 0.0), self.grid_picker.value, len(self.history)
        self._quality_about = f"unconditional {self.target.name} model after {done} training steps, {grid_name} grid"
        self._quality_done = (0, len(self.quality_samplers) * len(DEFAULT_STEPS) * self.quality_seeds)

        def progress(done, total):
            self._quality_done = (done, total)
            if self.measurer.due():
                self.measurer.request_refresh()

        self.measurer.start(lambda: run_quality(
            eps_fn, self.target, self.schedule, samplers=self.quality_samplers, steps=DEFAULT_STEPS,
            n=self.quality_n, seeds=self.quality_seeds, seed=self.seed, progress=False, grid=grid_name,
            callback=progress, stop=self.measurer.stop_event))
        self._quality_open = True
        self.refresh_quality()
        if blocking:
            self.measurer.join()
            self.refresh_quality()
        return True

    def cancel_quality(self) -> None:
        """Stop a quality run after its current sampler run (the Cancel button)."""
        self.measurer.stop()
        if self._quality_open:
            self.refresh_quality()

    def refresh_quality(self) -> None:
        """Show the quality run: its progress, then (once) its chart, or that it was cancelled."""
        done, total = self._quality_done
        self.quality_progress.max, self.quality_progress.value = max(total, 1), min(done, total)
        running = self.measurer.running
        self.quality_button.disabled, self.cancel_button.disabled = running, not running
        if running:
            self.quality_status.value = f"measuring {done} / {total} runs: {self._quality_about}"
            return
        if not self._quality_open:
            return
        self._quality_open = False
        result, error = self.measurer.result, self.measurer.error
        if error is not None:
            self.quality_status.value = "quality failed"
            raise RuntimeError(f"quality failed: {error}")
        if result is None or result.get("cancelled"):
            self.quality_status.value = f"cancelled after {done} / {total} runs"
            self._quality_placeholder(f"quality cancelled after {done} of {total} runs")
            self.redraw()
            return
        self.quality_result = result
        self.quality_status.value = f"done: {self._quality_about}"
        self._draw_quality(result)

    def _draw_quality(self, result: dict) -> None:
        ax = self.ax["quality"]
        ax.clear()
        ax.set_axis_on()
        plot_quality(result, ax, x_axis="nfe")
        firsts = {name: first_at_floor(result, name) for name in dict.fromkeys(r["sampler"] for r in result["records"])}
        verdict = ", ".join(f"{name} from {r['nfe']} NFE" for name, r in firsts.items() if r) or "none"
        at = f"\nat the floor (at_floor): {verdict}" if any("at_floor" in r for r in result["records"]) else ""
        ax.set_title(f"{ax.get_title()}\n{self._quality_about}{at}", fontsize=8)
        self._relayout()
        self.redraw()

    def train(self, steps: int | None = None, blocking: bool = False) -> bool:
        """Start training in the background with the target's recipe (:func:`labkit.train.recipe`); False (and
        nothing started) if one is running. ``steps`` defaults to the "train steps" box; ``blocking=True`` waits
        for the end.
        """
        steps = self.train_steps.value if steps is None else check_int("steps", steps, 1, 1_000_000)
        trained = self.trained
        if self.training:
            return False
        trained.presses += 1
        trained.run_total = len(trained.history) + steps
        self.train_error = None

        def publish(view):
            trained.view = view

        settings = {k: v for k, v in _train.recipe(self.target).items() if k not in (*_train.MODEL_KEYS, "steps")}
        self.trainer.train(trained.model, self.target, self.schedule, steps=steps, seed=self.seed + trained.presses,
                           history=trained.history, publish=publish, **settings)  # the target's recipe, but steps
        self.train_button.disabled = True
        self.stop_button.disabled = False
        if blocking:
            self.trainer.join()
            self.refresh_training()
        return True

    def stop(self, timeout: float = 30.0) -> int:
        """Stop training after the current step and wait for it; returns the number of steps so far."""
        self.trainer.stop(timeout)
        if self.trainer.thread is not None:
            self.refresh_training()
        return len(self.history) if self.models else 0

    def refresh_training(self) -> None:
        """Show the training state: step counter, loss curve and the score field of the latest weights
        (and the samples, re-rendered, once a run has ended)."""
        history = list(self.history)
        training = self.training
        done = len(history)
        total = max(self.trained.run_total, done, 1)
        self.progress.max = total
        self.progress.value = min(done, total)
        state = "training" if training else ("stopped" if done < self.trained.run_total else "done")
        loss = f", loss {np.mean(history[-50:]):.4f}" if history else ""
        self.status.value = f"step {done} / {total}{loss} ({state})" if done or training else "untrained"
        self.train_button.disabled = training
        self.stop_button.disabled = not training
        steps = np.arange(1, done + 1)
        self.loss_raw.set_data(steps, history)
        self.loss_mean.set_data(steps, moving_average(history, 50))
        if done:
            ax = self.ax["loss"]
            ax.set_xlim(0, max(100, done))
            ax.set_ylim(max(min(history) * 0.8, 1e-4), max(history) * 1.25)
        if self.trainer.error is not None and not training and self.train_error is None:
            self.train_error = f"training failed: {self.trainer.error}"
            self.errors.append_stdout(self.train_error + "\n")
        if not training:
            self._relayout()
        self.update_field()
        if not training and self._samples_of != (self.target.name, done):
            self.samples_changed()
