import matplotlib

matplotlib.use("Agg")

import asyncio  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import fields, samplers, targets, train  # noqa: E402
from labkit.guidance import cfg  # noqa: E402
from labkit.quality import DEFAULT_STEPS  # noqa: E402
from labkit.widgets.lab import LabApp  # noqa: E402


def _uv(app):
    return np.stack([np.asarray(app.quiver.U), np.asarray(app.quiver.V)], axis=1)


def _expected_uv(app, eps_fn, t):
    s = fields.score_field(eps_fn, app.schedule, t, fields.grid(app.lim, app.size))
    return fields.display_arrows(s, 2 * app.lim / (app.size - 1))[0].numpy()


def _wait(condition, timeout=60.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def trained():
    app = LabApp(train_steps=300, quality_n=100, quality_seeds=1)
    app.train(blocking=True)
    return app


def test_pickers_offer_every_2d_target_and_every_registered_sampler_and_grid():
    app = LabApp()
    assert list(app.target_picker.options) == targets.names(2)
    assert [value for _, value in app.sampler_picker.options] == list(samplers.SAMPLERS)
    assert [label for label, _ in app.sampler_picker.options] == [s.label for s in samplers.SAMPLERS.values()]
    assert list(app.grid_picker.options) == list(samplers.GRIDS)
    classes = [value for _, value in app.class_picker.options]
    assert classes == [-1, *range(app.target.num_classes)]  # -1: all classes
    assert app.class_picker.label.startswith("all classes") and app.chosen_class is None
    assert app.w_slider.disabled  # all classes: unconditional, w has nothing to guide toward
    app.set_class(3)
    assert not app.w_slider.disabled


def test_t_and_w_sliders_redraw_the_guided_score_field_in_place(trained):
    app = trained
    quiver = app.quiver
    app.set_class(None)
    app.set_t(50)
    np.testing.assert_allclose(_uv(app), _expected_uv(app, cfg(app.view, None, 0.0), 50), rtol=1e-4, atol=1e-6)
    before = _uv(app).copy()
    app.set_t(400)
    assert not np.allclose(before, _uv(app))
    app.set_class(2)
    app.set_w(3.0)
    assert app.last_error is None
    assert app.quiver is quiver  # the same artist, updated with set_UVC
    np.testing.assert_allclose(_uv(app), _expected_uv(app, cfg(app.view, 2, 3.0), 400), rtol=1e-4, atol=1e-6)
    guided = _uv(app).copy()
    app.set_w(0.0)
    assert not np.allclose(guided, _uv(app))
    assert "t = 400" in app.ax["field"].get_title()


@pytest.mark.parametrize("name, steps, nfe", [("ddim", 8, 8), ("heun", 8, 15), ("heun", 3, 5)])
def test_sample_runs_the_chosen_sampler_and_shows_its_points(trained, name, steps, nfe):
    app = trained
    app.set_class(None)
    app.set_sampler(name)
    app.set_steps(steps)
    points = app.sample_points
    result = app.sample()
    assert result.nfe == nfe
    assert app.sample_points is points
    np.testing.assert_allclose(points.get_offsets(), result.x.numpy(), rtol=1e-6)
    g = torch.Generator().manual_seed(app.seed + 1)
    noise = torch.randn(app.n, 2, generator=g)
    direct = samplers.run(name, cfg(app.view, None, 0.0), app.schedule, noise, steps, generator=g,
                          grid=app.grid_picker.value)
    torch.testing.assert_close(result.x, direct.x)
    title = app.ax["samples"].get_title()
    assert f"({nfe} NFE)" in title and samplers.SAMPLERS[name].label in title
    assert f"ring8 model after {len(app.history)} training steps" in title


def test_ddpm_takes_its_own_step_count_and_disables_the_step_slider_and_grid(trained):
    app = trained
    app.set_sampler("ddpm")
    assert app.steps_slider.disabled and app.grid_picker.disabled
    sigma_max = inspect.signature(samplers.ddpm).parameters["sigma_max"].default
    expected = app.schedule.T if sigma_max is None else app.schedule.last_t_below(sigma_max) + 1
    assert app.result.nfe == expected  # re-rendered by the picker, without pressing Sample
    assert f"N = {expected} ({expected} NFE)" in app.ax["samples"].get_title()
    app.set_sampler("heun")
    assert not app.steps_slider.disabled and not app.grid_picker.disabled


def test_training_runs_in_the_background_once_and_stops_on_stop():
    app = LabApp(refresh_s=0.0)
    initial = [p.clone() for p in app.view.parameters()]
    assert app.train(100_000) is True
    try:
        assert app.training
        assert app.train(10) is False  # a second press while training starts nothing
        _wait(lambda: len(app.history) >= 20)
        app.set_t(300)  # the UI thread evaluates the published copy while training goes on
        app.set_class(1)
        app.set_w(2.0)
        app.sample()
        assert app.last_error is None
        assert len(app.history) > 20
        assert any(not torch.equal(a, b) for a, b in zip(initial, app.view.parameters(), strict=True))
    finally:
        done = app.stop()
    assert not app.training
    time.sleep(0.2)
    assert len(app.history) == done < 100_000
    assert app.status.value.startswith(f"step {done} /") and "(stopped)" in app.status.value
    assert app.progress.value == done
    for a, b in zip(app.model.parameters(), app.view.parameters(), strict=True):  # the view holds the final weights
        torch.testing.assert_close(a, b)
    assert not app.train_button.disabled and app.stop_button.disabled


def test_train_continues_from_the_current_weights_and_draws_the_loss():
    app = LabApp()
    app.train(30, blocking=True)
    app.train(20, blocking=True)
    assert len(app.history) == 50
    x, y = app.loss_raw.get_data()
    np.testing.assert_array_equal(x, np.arange(1, 51))
    np.testing.assert_allclose(y, app.history)
    assert app.progress.value == app.progress.max == 50


def test_in_a_kernel_the_panels_refresh_on_the_ui_thread_while_training():
    seen = []

    async def session():
        app = LabApp(refresh_s=0.05)
        original = app.refresh_training

        def recording():
            seen.append((threading.current_thread() is threading.main_thread(), app.training, len(app.history),
                         app.progress.value))
            original()

        app.refresh_training = recording
        app.train(400)
        while app.training:
            await asyncio.sleep(0.02)  # the UI thread is idle, as a kernel between messages
        await asyncio.sleep(0.1)
        return app

    app = asyncio.run(session())
    during = [s for s in seen if s[1]]
    assert all(on_main for on_main, *_ in seen)
    assert during, "no refresh while training"
    assert any(0 < progress < 400 for *_, progress in during)
    assert seen[-1][1] is False and app.progress.value == 400


def test_the_last_refresh_shows_the_end_even_before_the_training_thread_has_exited():
    # A UI loop may run the final refresh while the training thread is still finishing; the status
    # must say "(done)" then, not stay at "(training)" (seen once in a browser test under load).
    app = LabApp(refresh_s=0.0)

    class EagerLoop:  # runs each refresh (and the samples' render) at once, on the calling (training) thread
        def call_soon_threadsafe(self, callback):
            callback()

        def call_later(self, delay, callback):
            callback()
            return asyncio.Handle(lambda: None, (), asyncio.new_event_loop())

    app.trainer.loop = EagerLoop()
    app.train(5)
    app.trainer.thread.join(30)
    assert not app.training and app.last_error is None
    assert app.status.value.endswith("(done)") and not app.train_button.disabled and app.stop_button.disabled


def test_quality_draws_ddim_and_heun_against_nfe_with_the_floor(trained):
    assert trained.quality(blocking=True) is True
    result = trained.quality_result
    assert trained.last_error is None, trained.last_error
    for name in ("ddim", "heun"):
        assert sorted(r["steps"] for r in result["records"] if r["sampler"] == name) == list(DEFAULT_STEPS)
    heun_nfe = sorted(r["nfe"] for r in result["records"] if r["sampler"] == "heun")
    assert heun_nfe == [2 * n - 1 for n in DEFAULT_STEPS]
    ax = trained.ax["quality"]
    labels = ax.get_legend_handles_labels()[1]
    from labkit.samplers import SAMPLERS

    assert {f"{SAMPLERS['ddim'].label}, karras", f"{SAMPLERS['heun'].label}, karras"} <= set(labels), labels
    assert any("floor" in label for label in labels)
    assert "NFE" in ax.get_xlabel() and "n = 100" in ax.get_title()
    assert f"unconditional ring8 model after {len(trained.history)} training steps" in ax.get_title()
    assert trained.quality_progress.value == trained.quality_progress.max == 2 * len(DEFAULT_STEPS)
    assert not trained.quality_button.disabled and trained.cancel_button.disabled


def test_changing_target_stops_training_and_resets_the_model():
    app = LabApp(refresh_s=0.0)
    app.train(100_000)
    _wait(lambda: len(app.history) >= 5)
    app.set_target("moons")
    assert not app.training
    assert app.model.num_classes == 2 and app.history == []
    assert [v for _, v in app.class_picker.options] == [-1, 0, 1]
    assert app.status.value == "untrained"
    assert "moons" in app.ax["target"].get_title()
    assert len(app.target_points.get_offsets()) == app.n


def test_bad_input_names_the_parameter_and_callback_errors_show_in_the_app():
    with pytest.raises(ValueError, match="target must be one of"):
        LabApp(target="nope")
    with pytest.raises(ValueError, match="steps must be in"):
        LabApp(steps=0)
    app = LabApp()
    with pytest.raises(ValueError, match="t must be in"):
        app.set_t(1000)
    with pytest.raises(ValueError, match="w must be in"):
        app.set_w(-1.0)
    with pytest.raises(ValueError, match="sampler must be one of"):
        app.set_sampler("euler")
    with pytest.raises(ValueError, match="cls must be in"):
        app.set_class(8)
    with pytest.raises(TypeError, match="steps must be an integer"):
        app.train(2.5)

    def broken(model=None):
        raise RuntimeError("eps exploded")

    app.eps_fn = broken
    app.t_slider.value = 700  # as a slider drag: the error goes to the app, not lost
    assert "eps exploded" in app.last_error  # App.guarded also prints it into app.errors (in a kernel)


MEMORY_SESSION = """
import json, resource, matplotlib
matplotlib.use("Agg")
from labkit.widgets.lab import LabApp
app = LabApp(quality_n=500, quality_seeds=2)
app.train(600, blocking=True)  # memory does not grow with steps
app.sample()
app.set_sampler("ddpm"); app.sample()
app.quality(blocking=True)
app.fig.canvas.draw()
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_a_full_lab_session_peaks_below_1_gb():
    out = subprocess.run([sys.executable, "-c", MEMORY_SESSION], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    print(f"lab session peak RSS: {peak:.0f} MB")
    assert 50 < peak <= 1024


def test_n_w_and_class_re_render_the_samples_without_pressing_sample(trained):
    app = trained  # no UI loop here: each change re-renders at once
    app.set_class(None)
    app.set_sampler("heun")
    app.set_steps(16)
    app.set_steps(8)
    assert app.result.nfe == 15 and "N = 8" in app.ax["samples"].get_title()
    before = app.sample_points.get_offsets().copy()
    app.set_class(2)
    app.set_w(2.0)
    assert "class 2, w = 2" in app.ax["samples"].get_title()
    g = torch.Generator().manual_seed(app.seed + 1)
    noise = torch.randn(app.n, 2, generator=g)
    direct = samplers.run("heun", cfg(app.view, 2, 2.0), app.schedule, noise, 8, grid=app.grid_picker.value)
    np.testing.assert_allclose(app.sample_points.get_offsets(), direct.x.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, app.sample_points.get_offsets())
    app.set_grid("trailing")
    assert "trailing grid" in app.ax["samples"].get_title()
    app.set_grid("karras")
    app.set_class(None)


def test_in_a_kernel_changes_are_debounced_into_one_render_and_t_stays_live():
    async def session():
        app = LabApp(debounce_s=0.3)
        await asyncio.sleep(0.5)  # let the render of the constructor's panel go by
        renders, original = [], app.sample
        app.sample = lambda: renders.append((app.steps_slider.value, app.w_slider.value)) or original()
        app.set_class(1)
        app.set_steps(8)
        app.set_w(1.0)
        app.set_w(2.5)  # four changes in a row, as a drag of w
        title = app.ax["field"].get_title()
        app.set_t(700)  # handled at once, while the samples wait for the controls to settle
        assert "t = 700" in app.ax["field"].get_title() != title
        assert renders == []
        await asyncio.sleep(0.8)
        return app, renders

    app, renders = asyncio.run(session())
    assert renders == [(8, 2.5)] and app.last_error is None
    assert "class 1, w = 2.5" in app.ax["samples"].get_title() and app.result.nfe == 2 * 15  # guided: 2 forwards


def test_train_uses_the_targets_recipe_with_the_boxs_steps(monkeypatch):
    app, calls = LabApp(target="checkerboard"), []
    monkeypatch.setattr(app.trainer, "train", lambda *args, **kwargs: calls.append(kwargs) or True)
    app.train(7)
    assert calls[0]["steps"] == 7 and calls[0]["t_lognormal"] == targets.get("checkerboard").recipe["t_lognormal"]
    assert {k: calls[0][k] for k in ("batch_size", "lr", "p_uncond")} == {k: train.DEFAULTS[k] for k in
                                                                         ("batch_size", "lr", "p_uncond")}


def test_each_target_keeps_its_model_and_the_panel_says_which_is_shown():
    app = LabApp()
    app.train(25, blocking=True)
    ring8 = app.model
    app.set_target("moons")
    assert app.model is not ring8 and app.history == [] and app.status.value == "untrained"
    assert app.ax["samples"].get_title().startswith("moons model after 0 training steps")
    app.train(10, blocking=True)
    app.set_target("ring8")
    assert app.model is ring8 and len(app.history) == 25 and app.status.value.startswith("step 25 / 25")
    assert app.status.value.endswith("(done)"), app.status.value  # its run ended by itself: not "stopped"
    assert app.ax["samples"].get_title().startswith("ring8 model after 25 training steps")
    np.testing.assert_array_equal(app.loss_raw.get_data()[1], app.history)
    assert set(app.models) == {"ring8", "moons"} and len(app.models["moons"].history) == 10


def _fake_quality(release, calls):
    """A stand-in for run_quality with the lead's callback/stop interface: 6 jobs, each waits for ``release``."""
    def run_quality(eps_fn, target, schedule, *, samplers, steps, n, seeds, seed, progress, grid, callback, stop):
        calls.append({"samplers": samplers, "grid": grid, "n": n, "seeds": seeds})
        total = 6
        for done in range(1, total + 1):
            release.wait(10)
            if stop.is_set():
                return {"cancelled": True, "records": []}
            callback(done, total)
        records = [{"sampler": "ddim", "grid": grid, "steps": k, "nfe": k, "mmd2_mean": 1e-3, "mmd2_sd": 1e-4,
                    "at_floor": k != 8} for k in (4, 8, 16, 32)]  # at N = 4 by luck; there from N = 16 on
        return {"target": target.name, "n": n, "seeds": seeds, "floor": {"mean": 1e-3, "sd": 1e-4, "threshold": 1.3e-3},
                "records": records}
    return run_quality


def test_quality_runs_in_the_background_with_progress_and_says_what_it_measured(monkeypatch):
    release, calls = threading.Event(), []
    monkeypatch.setattr("labkit.widgets.lab.run_quality", _fake_quality(release, calls))
    app = LabApp(refresh_s=0.0)
    app.set_grid("trailing")
    assert app.quality() is True
    assert app.quality() is False  # one run at a time
    assert app.quality_button.disabled and not app.cancel_button.disabled
    app.set_t(500)  # the UI is free while it measures
    release.set()
    app.measurer.join(30)
    app.refresh_quality()
    assert app.last_error is None, app.last_error
    assert calls == [{"samplers": ("ddim", "heun"), "grid": "trailing", "n": 500, "seeds": 2}]
    assert app.quality_progress.value == 6 and app.quality_result["records"][0]["nfe"] == 4
    title = app.ax["quality"].get_title()
    assert "unconditional ring8 model after 0 training steps, trailing grid" in title
    assert "at the floor (at_floor): ddim from 16 NFE" in title  # where it stays, not the lucky N = 4
    assert not app.quality_button.disabled and app.cancel_button.disabled


def test_cancel_stops_the_quality_run_and_says_so(monkeypatch):
    release, calls = threading.Event(), []
    monkeypatch.setattr("labkit.widgets.lab.run_quality", _fake_quality(release, calls))
    app = LabApp()
    app.quality()
    app.cancel_button.click()  # sets the stop event, then waits for the run
    assert app.measurer.stop_event.is_set()
    release.set()
    app.measurer.join(30)
    app.refresh_quality()
    assert app.quality_result is None and app.status.value == "untrained"
    assert app.quality_status.value.startswith("cancelled after")
    assert "cancelled" in app.ax["quality"].texts[0].get_text()
    assert not app.quality_button.disabled and app.cancel_button.disabled


def test_in_a_kernel_the_quality_progress_is_shown_by_the_ui_thread(monkeypatch):
    release, calls, seen = threading.Event(), [], []
    release.set()
    monkeypatch.setattr("labkit.widgets.lab.run_quality", _fake_quality(release, calls))

    async def session():
        app = LabApp(refresh_s=0.0)
        original = app.refresh_quality

        def recording():
            seen.append((threading.current_thread() is threading.main_thread(), app._quality_done[0]))
            original()

        app.refresh_quality = recording
        app.quality()
        while app.measurer.running:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        return app

    app = asyncio.run(session())
    assert seen and all(on_main for on_main, _ in seen)
    assert app.quality_result is not None and app.quality_progress.value == 6
