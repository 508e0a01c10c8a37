import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import fields, oracle  # noqa: E402
from labkit.widgets.score_field import ScoreFieldApp  # noqa: E402


@pytest.fixture(scope="module")
def exact(ring8, cosine):
    return oracle.eps_fn(ring8, cosine)


def _uv(quiver):
    return np.stack([np.asarray(quiver.U), np.asarray(quiver.V)], axis=1)


def _expected_arrows(app, eps_fn, t):
    s = fields.score_field(eps_fn, app.schedule, t, fields.grid(app.lim, app.size))
    return fields.display_arrows(s, 2 * app.lim / (app.size - 1))[0].numpy()


@pytest.mark.parametrize("t", [0, 999, 400])
def test_slider_sets_quiver_to_display_scaled_score_and_cloud_to_q_sample(exact, cosine, t):
    app = ScoreFieldApp(cosine, {"exact": exact}, target="ring8", t=150, n_points=200)
    quiver, cloud = app.quivers["exact"], app.clouds["exact"]
    app.t_slider.value = t
    assert app.last_error is None
    assert app.quivers["exact"] is quiver and app.clouds["exact"] is cloud  # updated in place
    uv = _uv(quiver)
    assert np.isfinite(uv).all()
    np.testing.assert_allclose(uv, _expected_arrows(app, exact, t), rtol=1e-5, atol=1e-6)
    expected_cloud = cosine.q_sample(app.x0, t, app.noise).numpy()
    np.testing.assert_allclose(cloud.get_offsets(), expected_cloud, rtol=1e-5, atol=1e-5)


def test_set_t_moves_the_slider_and_the_arrows(exact, cosine):
    app = ScoreFieldApp(cosine, {"exact": exact}, t=10)
    before = _uv(app.quivers["exact"]).copy()
    app.set_t(600.5)  # fractional t is allowed
    assert app.t_slider.value == 600.5
    after = _uv(app.quivers["exact"])
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _expected_arrows(app, exact, 600.5), rtol=1e-5, atol=1e-6)


def test_panels_share_one_arrow_scale(cosine):
    def eps_a(x, t):
        return x * 0.5

    def eps_b(x, t):
        return x * 1.0

    app = ScoreFieldApp(cosine, {"a": eps_a, "b": eps_b}, t=300)
    np.testing.assert_allclose(_uv(app.quivers["b"]), 2 * _uv(app.quivers["a"]), rtol=1e-5)
    longest = np.linalg.norm(_uv(app.quivers["b"]), axis=1).max()
    assert longest == pytest.approx(0.9 * 2 * app.lim / (app.size - 1), rel=1e-5)
    assert app.factors["a"] == app.factors["b"]


def test_set_fields_swaps_the_eps_functions_and_titles(exact, cosine):
    app = ScoreFieldApp(cosine, {"zero-ish": lambda x, t: 1e-3 * torch.ones_like(x)}, t=200)
    app.set_fields({"exact": exact})
    assert list(app.quivers) == ["exact"]
    assert app.axes[0].get_title() == "exact"
    np.testing.assert_allclose(_uv(app.quivers["exact"]), _expected_arrows(app, exact, 200), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="fields"):
        app.set_fields({"a": exact, "b": exact})


def test_bad_input_is_rejected_and_callback_errors_are_shown(exact, cosine):
    with pytest.raises(TypeError, match="fields"):
        ScoreFieldApp(cosine, {})
    with pytest.raises(ValueError, match="t must be in"):
        ScoreFieldApp(cosine, {"exact": exact}, t=1000)
    app = ScoreFieldApp(cosine, {"exact": exact}, t=100)
    with pytest.raises(ValueError, match="t must be in"):
        app.set_t(-1)

    def broken(x, t):
        raise RuntimeError("model exploded")

    app.fields = {"exact": broken}
    app.t_slider.value = 300
    assert app.last_error is not None and "model exploded" in app.last_error
