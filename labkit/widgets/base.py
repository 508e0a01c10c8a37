"""The shared frame of the widget apps: a figure built once, controls, an error area, and the two
small helpers every app uses (set a control without its callback; a moving average)."""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np

from ..train import one_torch_thread


def moving_average(values, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


class App:
    """Base of every widget app.

    Subclasses create ``self.fig``/axes and controls in ``__init__``, connect each control with
    :meth:`on_change`, and put their redraw logic in plain methods (``update`` etc.) that tests
    call directly. With the ipympl backend (``%matplotlib widget``) ``fig.canvas`` is itself a
    widget and redraws in place; with any other backend the figure is shown as an image and
    redrawn by ``draw_idle``.
    """

    def __init__(self, figsize=(6, 4), ncols: int = 1, nrows: int = 1, **subplot_kw):
        with plt.ioff():  # build the figure once, without letting pyplot display it on its own
            self.fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", **subplot_kw)
        self.axes = list(axes.flat) if hasattr(axes, "flat") else [axes]
        if hasattr(self.fig.canvas, "header_visible"):  # ipympl: keep the canvas compact
            self.fig.canvas.header_visible = False
            self.fig.canvas.footer_visible = False
            self.fig.canvas.toolbar_visible = False
        self.errors = W.Output(layout=W.Layout(width="100%"))
        self.last_error: str | None = None
        self._static: W.Output | None = None
        self._quiet = False
        try:  # the loop of the thread that built the app (a kernel's main loop); None in plain Python
            self._loop, self._thread = asyncio.get_running_loop(), threading.current_thread()
        except RuntimeError:
            self._loop, self._thread = None, None

    def on_change(self, control: W.Widget, method: Callable[[], None]) -> None:
        """Call ``method`` (no arguments) whenever ``control``'s value changes (unless set with
        :meth:`set_quietly`); errors go to the app."""
        control.observe(lambda change: None if self._quiet else self.guarded(method), names="value")

    def set_quietly(self, control: W.Widget, value) -> None:
        """Show ``value`` on ``control`` without running the app's callbacks (the caller updates)."""
        self._quiet = True
        try:
            control.value = value
        finally:
            self._quiet = False

    def guarded(self, method: Callable[[], None]) -> None:
        """Run ``method`` on the app's thread (on one torch thread: see :func:`labkit.train.one_torch_thread`);
        show any exception in the app's error area instead of losing it.

        JupyterLab 4.6 can deliver widget messages on a kernel subshell, another thread: a callback
        that arrives there is handed to the loop that built the app, so the figure and the app's
        state change on one thread only, and timers it sets (the lab's debounce) run on a live loop.
        """
        if self._loop is not None and threading.current_thread() is not self._thread:
            self._loop.call_soon_threadsafe(self.guarded, method)
            return
        try:
            with one_torch_thread():
                method()
        except Exception:
            self.last_error = traceback.format_exc()
            with self.errors:
                print(self.last_error)
        else:
            self.last_error = None

    def redraw(self) -> None:
        """Show the figure's current state.

        With ipympl and a page attached, draw now and push a full frame (not a diff): the front end
        drops a draw request that arrives while it waits for an image, and a diff frame it skips
        leaves the canvas stale for good, while a full frame repairs any frame before it. Without a
        page (tests, nbclient) ask for a draw only; the inline backend refreshes its image.
        """
        canvas = self.fig.canvas
        if isinstance(canvas, W.DOMWidget) and not getattr(canvas, "syncing_data_url", True):
            canvas._force_full = True  # ipympl: the page is there (it sent "initialized")
            canvas.draw()
        else:
            canvas.draw_idle()
        if self._static is not None:
            self._show_static()

    def controls(self) -> list[W.Widget]:
        """The control row(s) shown above the figure; subclasses override."""
        return []

    @property
    def widget(self) -> W.Widget:
        if isinstance(self.fig.canvas, W.DOMWidget):
            canvas = self.fig.canvas
        else:  # e.g. the inline backend: show the figure as an image that redraw() refreshes
            if self._static is None:
                self._static = W.Output()
                self._show_static()
            canvas = self._static
        return W.VBox([*self.controls(), canvas, self.errors])

    def _show_static(self) -> None:
        from IPython.display import display

        self._static.clear_output(wait=True)
        with self._static:
            display(self.fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
