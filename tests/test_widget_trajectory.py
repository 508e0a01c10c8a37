import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import oracle, samplers  # noqa: E402
from labkit.widgets.trajectory import TrajectoryApp, ddpm_sigmas  # noqa: E402
from tests.conftest import gen  # noqa: E402


@pytest.fixture(scope="module")
def result(ring8, cosine):
    eps = oracle.eps_fn(ring8, cosine)
    return samplers.ddim(eps, cosine, torch.randn(40, 2, generator=gen(0)), 10)


@pytest.mark.parametrize("k", [0, 10, 5])
def test_slider_moves_the_cloud_and_draws_paths_up_to_step_k(result, k):
    app = TrajectoryApp(result, paths=3)
    cloud, lines = app.cloud, list(app.path_lines)
    app.slider.value = k
    assert app.last_error is None and app.step == k
    assert app.cloud is cloud and app.path_lines == lines  # updated in place
    np.testing.assert_allclose(app.cloud.get_offsets(), result.trajectory[k].numpy())
    for line, i in zip(app.path_lines, app.path_index, strict=True):
        xs, ys = line.get_data()
        assert len(xs) == k + 1 and np.isfinite(xs).all()
        expected = torch.stack([x[i] for x in result.trajectory[: k + 1]]).numpy()
        np.testing.assert_allclose(np.stack([xs, ys], 1), expected)
    np.testing.assert_allclose(app.heads.get_offsets(), result.trajectory[k][app.path_index].numpy())


def test_set_step_moves_the_slider_and_play_is_linked_to_it(result):
    app = TrajectoryApp(result)
    app.set_step(7)
    assert app.slider.value == 7 and "step 7 / 10" in app._title.get_text()
    assert app.play.max == app.slider.max == 10
    with pytest.raises(ValueError, match="k"):
        app.set_step(11)


def test_ddpm_trajectory_title_shows_sigma_and_t(ring8, cosine):
    from labkit import schedules

    s = schedules.linear(T=20)
    eps = oracle.eps_fn(ring8, s)
    res = samplers.ddpm(eps, s, torch.randn(30, 2, generator=gen(1)), generator=gen(2))
    sig = ddpm_sigmas(s)
    assert len(sig) == len(res.trajectory) and sig[0] == pytest.approx(s.sigma_max) and sig[-1] == 0
    app = TrajectoryApp(res, sigmas=sig, schedule=s, target=ring8)
    assert f"sigma = {s.sigma_max:.3g}, t = 19" in app._title.get_text()
    app.set_step(20)
    assert "sigma = 0 (data" in app._title.get_text()
    app.set_step(10)
    assert f"sigma = {float(s.sigmas[9]):.3g}, t = 9" in app._title.get_text()


def test_bad_trajectories_are_rejected():
    with pytest.raises(TypeError, match="result_or_trajectory"):
        TrajectoryApp([torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="shape"):
        TrajectoryApp([torch.zeros(3, 2), torch.zeros(4, 2)])
    with pytest.raises(ValueError, match="sigmas"):
        TrajectoryApp([torch.zeros(3, 2), torch.zeros(3, 2)], sigmas=[1.0])
