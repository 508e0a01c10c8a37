import matplotlib

matplotlib.use("Agg")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit.widgets.training import TrainingApp  # noqa: E402

SMALL = {"batch_size": 64, "update_every": 10}


def test_train_grows_the_loss_line_and_advances_the_counter(ring8, cosine):
    app = TrainingApp(ring8, cosine, steps=30, **SMALL)
    before = [p.detach().clone() for p in app.model.parameters()]
    assert len(app.raw_line.get_xdata()) == 0 and app.progress.value == 0
    losses = app.train()
    assert app.last_error is None
    assert len(losses) == 30 and app.history == losses
    assert app.raw_line.get_xdata().tolist() == list(range(1, 31))
    np.testing.assert_allclose(app.raw_line.get_ydata(), losses)
    assert np.isfinite(app.avg_line.get_ydata()).all() and len(app.avg_line.get_ydata()) == 30
    assert app.progress.value == 30 and "step 30 / 30" in app.status.value
    assert any(not torch.equal(a, b) for a, b in zip(before, app.model.parameters(), strict=True))
    # A second call continues: the history and the lines grow, the counter restarts for the run.
    app.train(20)
    assert len(app.history) == 50 and len(app.raw_line.get_xdata()) == 50
    assert app.progress.value == 20 and app.progress.max == 20
    lo, hi = app.ax.get_ylim()
    assert lo <= min(app.history) and hi >= max(app.history)


def test_the_plot_is_redrawn_every_update_every_steps(ring8, cosine, monkeypatch):
    app = TrainingApp(ring8, cosine, **SMALL)
    draws = []
    monkeypatch.setattr(app, "redraw", lambda: draws.append(len(app.history)))
    app.train(35)
    assert draws == [10, 20, 30, 35]


def test_train_button_runs_in_the_background_and_stop_ends_it(ring8, cosine):
    app = TrainingApp(ring8, cosine, steps=100_000, **SMALL)
    app.train_button.click()
    assert app.running and app.train_button.disabled and not app.stop_button.disabled
    assert app.start() is None  # a second start while running does nothing
    deadline = time.monotonic() + 10
    while len(app.history) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    app.stop_button.click()
    app.wait(10)
    assert not app.running and app.last_error is None
    done = len(app.history)
    assert 5 <= done < 100_000
    # The model holds the weights of the last completed step; the counter and lines agree.
    assert app.progress.value == done and len(app.raw_line.get_xdata()) == done
    assert not app.train_button.disabled and app.stop_button.disabled


def test_after_train_hooks_run_with_the_new_weights(ring8, cosine):
    app = TrainingApp(ring8, cosine, **SMALL)
    seen = []
    app.after_train.append(lambda: seen.append(len(app.history)))
    app.train(12)
    assert seen == [12]


def test_bad_arguments_are_rejected_by_name(ring8, cosine):
    with pytest.raises(ValueError, match="steps"):
        TrainingApp(ring8, cosine, steps=0)
    with pytest.raises(TypeError, match="target"):
        TrainingApp(42, cosine)
    with pytest.raises(TypeError, match="model"):
        TrainingApp(ring8, cosine, model="mlp")
    app = TrainingApp(ring8, cosine, **SMALL)
    with pytest.raises(ValueError, match="steps"):
        app.train(-3)
