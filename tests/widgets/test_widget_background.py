"""The one background worker of the widget apps, and the two helpers every app shares."""

import matplotlib

matplotlib.use("Agg")

import asyncio  # noqa: E402
import threading  # noqa: E402

import ipywidgets as W  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from labkit import train  # noqa: E402
from labkit.widgets.background import Background, frozen  # noqa: E402
from labkit.widgets.base import App, moving_average  # noqa: E402
from labkit.widgets.training import TrainingApp  # noqa: E402


def test_frozen_is_an_independent_copy_for_evaluation(ring8, cosine):
    model = train.new_model(ring8, cosine, seed=0)
    view = frozen(model)
    assert not view.training and not any(p.requires_grad for p in view.parameters())
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not torch.equal(next(model.parameters()), next(view.parameters()))


def test_without_a_loop_requests_are_dropped_and_one_job_runs_at_a_time():
    calls, gate = [], threading.Event()
    bg = Background(lambda: calls.append("refresh"))
    assert bg.loop is None
    assert bg.start(lambda: gate.wait(10) and 42) is True
    assert bg.running and bg.start(lambda: 0) is False
    gate.set()
    assert bg.join(10) and bg.result == 42 and calls == []  # the caller refreshes after join
    assert bg.start(lambda: 1 / 0) and bg.join(10)
    assert bg.error.startswith("ZeroDivisionError") and bg.result is None


def test_in_a_loop_refresh_runs_on_the_loop_thread_and_sees_the_end(ring8, cosine):
    seen = []

    async def session():
        model = train.new_model(ring8, cosine, seed=0)
        views = []
        bg = Background(lambda: seen.append((threading.current_thread() is threading.main_thread(), bg.running)),
                        refresh_s=0.0)
        bg.train(model, ring8, cosine, steps=60, seed=1, history=[], publish=views.append)
        while bg.running:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return model, views

    model, views = asyncio.run(session())
    assert seen and all(on_main for on_main, _ in seen)
    assert seen[-1] == (True, False)  # the last refresh comes after running was cleared
    assert len(views) >= 2 and views[0] is not views[-1]
    for a, b in zip(model.parameters(), views[-1].parameters(), strict=True):  # the last view = the end
        torch.testing.assert_close(a, b)


def test_stop_ends_a_training_run_after_a_whole_step(ring8, cosine):
    model, history = train.new_model(ring8, cosine, seed=0), []
    bg = Background(lambda: None)
    bg.train(model, ring8, cosine, steps=100_000, seed=1, history=history)
    while len(history) < 3:
        threading.Event().wait(0.01)
    bg.stop(30)
    assert not bg.running and 3 <= len(bg.result) == len(history) < 100_000


def test_the_chapter_3_app_trains_in_the_background_and_the_ui_thread_draws(ring8, cosine):
    drawn, hooks = [], []

    async def session():
        app = TrainingApp(ring8, cosine, steps=80, batch_size=64, refresh_s=0.0)
        original = app.update_plot
        app.update_plot = lambda: drawn.append(threading.current_thread() is threading.main_thread()) or original()
        app.after_train.append(lambda: hooks.append(threading.current_thread() is threading.main_thread()))
        app.train_button.click()
        while app.running:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        return app

    app = asyncio.run(session())
    assert app.last_error is None and len(app.history) == 80 and app.progress.value == 80
    assert drawn and all(drawn) and hooks == [True]
    assert not app.train_button.disabled and app.stop_button.disabled


def test_set_quietly_shows_a_value_without_the_callback():
    app = App()
    slider, calls = W.IntSlider(value=0, max=10), []
    app.on_change(slider, lambda: calls.append(slider.value))
    slider.value = 3
    app.set_quietly(slider, 7)
    assert slider.value == 7 and calls == [3]
    slider.value = 5
    assert calls == [3, 5]


def test_moving_average_averages_the_last_window_values():
    np.testing.assert_allclose(moving_average([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(moving_average([2.0, 4.0, 6.0], 50), [2.0, 3.0, 4.0])
    assert len(moving_average([], 3)) == 0


def test_a_callback_from_another_thread_runs_on_the_thread_that_built_the_app():
    """JupyterLab 4.6 delivers widget messages on a kernel subshell (another thread); the app's
    callbacks, and the timers they set, must still run on the loop that built it."""
    seen = []

    async def main():
        app = App()
        slider = W.IntSlider(0, min=0, max=5)
        app.on_change(slider, lambda: seen.append(threading.current_thread()))
        other = threading.Thread(target=lambda: setattr(slider, "value", 3))
        other.start()
        other.join()
        for _ in range(100):  # the loop runs the handed-over callback
            if seen:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert seen == [threading.main_thread()]
