"""Work in the background while the widgets stay live: training (chapter 3, the lab) and the lab's
quality run.

The rule: the worker thread runs torch on one thread and touches no matplotlib artist and no
widget. When there is something new to show it asks the UI loop to call ``refresh``; the UI loop
is the asyncio loop running where the :class:`Background` was made (the kernel's own loop, in
JupyterLab and Voila), so every redraw happens on the kernel's thread. Without a running loop
(plain Python, tests) requests are dropped: the caller refreshes after :meth:`Background.join`.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Callable

import torch

from .. import train as _train


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` for evaluation only (eval mode, no gradients), unaffected by later steps."""
    view = copy.deepcopy(model)
    view.eval()
    view.requires_grad_(False)
    return view


class Background:
    """One job at a time on a worker thread; ``refresh`` (no arguments) runs on the UI loop.

    ``running`` is set before the worker starts and cleared by it before its last refresh request,
    so a refresh that runs before the thread has exited already sees the end. ``refresh_s`` is the
    shortest interval between two refresh requests (:meth:`due`); ``error`` holds a failed job's
    message, ``result`` a finished job's return value.
    """

    def __init__(self, refresh: Callable[[], None], *, refresh_s: float = 0.3, name: str = "labkit-background"):
        self.refresh, self.refresh_s, self.name = refresh, refresh_s, name
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.running = False
        self.error: str | None = None
        self.result = None
        self._lock = threading.Lock()  # makes "is a job running? if not, start one" atomic
        self._pending = False
        self._last = 0.0

    def start(self, job: Callable[[], object]) -> bool:
        """Run ``job()`` on the worker; False (and nothing started) if a job is running."""
        with self._lock:
            if self.running:
                return False
            self.stop_event.clear()
            self.error = self.result = None
            self._last = time.perf_counter()
            self.running = True
            self.thread = threading.Thread(target=self._run, args=(job,), name=self.name, daemon=True)
            self.thread.start()
        return True

    def _run(self, job) -> None:
        torch.set_num_threads(1)  # this thread's torch ops; the UI thread keeps its own setting
        try:
            self.result = job()
        except Exception as error:  # shown by the app's refresh, on the UI thread
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.running = False
            self.request_refresh()

    def train(self, model, target, schedule, *, publish: Callable | None = None, **train_kwargs) -> bool:
        """Start :func:`labkit.train.train` on the worker; ``publish(frozen(model))`` between steps, when due."""
        def job():
            def on_step(step, loss):
                if self.due():
                    if publish is not None:
                        publish(frozen(model))
                    self.request_refresh()

            try:
                return _train.train(model, target, schedule, progress=False, callback=on_step,
                                    stop=self.stop_event, **train_kwargs)
            finally:
                if publish is not None:
                    publish(frozen(model))

        return self.start(job)

    def due(self) -> bool:
        """True at most once every ``refresh_s`` seconds (the worker asks before a refresh request)."""
        now = time.perf_counter()
        if now - self._last < self.refresh_s:
            return False
        self._last = now
        return True

    def request_refresh(self) -> None:
        """Ask the UI loop to call ``refresh`` (at most one request waiting at a time)."""
        if self.loop is None or self._pending:
            return
        self._pending = True
        try:
            self.loop.call_soon_threadsafe(self._refresh_from_loop)
        except RuntimeError:  # the loop is closed (kernel shutting down)
            self._pending = False

    def _refresh_from_loop(self) -> None:
        self._pending = False
        self.refresh()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True when no job is running any more."""
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return not self.running

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the job to end (``stop_event``) and wait for it."""
        self.stop_event.set()
        if not self.join(timeout):
            raise RuntimeError(f"the background job did not stop within {timeout} s")
