import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import schedules, targets  # noqa: E402
from labkit.widgets.forward import NoisingApp  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return NoisingApp(target="ring8", schedule="cosine", t=0, n=300, seed=3)


def _check_state(app, target_name, schedule_name, t):
    s = schedules.get(schedule_name)
    g = torch.Generator().manual_seed(app.seed)
    x0, c = targets.get(target_name).sample(app.n, g)
    eps = torch.randn(x0.shape, generator=g)
    offsets = np.asarray(app.cloud.get_offsets())
    assert np.isfinite(offsets).all()
    np.testing.assert_allclose(offsets, s.q_sample(x0, t, eps).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(app.cloud.get_array()), c.numpy())
    assert app.abar_marker.get_xdata()[0] == t
    assert app.abar_marker.get_ydata()[0] == pytest.approx(float(s.alphas_cumprod[t]))
    assert app.snr_marker.get_ydata()[0] == pytest.approx(float(s.snr()[t]))
    np.testing.assert_allclose(app.abar_line.get_ydata(), s.alphas_cumprod.numpy())
    assert app.last_error is None


@pytest.mark.parametrize("t", [0, 999, 500])
def test_t_slider_moves_the_cloud_to_q_sample(app, t):
    app.set_target("ring8")
    app.set_schedule("cosine")
    app.t_slider.value = t
    assert app.t == t
    _check_state(app, "ring8", "cosine", t)


def test_at_t_zero_the_cloud_is_nearly_the_data_and_at_the_end_nearly_noise(app):
    app.set_t(0)
    assert np.abs(np.asarray(app.cloud.get_offsets()) - app.x0.numpy()).max() < 0.1
    app.set_t(999)
    np.testing.assert_allclose(np.asarray(app.cloud.get_offsets()), app.eps.numpy(), atol=1e-3)


def test_schedule_picker_switches_curves_and_keeps_the_points(app):
    app.set_t(400)
    cosine_offsets = np.asarray(app.cloud.get_offsets()).copy()
    app.schedule_picker.value = "linear"
    assert app.schedule_picker.value == "linear" and app.schedule.name == "linear"
    _check_state(app, "ring8", "linear", 400)
    assert not np.allclose(cosine_offsets, app.cloud.get_offsets())
    app.set_schedule("cosine")
    assert app.schedule_picker.value == "cosine"
    np.testing.assert_allclose(app.cloud.get_offsets(), cosine_offsets)


@pytest.mark.parametrize("name", targets.names(2))  # the 2-D widgets offer the 2-D targets
def test_every_target_can_be_picked(app, name):
    app.set_schedule("cosine")
    app.set_t(50)
    app.target_picker.value = name
    _check_state(app, name, "cosine", 50)
    app.set_target("ring8")
    assert app.target_picker.value == "ring8"


def test_bad_input_names_the_parameter(app):
    with pytest.raises(ValueError, match="t must be in"):
        app.set_t(1000)
    with pytest.raises(TypeError, match="t must be an integer"):
        app.set_t(1.5)
    with pytest.raises(ValueError, match="schedule must be one of"):
        app.set_schedule("quadratic")
    with pytest.raises(ValueError, match="target must be one of"):
        NoisingApp(target="mnist")
