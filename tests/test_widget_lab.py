import matplotlib

matplotlib.use("Agg")

import asyncio  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import fields, samplers, targets  # noqa: E402
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


def test_pickers_offer_every_target_and_the_three_samplers():
    app = LabApp()
    assert list(app.target_picker.options) == targets.names()
    assert [value for _, value in app.sampler_picker.options] == ["ddpm", "ddim", "heun"]
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
    direct = samplers.run(name, cfg(app.view, None, 0.0), app.schedule, noise, steps, generator=g)
    torch.testing.assert_close(result.x, direct.x)
    assert f"({nfe} NFE)" in app.ax["samples"].get_title()


def test_ddpm_takes_all_T_steps_and_disables_the_step_slider(trained):
    app = trained
    app.set_sampler("ddpm")
    assert app.steps_slider.disabled
    assert app.sample().nfe == app.schedule.T
    app.set_sampler("heun")
    assert not app.steps_slider.disabled


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

    class EagerLoop:  # runs each refresh at once, on the calling (training) thread
        def call_soon_threadsafe(self, callback):
            callback()

    app._loop = EagerLoop()
    app.train(5)
    app._thread.join(30)
    assert not app.training and app.last_error is None
    assert app.status.value.endswith("(done)") and not app.train_button.disabled and app.stop_button.disabled


def test_quality_draws_ddim_and_heun_against_nfe_with_the_floor(trained):
    result = trained.quality()
    for name in ("ddim", "heun"):
        assert sorted(r["steps"] for r in result["records"] if r["sampler"] == name) == list(DEFAULT_STEPS)
    heun_nfe = sorted(r["nfe"] for r in result["records"] if r["sampler"] == "heun")
    assert heun_nfe == [2 * n - 1 for n in DEFAULT_STEPS]
    ax = trained.ax["quality"]
    labels = ax.get_legend_handles_labels()[1]
    assert {"ddim", "heun"} <= set(labels) and any("floor" in label for label in labels)
    assert "NFE" in ax.get_xlabel() and "n = 100" in ax.get_title()


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
app.quality()
app.fig.canvas.draw()
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_a_full_lab_session_peaks_below_1_gb():
    out = subprocess.run([sys.executable, "-c", MEMORY_SESSION], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    print(f"lab session peak RSS: {peak:.0f} MB")
    assert 50 < peak <= 1024
