import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from labkit import oracle, samplers  # noqa: E402
from labkit.widgets.trajectory import TrajectoryApp, ddpm_sigmas  # noqa: E402
from tests.helpers import gen  # noqa: E402


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


def test_ddpm_sigmas_follow_the_sampler_start(cosine):
    t_max = cosine.last_t_below(80.0)
    sig = ddpm_sigmas(cosine)
    assert len(sig) == t_max + 2 and cosine.sigmas[t_max] <= 80 < cosine.sigmas[t_max + 1]
    assert sig[0] == pytest.approx(float(cosine.sigmas[t_max]))
    assert sig[1:-1] == pytest.approx(cosine.sigmas[:t_max].flip(0).tolist()) and sig[-1] == 0
    full = ddpm_sigmas(cosine, sigma_max=None)
    assert len(full) == cosine.T + 1 and full[0] == pytest.approx(cosine.sigma_max)


def test_bad_trajectories_are_rejected():
    with pytest.raises(TypeError, match="result_or_trajectory"):
        TrajectoryApp([torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="shape"):
        TrajectoryApp([torch.zeros(3, 2), torch.zeros(4, 2)])
    with pytest.raises(ValueError, match="sigmas"):
        TrajectoryApp([torch.zeros(3, 2), torch.zeros(3, 2)], sigmas=[1.0])


def _player_frames(html):
    """The frames (RGB arrays) and labels of a static player: one PNG, frames side by side, one window wide."""
    width = int(re.search(r"width = (\d+);", html).group(1))
    labels = json.loads(re.search(r"labels = (\[.*?\]), width", html).group(1))
    sheet = Image.open(io.BytesIO(base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1))))
    assert sheet.format == "PNG" and sheet.mode == "P" and sheet.width == width * len(labels)
    pixels = np.asarray(sheet.convert("RGB"), dtype=int)
    return [pixels[:, j * width: (j + 1) * width] for j in range(len(labels))], labels


def test_static_player_holds_the_requested_frames_in_order_and_stays_small(ring8, cosine):
    res = samplers.ddim(oracle.eps_fn(ring8, cosine), cosine, torch.randn(1000, 2, generator=gen(3)), 40)
    sig = samplers.trailing(cosine, 40)
    app = TrajectoryApp(res, sigmas=sig, schedule=cosine, target=ring8)
    app.set_step(17)
    html = app.to_html(frames=25)
    frames, labels = _player_frames(html)
    assert len(frames) == len(labels) == 25
    steps = np.linspace(0, 40, 25).round().astype(int)
    assert labels == [app.label(k).replace("\n", ", ") for k in steps]
    assert frames[0].shape[:2] == (round(4.8 * 40), round(4.6 * 40))  # the default dpi, 40
    assert (frames[0] != frames[-1]).any(axis=2).mean() > 0.01  # the noise and the samples differ
    last_x = frames[0].shape[1] * 24
    assert f"margin-left: -{last_x}px" in html and 'value="24"' in html  # without JavaScript: the samples
    assert len(html) < 80_000, f"{len(html)} bytes"  # 54 kB when written
    assert app.step == 17 and "step 17 / 40" in app._title.get_text()  # the live app is left as it was


def test_static_player_frames_are_the_live_figure_at_each_step(result):
    app = TrajectoryApp(result, paths=0)
    frames, _ = _player_frames(app.to_html(frames=11, dpi=30, colors=256))
    for k in (0, 4, 10):  # same pixels as the live figure at step k (up to the palette), title hidden
        app.set_step(k)
        app._title.set_text("")
        buffer = io.BytesIO()
        app.fig.savefig(buffer, format="png", dpi=30)
        rendered = np.asarray(Image.open(buffer).convert("RGB"), dtype=int)
        assert np.abs(frames[k] - rendered).max() <= 24
    assert np.abs(frames[3] - frames[4]).max() > 24


def test_static_player_paths_run_through_the_rendered_steps(result):
    app = TrajectoryApp(result, paths=2)
    app.to_html(frames=6, dpi=20)
    xs, _ = app.path_lines[0].get_data()
    assert len(xs) == app.step + 1  # the live app's paths are restored after rendering


@pytest.mark.parametrize("kwargs, name", [({"frames": 1}, "frames"), ({"frames": 12}, "frames"),
                                          ({"dpi": 5}, "dpi"), ({"colors": 1}, "colors")])
def test_static_player_rejects_bad_arguments(result, kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrajectoryApp(result).to_html(**kwargs)
