"""Live training of the eps-MLP: Train and Stop buttons, a progress bar and a loss curve.

:meth:`TrainingApp.train` runs :func:`labkit.train.train` on the calling thread (what a notebook
executed headless, or a test, calls): every ``update_every`` steps it moves the progress bar and
sets the data of the existing loss lines (``Line2D.set_data``, rescale, ``draw_idle``). The Train
button runs the same training on a worker (:class:`~labkit.widgets.background.Background`), which
never touches the figure or the widgets: the kernel's loop redraws a few times a second. Stopping
ends training after the current step: the model keeps the weights of the last completed step and
``history`` holds exactly the completed steps.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from .. import schedules as _schedules
from .. import targets as _targets
from .._checks import check_float, check_int, check_seed
from ..model import EpsMLP
from ..train import DEFAULTS, new_model
from ..train import train as _train
from .background import Background
from .base import App, moving_average

__all__ = ["TrainingApp", "moving_average"]


class TrainingApp(App):
    """Train ``model`` (a fresh :class:`~labkit.model.EpsMLP` when None) on ``target`` under ``schedule``.

    ``steps`` is the default length of one Train click (editable in the app); each call continues
    from the current weights with a new data seed (``seed`` + number of earlier calls) and appends
    to ``history``. ``after_train`` holds callables run after every training call (e.g. to
    refresh a score-field app with the new weights), on the UI thread.
    """

    def __init__(self, target, schedule, model: EpsMLP | None = None, *, steps: int = 2000, seed: int = 0,
                 batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
                 p_uncond: float = DEFAULTS["p_uncond"], update_every: int = 100, window: int = 50,
                 refresh_s: float = 0.25, figsize=(6.0, 3.2)):
        self.target = _targets.get(target) if isinstance(target, str) else target
        if not isinstance(self.target, _targets.Target):
            raise TypeError(f"target must be a labkit Target or a name, got {type(target).__name__}")
        self.schedule = _schedules.get(schedule) if isinstance(schedule, str) else schedule
        if not isinstance(self.schedule, _schedules.Schedule):
            raise TypeError(f"schedule must be a labkit Schedule or a name, got {type(schedule).__name__}")
        if model is not None and not isinstance(model, EpsMLP):
            raise TypeError(f"model must be an EpsMLP or None, got {type(model).__name__}")
        steps = check_int("steps", steps, 1, 1_000_000)
        self.seed = check_seed(seed)
        self.train_kwargs = {"batch_size": check_int("batch_size", batch_size, 1, 1_000_000),
                             "lr": check_float("lr", lr, 0.0, 1.0, low_open=True),
                             "p_uncond": check_float("p_uncond", p_uncond, 0.0, 1.0)}
        self.update_every = check_int("update_every", update_every, 1, 1_000_000)
        self.window = check_int("window", window, 1, 1_000_000)
        refresh_s = check_float("refresh_s", refresh_s, 0.0, 60.0)
        self.model = model if model is not None else new_model(self.target, self.schedule, seed=self.seed)
        self.history: list[float] = []
        self.calls = 0
        self.after_train: list = []
        self.background = Background(lambda: self.guarded(self._refresh), refresh_s=refresh_s, name="labkit-train")
        self._run_open = False  # a background run whose end the UI has not shown yet
        self._call_start = self._call_steps = 0

        super().__init__(figsize=figsize)
        ax = self.ax = self.axes[0]
        (self.raw_line,) = ax.plot([], [], color="tab:blue", alpha=0.25, lw=0.8, label="loss per step")
        (self.avg_line,) = ax.plot([], [], color="tab:blue", lw=1.8, label=f"mean of last {self.window} steps")
        ax.set_xlabel("training step")
        ax.set_ylabel(r"$\|\epsilon - \epsilon_\theta(x_t, t, c)\|^2$ (mean)")
        ax.set_yscale("log")
        ax.set_xlim(0, steps)
        ax.set_ylim(0.1, 1.5)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper right", fontsize=8)
        self._title = ax.set_title(f"{self.target.name}: not trained yet")

        self.steps_box = W.BoundedIntText(value=steps, min=1, max=1_000_000, description="steps",
                                          layout=W.Layout(width="180px"))
        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = W.IntProgress(value=0, min=0, max=steps, description="progress")
        self.status = W.Label("step 0")
        self.train_button.on_click(lambda _: self.guarded(self.start))
        self.stop_button.on_click(lambda _: self.guarded(self.stop))

    # ---- plain methods (tests and headless notebooks call these) ----
    @property
    def running(self) -> bool:
        return self.background.running

    @property
    def thread(self):
        return self.background.thread

    def _begin(self, steps: int | None) -> dict:
        """Start a training call of ``steps`` (default: the steps box): counters, buttons, the arguments."""
        steps = self.steps_box.value if steps is None else check_int("steps", steps, 1, 1_000_000)
        self._call_start, self._call_steps = len(self.history), steps
        self.progress.max, self.progress.value = steps, 0
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.calls += 1
        return dict(steps=steps, seed=self.seed + self.calls - 1, history=self.history, **self.train_kwargs)

    def _end(self) -> None:
        self.train_button.disabled, self.stop_button.disabled = False, True
        self.update_plot()
        for fn in self.after_train:
            fn()

    def train(self, steps: int | None = None) -> list[float]:
        """Train on the calling thread for ``steps`` (default: the steps box); returns this call's losses."""
        if self.running:
            raise RuntimeError("a background training run is in progress: stop() it first")
        kwargs = self._begin(steps)
        self.background.stop_event.clear()
        try:
            _train(self.model, self.target, self.schedule, progress=False, callback=self._on_step,
                   stop=self.background.stop_event, **kwargs)
        finally:
            self._end()
        return self.history[self._call_start:]

    def start(self, steps: int | None = None):
        """Train in the background (the Train button); returns the thread, None if already running."""
        if self.running:
            return None
        self.background.train(self.model, self.target, self.schedule, **self._begin(steps))
        self._run_open = True
        return self.thread

    def stop(self) -> None:
        """End training after the current step (the Stop button) and show the end."""
        self.background.stop_event.set()
        if self.background.join(30.0):
            self._refresh()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background training call ends, then show its end."""
        if self.background.join(timeout):
            self._refresh()

    def _refresh(self) -> None:
        """On the UI thread: the plot of the current history, and the end of a finished background run (once)."""
        if self._run_open and not self.running:
            self._run_open = False
            self._end()
            if self.background.error:
                raise RuntimeError(f"training failed: {self.background.error}")
        else:
            self.update_plot()

    def update_plot(self) -> None:
        """Move the progress bar and the loss lines to the current history, then redraw."""
        h = np.asarray(self.history, dtype=np.float64)
        steps = np.arange(1, len(h) + 1)
        self.raw_line.set_data(steps, h)
        self.avg_line.set_data(steps, moving_average(h, self.window))
        done = len(h) - self._call_start
        self.progress.value = min(done, self.progress.max)
        if len(h):
            recent = float(h[-self.window:].mean())
            self.status.value = (f"step {done} / {self._call_steps} of this run, {len(h)} in all; "
                                 f"mean loss of the last {min(self.window, len(h))} steps {recent:.4f}")
            self._title.set_text(f"{self.target.name}: {len(h)} steps, recent loss {recent:.4f}")
            self.ax.set_xlim(0, max(len(h), self._call_start + self._call_steps) * 1.02)
            lo, hi = float(h.min()), float(h.max())
            self.ax.set_ylim(lo / 1.2, hi * 1.2)
        self.redraw()

    def _on_step(self, step: int, loss: float) -> None:
        if (step + 1) % self.update_every == 0:
            self.update_plot()

    def controls(self):
        return [W.HBox([self.steps_box, self.train_button, self.stop_button]), W.HBox([self.progress, self.status])]
