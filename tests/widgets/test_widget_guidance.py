"""GuidanceApp: every control at its min, middle and max redraws in place, finitely, without error."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from labkit import fields, oracle, train  # noqa: E402
from labkit.guidance import cfg  # noqa: E402
from labkit.widgets.guidance import GuidanceApp  # noqa: E402


@pytest.fixture(scope="module")
def app(ring8, cosine):
    return GuidanceApp(oracle.MixtureEps(ring8, cosine), ring8, cosine, n=200, steps=8)


def _state(app):
    return (np.array(app.quiver.U).copy(), np.array(app.quiver.V).copy(),
            np.array(app.sample_points.get_offsets()).copy(), np.array(app.background.get_offsets()).copy())


def _assert_changed_and_finite(app, before, which):
    after = _state(app)
    assert app.last_error is None, app.last_error
    for a in after:
        assert np.isfinite(a).all()
    assert torch.isfinite(app.field).all() and torch.isfinite(app.samples).all()
    for i in which:
        assert not np.allclose(before[i], after[i]), f"artist {i} did not change"


@pytest.mark.parametrize("control, values, changes", [
    ("w_slider", [4.0, 8.0, 0.0], (0, 1, 2)),          # middle, max, min: field and samples
    ("class_picker", [4, 7, 0], (0, 1, 2)),
    ("t_slider", [500, 999, 0], (0, 1, 3)),             # field and noised background; samples unchanged
])
def test_controls_at_min_middle_max_redraw_in_place(app, control, values, changes):
    figure, quiver, points = app.fig, app.quiver, app.sample_points
    for value in values:
        before = _state(app)
        getattr(app, control).value = value
        _assert_changed_and_finite(app, before, changes)
        if control == "t_slider":
            assert np.allclose(before[2], _state(app)[2])
    assert app.fig is figure and app.quiver is quiver and app.sample_points is points  # updated, not rebuilt


def test_methods_move_the_controls(app):
    app.set_w(2.5)
    app.set_class(3)
    app.set_t(123)
    assert (app.w_slider.value, app.class_picker.value, app.t_slider.value) == (2.5, 3, 123)
    assert app.last_error is None
    with pytest.raises(ValueError, match="w"):
        app.set_w(app.w_max + 1)


def test_w0_field_equals_the_conditional_models_field(ring8, cosine):
    model = train.new_model(ring8, cosine, seed=1)   # untrained is enough: the identity is exact
    app = GuidanceApp(model, ring8, cosine, w=0.0, cls=2, t=300, n=50, steps=2)
    expected = fields.score_field(model.eps_fn(2), cosine, 300, app.points)
    assert torch.allclose(app.field, expected, atol=1e-5)
    app.set_w(3.0)
    guided = fields.score_field(cfg(model, 2, 3.0), cosine, 300, app.points)
    assert torch.allclose(app.field, guided, atol=1e-5)
    assert not torch.allclose(app.field, expected, atol=1e-3)


def test_w0_field_of_the_oracle_is_the_exact_class_score(ring8, cosine):
    exact = oracle.MixtureEps(ring8, cosine)
    app = GuidanceApp(exact, ring8, cosine, w=0.0, cls=6, t=100, n=20, steps=2)
    t = torch.full((len(app.points),), 100.0)
    score = exact.score(app.points, t, torch.full((len(app.points),), 6)).to(torch.float32)
    assert torch.allclose(app.field, score, rtol=1e-4, atol=1e-4)


def test_errors_in_callbacks_are_shown_not_raised(ring8, cosine):
    app = GuidanceApp(oracle.MixtureEps(ring8, cosine), ring8, cosine, n=20, steps=2)
    app.model = None   # break the model: the next redraw fails inside the callback
    app.w_slider.value = 1.0
    assert app.last_error is not None and "Error" in app.last_error
