"""Interrupting training never leaves a half-done step and never loses the model.

A real SIGINT (Ctrl-C, or Jupyter's interrupt button) delivered by a timer thread at an arbitrary
moment, or the lab's Stop event set from another thread while training runs in a worker thread,
ends training after the current step: the weights are exactly those of the last completed step
(checked by replaying the same call stopped at the same count), the history holds exactly the
completed steps, the previous SIGINT handler is back, and training resumes from those weights.
"""

from __future__ import annotations

import copy
import os
import signal
import threading

import pytest
import torch

from labkit import schedules, targets
from labkit.model import EpsMLP
from labkit.train import train

RING8 = targets.get("ring8")
SCHED = schedules.cosine(T=50)
MANY = 100_000  # more steps than any test runs: training only ends by interruption


def fresh(seed=0):
    torch.manual_seed(seed)
    return EpsMLP(RING8.num_classes, T=SCHED.T, width=16, depth=1)


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def equal(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def replay(count, seed=0, **kwargs):
    """A fresh copy trained by the same call (same ``steps``, so the same learning-rate curve),
    stopped after exactly ``count`` steps."""
    model, history = fresh(), []
    train(model, RING8, SCHED, steps=MANY, seed=seed, history=history, progress=False,
          stop=lambda: len(history) >= count, **kwargs)
    assert len(history) == count
    return model, history


class GuardHandler:
    """Stands in for Python's default SIGINT handler during a test: if train() failed to defer
    the signal, this one is reached and raises, so the failure is a test failure, not an abort."""

    def __init__(self):
        self.hits = 0

    def __call__(self, signum, frame):
        self.hits += 1
        raise KeyboardInterrupt("SIGINT reached the handler outside train()")


@pytest.fixture
def guard():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set from the main thread")
    handler = GuardHandler()
    previous = signal.signal(signal.SIGINT, handler)
    yield handler
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("delay", [0.0, 0.003, 0.02])
def test_sigint_from_a_timer_thread_stops_after_a_whole_step(guard, delay):
    model, history = fresh(), []
    timers = []

    def callback(step, loss):
        if step == 2:  # the signal arrives `delay` seconds later, wherever the loop then is
            timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
            timers.append(timer)
            timer.start()

    train(model, RING8, SCHED, steps=MANY, history=history, progress=False, callback=callback)
    timers[0].join()
    assert guard.hits == 0 and signal.getsignal(signal.SIGINT) is guard
    assert 3 <= len(history) < MANY
    assert all(torch.isfinite(p).all() for p in model.parameters())
    twin, twin_history = replay(len(history))
    assert twin_history == history
    assert equal(weights(model), weights(twin))
    assert not model.training


@pytest.mark.parametrize("at_forward", [1, 4, 9])
def test_sigint_in_the_middle_of_a_step_lets_that_step_finish(guard, at_forward):
    """The signal arrives inside the model's forward pass, before backward and the Adam update:
    that step still completes, is recorded, and is the last one."""
    model, history = fresh(), []
    calls = []

    def hook(module, inputs, output):
        calls.append(len(history))
        if len(calls) == at_forward:
            os.kill(os.getpid(), signal.SIGINT)

    model.register_forward_hook(hook)
    train(model, RING8, SCHED, steps=MANY, history=history, progress=False)
    assert guard.hits == 0 and len(history) == at_forward
    assert equal(weights(model), weights(replay(at_forward)[0]))


def test_two_quick_sigints_still_end_training_once_and_cleanly(guard):
    model, history = fresh(), []

    def callback(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    train(model, RING8, SCHED, steps=MANY, history=history, progress=False, callback=callback)
    assert guard.hits == 0 and len(history) == 6
    assert equal(weights(model), weights(replay(6)[0]))


def test_training_resumes_from_the_interrupted_weights(guard):
    model, history = fresh(), []
    train(model, RING8, SCHED, steps=MANY, history=history, progress=False,
          callback=lambda step, loss: os.kill(os.getpid(), signal.SIGINT) if step == 7 else None)
    assert len(history) == 8
    copy_model, copy_history = copy.deepcopy(model), list(history)
    train(model, RING8, SCHED, steps=25, seed=3, history=history, progress=False)
    train(copy_model, RING8, SCHED, steps=25, seed=3, history=copy_history, progress=False)
    assert len(history) == 33 and history == copy_history
    assert equal(weights(model), weights(copy_model))
    # Resuming is not restarting: the same 25 steps from the initial weights end elsewhere.
    restarted = fresh()
    train(restarted, RING8, SCHED, steps=25, seed=3, progress=False)
    assert not equal(weights(model), weights(restarted))


def test_a_stop_set_before_the_first_step_changes_nothing(guard):
    model = fresh()
    before = weights(model)
    stop = threading.Event()
    stop.set()
    history = train(model, RING8, SCHED, steps=10, stop=stop, progress=False)
    assert history == [] and equal(before, weights(model))


def test_stop_event_from_another_thread_while_training_runs_in_a_worker():
    """The lab's pattern: Train runs in a thread, Stop sets an Event from the UI thread."""
    model, history = fresh(), []
    stop, reached = threading.Event(), threading.Event()
    steps_seen = []

    def callback(step, loss):
        steps_seen.append(step)
        if step == 10:
            reached.set()

    handler_before = signal.getsignal(signal.SIGINT)
    worker = threading.Thread(target=train, args=(model, RING8, SCHED),
                              kwargs={"steps": MANY, "history": history, "progress": False, "callback": callback,
                                      "stop": stop})
    worker.start()
    assert reached.wait(timeout=120), "training never reached step 10"
    stop.set()
    worker.join(timeout=120)
    assert not worker.is_alive()
    # Training in a worker thread leaves the main thread's SIGINT handler alone.
    assert signal.getsignal(signal.SIGINT) is handler_before
    count = len(history)
    assert count >= 11 and steps_seen == list(range(count))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert equal(weights(model), weights(replay(count)[0]))
