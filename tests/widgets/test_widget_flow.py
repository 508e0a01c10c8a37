import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import flow, oracle  # noqa: E402
from labkit.guidance import class_spread  # noqa: E402
from labkit.widgets.flow import FlowSamplerApp, VelocityFieldApp  # noqa: E402
from tests.helpers import rejects  # noqa: E402


@pytest.fixture(scope="module")
def model(ring8):
    return flow.new_model(ring8, seed=0)  # untrained: costs what a trained one does


def test_t_slider_moves_the_arrows_and_the_cloud_to_the_exact_field(ring8, model):
    exact = oracle.velocity_fn(ring8)
    app = VelocityFieldApp({"learned": flow.velocity_fn(model), "exact": exact}, ring8, size=9)
    for t in (0.0, 0.5, 1.0):
        before = app.arrows[1].U.copy(), app.clouds[1].get_offsets().copy()
        app.set_t(t if t != 0.5 else 0.3)
        assert app.last_error is None, app.last_error
        assert not np.allclose(before[0], app.arrows[1].U)
        x_t = (1 - app.t) * app.x0 + app.t * app.eps
        np.testing.assert_allclose(app.clouds[1].get_offsets(), x_t.numpy(), atol=1e-6)
        # the drawn arrows are the exact field, rescaled by one factor
        v = exact(app.points, torch.full((len(app.points),), app.t)).numpy()
        uv = np.column_stack([app.arrows[1].U, app.arrows[1].V])
        factor = np.linalg.norm(uv, axis=1).max() / np.linalg.norm(v, axis=1).max()
        np.testing.assert_allclose(uv, factor * v, rtol=1e-4, atol=1e-6)
        assert f"t = {app.t:.2f}" in app.titles[1].get_text()


def test_step_and_solver_change_the_samples_and_nfe(ring8, model):
    app = FlowSamplerApp(model, ring8, n=200, n_paths=4, max_steps=32)
    for steps in (1, 16, 32):
        before = app.samples.get_offsets().copy()
        app.set_steps(steps)
        assert app.last_error is None, app.last_error
        assert app.result.nfe == steps and len(app.paths[0].get_xdata()) == steps + 1
        assert not np.allclose(before, app.samples.get_offsets())
        np.testing.assert_allclose(app.samples.get_offsets(), app.result.x.numpy(), atol=1e-6)
    app.set_solver("heun")
    assert app.result.nfe == 63 and "NFE = 63" in app._title.get_text()


def test_w_slider_guides_one_class_and_is_disabled_unconditionally(ring8, model):
    app = FlowSamplerApp(model, ring8, n=200, n_paths=0, steps=8)
    assert app.w_slider.disabled and "MMD²" in app._title.get_text()
    app.set_class(2)
    assert not app.w_slider.disabled
    x0 = app.result.x.clone()
    app.set_w(4.0)
    guided = flow.sample(flow.velocity_fn(model, 2, 4.0), app.noise, 8).x
    np.testing.assert_allclose(app.samples.get_offsets(), guided.numpy(), atol=1e-5)
    assert not torch.allclose(x0, app.result.x)
    assert app.result.nfe == 16  # a guided call is two forwards
    assert f"spread {class_spread(app.result.x):.3f}" in app._title.get_text()


def test_bad_controls_are_rejected(ring8, model):
    app = FlowSamplerApp(model, ring8, n=50, n_paths=0, max_steps=8)
    rejects(lambda: app.set_steps(9), "steps")
    rejects(lambda: app.set_solver("rk4"), "solver")
    rejects(lambda: app.set_class(8), "cls")
    rejects(lambda: app.set_w(-1.0), "w")
    rejects(lambda: VelocityFieldApp({}, ring8), "velocity_fns")
