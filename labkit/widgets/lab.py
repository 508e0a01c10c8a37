"""The Diffusion Lab: one dashboard to train, sample, inspect the score field and measure quality.

Panels (one figure, built once, artists updated in place): 300 fresh target samples, the
model's samples (Sample), the score field s(x, t) = -eps(x, t, c) / sqrt(1 - abar_t) on a 16 x 16
grid at the t slider (guided by CFG, eps = (1 + w) eps_c - w eps_null, for a chosen class), the
training loss, and MMD^2 against NFE for DDIM and Heun (Quality vs steps).

Training runs in a background thread so the sliders stay live. The two threads never share a
model that is being changed: between optimiser steps the training thread publishes a frozen
copy of the weights (``view``), and every evaluation in the UI uses the latest copy. The
training thread uses one torch thread, so the two threads do not oversubscribe the cores, and it
never touches matplotlib or the widgets: it asks the kernel's event loop (the UI thread) to
refresh the panels. Outside a kernel (no running event loop) the panels refresh when
``train(blocking=True)``, ``stop()`` or ``refresh_training()`` is called.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time

import ipywidgets as W
import numpy as np
import torch

from .. import samplers as _samplers
from .. import schedules as _schedules
from .. import targets as _targets
from .. import train as _train
from .._checks import check_float, check_int
from ..fields import display_arrows, grid, score_field
from ..guidance import cfg
from ..plotting import plot_quality
from ..quality import DEFAULT_STEPS, run_quality
from .base import App

SAMPLER_LABELS = {"ddpm": "DDPM (T steps)", "ddim": "DDIM", "heun": "Heun (EDM)"}
MAX_STEPS = 128
MAX_W = 8.0
ALL = -1  # the class picker's value for "all classes" (a Dropdown shows None as no selection)
HOW_TO_READ = """
<b>How to read this.</b>
<b>Target</b>: 300 fresh samples of p(x, c), coloured by class.
<b>Samples</b>: the model's samples from fixed noise (press <i>Sample</i> after changing the sampler,
the step count N, the class or w); DDPM always takes T steps, Heun costs 2N - 1 network evaluations.
<b>Score field</b>: arrows of s(x, t) = -eps(x, t, c) / sqrt(1 - abar_t) at the noise level t, all scaled
so the longest spans one grid cell (the title gives the longest |s|); at small t they point sharply at
the data, at large t they point at the origin. With a class chosen, w > 0 pushes harder toward that
class. During training the field morphs from noise into the target's shape.
<b>Loss</b>: the training loss (raw and a running mean of 50 steps); it flattens at a level above 0
because eps cannot be predicted exactly from x_t.
<b>Quality vs steps</b>: MMD^2 between samples and fresh target points against network evaluations,
DDIM vs Heun, mean +- sd over seeds, with the noise floor band (two target batches compared):
a curve in the band means samples indistinguishable from the target at that sample size.
"""


def _colors(c: torch.Tensor | None, n: int) -> np.ndarray:
    """RGBA colours for class labels (tab10), grey when there are none."""
    import matplotlib

    if c is None:
        return np.tile(np.array([[0.35, 0.35, 0.35, 1.0]]), (n, 1))
    return matplotlib.colormaps["tab10"](c.numpy() % 10)


class LabApp(App):
    """The lab dashboard: target, sampler, class, w, steps and t controls; Train/Stop, Sample, Quality.

    ``target`` is a labkit target name, ``schedule`` a schedule name or Schedule. ``train_steps``
    Adam steps run per Train press (continuing from the current weights). ``n`` points are drawn
    for the target and sample panels; ``quality_n`` and ``quality_seeds`` set the size of the
    quality run. ``refresh_s`` is how often the panels refresh while training.
    """

    def __init__(self, target: str = "ring8", schedule="cosine", *, sampler: str = "heun", steps: int = 16,
                 t: int = 100, w: float = 0.0, cls: int | None = None, train_steps: int = 1500, n: int = 300,
                 size: int = 16, lim: float = 3.0, quality_n: int = 500, quality_seeds: int = 2, seed: int = 0,
                 refresh_s: float = 0.3):
        if target not in _targets.names():
            raise ValueError(f"target must be one of {_targets.names()}, got {target!r}")
        self.schedule = schedule if isinstance(schedule, _schedules.Schedule) else _schedules.get(schedule)
        if sampler not in SAMPLER_LABELS:
            raise ValueError(f"sampler must be one of {list(SAMPLER_LABELS)}, got {sampler!r}")
        steps = check_int("steps", steps, 1, MAX_STEPS)
        t = check_int("t", t, 0, self.schedule.T - 1)
        w = check_float("w", w, 0.0, MAX_W)
        self.n = check_int("n", n, 2, 100_000)
        self.size = check_int("size", size, 2, 100)
        self.lim = check_float("lim", lim, 0.0, 100.0, low_open=True)
        self.quality_n = check_int("quality_n", quality_n, 2, 100_000)
        self.quality_seeds = check_int("quality_seeds", quality_seeds, 1, 100)
        self.seed = check_int("seed", seed, 0, 2**62)
        self.refresh_s = check_float("refresh_s", refresh_s, 0.0, 60.0)
        train_steps = check_int("train_steps", train_steps, 1, 1_000_000)

        super().__init__(figsize=(9.6, 6.0), nrows=2, ncols=3)
        self._train_lock = threading.Lock()  # makes "is a training running? if not, start one" atomic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set before the training thread starts and cleared by it before its last refresh request,
        # so that refresh, even one queued earlier and run before the thread has exited, sees the end.
        self._running = False
        self._refresh_pending = False
        try:  # inside a kernel (JupyterLab, Voila) the UI thread runs an asyncio loop
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # plain Python (tests): the training thread refreshes under the lock
            self._loop = None
        self.presses = 0
        self.result = None  # the last SampleResult
        self.quality_result = None
        self.train_error: str | None = None
        self.history: list[float] = []
        self._run_total = 0

        self._build_controls(target, sampler, steps, t, w, train_steps)
        self._build_panels()
        self.change_target()
        if cls is not None:
            self.set_class(cls)

    # ----- construction -------------------------------------------------------------------
    def _build_controls(self, target, sampler, steps, t, w, train_steps):
        def tagged(widget, name):
            widget.add_class(f"lab-{name}")
            return widget

        wide = {"description_width": "initial"}
        self.target_picker = tagged(W.Dropdown(options=_targets.names(), value=target, description="target",
                                               style=wide, layout=W.Layout(width="200px")), "target")
        self.sampler_picker = tagged(W.Dropdown(options=[(v, k) for k, v in SAMPLER_LABELS.items()], value=sampler,
                                                description="sampler", style=wide, layout=W.Layout(width="210px")),
                                     "sampler")
        self.steps_slider = tagged(W.IntSlider(value=steps, min=1, max=MAX_STEPS, description="steps N",
                                               continuous_update=False, style=wide), "steps")
        self.class_picker = tagged(W.Dropdown(description="class", style=wide, layout=W.Layout(width="230px")),
                                   "class")
        self.w_slider = tagged(W.FloatSlider(value=w, min=0.0, max=MAX_W, step=0.25, description="CFG w",
                                             style=wide), "w")
        self.t_slider = tagged(W.IntSlider(value=t, min=0, max=self.schedule.T - 1, description="noise level t",
                                           style=wide, layout=W.Layout(width="420px")), "t")
        self.train_steps = tagged(W.BoundedIntText(value=train_steps, min=1, max=1_000_000, description="train steps",
                                                   style=wide, layout=W.Layout(width="180px")), "train-steps")
        self.train_button = tagged(W.Button(description="Train", icon="play", button_style="success"), "train")
        self.stop_button = tagged(W.Button(description="Stop", icon="stop", button_style="danger", disabled=True),
                                  "stop")
        self.sample_button = tagged(W.Button(description="Sample", icon="random", button_style="info"), "sample")
        self.quality_button = tagged(W.Button(description="Quality vs steps", icon="line-chart"), "quality")
        self.progress = tagged(W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="200px")), "progress")
        self.status = tagged(W.Label(value="untrained"), "status")
        self.help = tagged(W.HTML(value=HOW_TO_READ.strip().replace("\n<b>", "<br><b>")), "help")
        if isinstance(self.fig.canvas, W.DOMWidget):
            self.fig.canvas.add_class("lab-canvas")

        self.on_change(self.target_picker, self.change_target)
        self.on_change(self.sampler_picker, self._sync_controls)
        for control in (self.class_picker, self.w_slider, self.t_slider):
            self.on_change(control, self.update_field)
        self.on_change(self.class_picker, self._sync_controls)
        self.train_button.on_click(lambda _: self.guarded(lambda: self.train()))
        self.stop_button.on_click(lambda _: self.guarded(self.stop))
        self.sample_button.on_click(lambda _: self.guarded(self.sample))
        self.quality_button.on_click(lambda _: self.guarded(self.quality))

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
        self.target_points = ax_target.scatter(empty[:, 0], empty[:, 1], s=4, linewidths=0)
        self.sample_points = ax_samples.scatter(empty[:, 0], empty[:, 1], s=4, linewidths=0)
        ax_samples.set_title("samples: press Sample", fontsize=9)
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
        self._quality_placeholder()

    def _quality_placeholder(self):
        ax = self.ax["quality"]
        ax.clear()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "press Quality vs steps: MMD$^2$ of DDIM and Heun against NFE", ha="center",
                va="center", transform=ax.transAxes, color="0.4")

    def controls(self) -> list[W.Widget]:
        return [W.HBox([self.target_picker, self.sampler_picker, self.steps_slider]),
                W.HBox([self.class_picker, self.w_slider, self.t_slider]),
                W.HBox([self.train_steps, self.train_button, self.stop_button, self.progress, self.status]),
                W.HBox([self.sample_button, self.quality_button])]

    @property
    def widget(self) -> W.Widget:
        box = super().widget
        *body, errors = box.children
        box.children = (*body, self.help, errors)
        box.add_class("lab-app")
        return box

    # ----- state shared with the training thread ----------------------------------------------
    @property
    def training(self) -> bool:
        return self._running

    def _publish(self) -> None:
        """Freeze a copy of the current weights for the UI (training thread, between steps)."""
        view = copy.deepcopy(self.model)
        view.eval()
        view.requires_grad_(False)
        self.view = view  # one reference assignment: the UI sees the old or the new copy, never a mix

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

    # ----- plain methods (what the controls call; tests call them directly) -------------------
    def set_target(self, name: str) -> None:
        if name not in _targets.names():
            raise ValueError(f"target must be one of {_targets.names()}, got {name!r}")
        self.target_picker.value = name

    def set_sampler(self, name: str) -> None:
        if name not in SAMPLER_LABELS:
            raise ValueError(f"sampler must be one of {list(SAMPLER_LABELS)}, got {name!r}")
        self.sampler_picker.value = name

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
        """Stop any training; a fresh model, loss history and panels for the picked target."""
        self.stop()
        self.target = _targets.get(self.target_picker.value)
        self.model = _train.new_model(self.target, self.schedule, seed=self.seed)
        self.model.eval()
        self.history = []
        self.presses = self._run_total = 0
        self._publish()
        options = [("all classes (unconditional)", ALL)] + [
            (f"{i}: {name}", i) for i, name in enumerate(self.target.class_names)]
        self.class_picker.options = options
        self.class_picker.value = ALL
        x, c = self.target.sample(self.n, torch.Generator().manual_seed(self.seed))
        self.target_points.set_offsets(x.numpy())
        self.target_points.set_color(_colors(c, len(c)))
        self.ax["target"].set_title(f"target: {self.target.name} ({self.n} samples)", fontsize=9)
        self.field_points.set_offsets(x.numpy())
        self.sample_points.set_offsets(np.zeros((0, 2)))
        self.ax["samples"].set_title("samples: press Sample", fontsize=9)
        self.quality_result = None
        self._quality_placeholder()
        self._sync_controls()
        self.refresh_training()

    def _sync_controls(self) -> None:
        self.steps_slider.disabled = self.sampler_picker.value == "ddpm"
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

    def sample(self) -> _samplers.SampleResult:
        """Sample n points from fixed noise with the chosen sampler, steps, class and w."""
        name, steps = self.sampler_picker.value, self.steps_slider.value
        g = torch.Generator().manual_seed(self.seed + 1)
        noise = torch.randn(self.n, 2, generator=g)
        with _train.one_torch_thread():
            result = _samplers.run(name, self.eps_fn(), self.schedule, noise, steps, generator=g,
                                  keep_trajectory=False)
        cls = self.chosen_class
        self.result = result
        x = torch.nan_to_num(result.x, nan=0.0, posinf=1e3, neginf=-1e3)
        self.sample_points.set_offsets(x.numpy())
        labels = None if cls is None else torch.full((self.n,), cls)
        self.sample_points.set_color(_colors(labels, self.n))
        n_steps = self.schedule.T if name == "ddpm" else steps
        who = "all classes" if cls is None else f"class {cls}, w = {self.w_slider.value:g}"
        outside = int((x.abs() > self.lim).any(dim=1).sum())
        note = f"\n{outside} of {self.n} points outside the view" if outside else ""
        self.ax["samples"].set_title(f"{name}, N = {n_steps} ({result.nfe} NFE), {who}{note}", fontsize=9)
        self.redraw()
        return result

    def quality(self) -> dict:
        """MMD^2 vs NFE for DDIM and Heun over N in {4, ..., 128} (unconditional model), with the floor."""
        model = self.view
        with _train.one_torch_thread():
            result = run_quality(cfg(model, None, 0.0), self.target, self.schedule, samplers=("ddim", "heun"),
                                 steps=DEFAULT_STEPS, n=self.quality_n, seeds=self.quality_seeds, seed=self.seed,
                                 progress=False)
        self.quality_result = result
        ax = self.ax["quality"]
        ax.clear()
        ax.set_axis_on()
        plot_quality(result, ax, x_axis="nfe")
        ax.title.set_fontsize(9)
        self.redraw()
        return result

    def train(self, steps: int | None = None, blocking: bool = False) -> bool:
        """Start training in a background thread; False (and nothing started) if one is running.

        ``steps`` defaults to the "train steps" box. ``blocking=True`` waits for the end.
        """
        steps = self.train_steps.value if steps is None else check_int("steps", steps, 1, 1_000_000)
        with self._train_lock:
            if self.training:
                return False
            self._stop.clear()
            self.presses += 1
            self._run_total = len(self.history) + steps
            self.train_error = None
            args = (self.model, self.target, self.history, steps, self.seed + self.presses)
            self._thread = threading.Thread(target=self._train_worker, args=args, name="labkit-lab-train", daemon=True)
            self._running = True
            self._thread.start()
        self.train_button.disabled = True
        self.stop_button.disabled = False
        if blocking:
            self._thread.join()
            self.refresh_training()
        return True

    def stop(self, timeout: float = 30.0) -> int:
        """Stop training after the current step and wait for it; returns the number of steps so far."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"training did not stop within {timeout} s")
        if self._thread is not None:
            self.refresh_training()
        return len(self.history)

    def _train_worker(self, model, target, history, steps, seed):
        torch.set_num_threads(1)  # this thread's torch ops; the UI thread keeps its own setting
        last = time.perf_counter()

        def on_step(step, loss):
            nonlocal last
            if time.perf_counter() - last >= self.refresh_s:
                last = time.perf_counter()
                self._publish()
                self._request_refresh()

        try:
            _train.train(model, target, self.schedule, steps=steps, seed=seed, history=history,
                         progress=False, callback=on_step, stop=self._stop)
        except Exception as error:  # shown in the app, like any callback error
            self.train_error = f"training failed: {type(error).__name__}: {error}"
            self.errors.append_stdout(self.train_error + "\n")
        finally:
            if model is self.model:  # not replaced by a target change meanwhile
                self._publish()
            self._running = False
            self._request_refresh()

    def _request_refresh(self) -> None:
        """Ask the UI thread to refresh the panels (at most one request waiting at a time)."""
        if self._loop is None:  # no UI loop to hand the refresh to: train(blocking) / stop() refresh at the end
            return
        if self._refresh_pending:
            return
        self._refresh_pending = True
        try:
            self._loop.call_soon_threadsafe(self._refresh_from_loop)
        except RuntimeError:  # the loop is closed (kernel shutting down)
            self._refresh_pending = False

    def _refresh_from_loop(self) -> None:
        self._refresh_pending = False
        self.guarded(self.refresh_training)

    def refresh_training(self) -> None:
        """Show the training state: step counter, loss curve and the score field of the latest weights."""
        history = list(self.history)
        training = self.training
        done = len(history)
        total = max(self._run_total, done, 1)
        self.progress.max = total
        self.progress.value = min(done, total)
        state = "training" if training else ("stopped" if self._stop.is_set() else "done")
        loss = f", loss {np.mean(history[-50:]):.4f}" if history else ""
        self.status.value = f"step {done} / {total}{loss} ({state})" if done or training else "untrained"
        self.train_button.disabled = training
        self.stop_button.disabled = not training
        steps = np.arange(1, done + 1)
        self.loss_raw.set_data(steps, history)
        if done:
            window = min(50, done)
            mean = np.convolve(history, np.ones(window) / window, mode="valid")
            self.loss_mean.set_data(steps[window - 1:], mean)
            ax = self.ax["loss"]
            ax.set_xlim(0, max(100, done))
            low, high = min(history), max(history)
            ax.set_ylim(max(low * 0.8, 1e-4), high * 1.25)
        else:
            self.loss_mean.set_data([], [])
        self.update_field()
