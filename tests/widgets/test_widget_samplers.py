import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from labkit import metrics, oracle, samplers, train  # noqa: E402
from labkit.widgets.samplers import SamplerApp  # noqa: E402


@pytest.fixture(scope="module")
def app(ring8, cosine):
    # An untrained model costs what a trained one does and gives paths far from the target.
    model = train.new_model(ring8, cosine, seed=0)
    return SamplerApp(model.eps_fn(), cosine, ring8, n=200, n_paths=5, max_steps=64)


def _artists(app):
    return (app.samples.get_offsets().copy(), [np.column_stack(p.get_data()) for p in app.paths],
            app._title.get_text())


def _assert_finite(app):
    offsets, paths, _ = _artists(app)
    assert np.isfinite(offsets).all()
    assert all(np.isfinite(p).all() for p in paths)
    assert np.isfinite(app.mmd2) and np.isfinite(app.detail_miss)


@pytest.mark.parametrize("sampler", ["ddim", "heun"])
def test_step_slider_at_min_middle_and_max_changes_the_artists(app, sampler):
    app.set_sampler(sampler)
    app.set_steps(32)
    for steps in (1, app.max_steps // 2 + 1, app.max_steps):
        before = _artists(app)
        app.set_steps(steps)
        assert app.last_error is None, app.last_error
        after = _artists(app)
        assert not np.allclose(before[0], after[0]), f"{sampler} samples did not move at steps={steps}"
        assert len(after[1][0]) == len(app.result.trajectory) == steps + 1
        assert f"N = {steps}" in after[2] and f"NFE = {app.result.nfe}" in after[2]
        _assert_finite(app)


def test_nfe_in_title_follows_the_sampler(app):
    app.set_steps(8)
    app.set_sampler("ddim")
    assert app.result.nfe == 8 and "NFE = 8" in app._title.get_text()
    app.set_sampler("heun")
    assert app.result.nfe == 15 and "NFE = 15" in app._title.get_text()


def test_ddpm_ignores_the_step_count_and_disables_the_slider(app, cosine):
    app.set_sampler("heun")
    app.set_steps(4)
    before = _artists(app)
    app.set_sampler("ddpm")
    assert app.last_error is None, app.last_error
    assert app.steps_slider.disabled and app.eta_slider.disabled and app.grid_picker.disabled
    steps = cosine.last_t_below(app.sigma_max) + 1  # every timestep below the app's sigma_max
    assert app.result.nfe == steps and len(app.result.trajectory) == steps + 1
    assert f"N = {steps}" in app._title.get_text()
    assert not np.allclose(before[0], _artists(app)[0])
    _assert_finite(app)
    app.set_sampler("ddim")
    assert not app.steps_slider.disabled and not app.eta_slider.disabled


def test_eta_makes_ddim_stochastic_and_is_reproducible(app):
    app.set_sampler("ddim")
    app.set_steps(16)
    app.set_eta(0.0)
    deterministic = app.samples.get_offsets().copy()
    app.set_eta(1.0)
    assert app.last_error is None, app.last_error
    stochastic = app.samples.get_offsets().copy()
    assert not np.allclose(deterministic, stochastic)
    app.set_eta(0.5)
    app.set_eta(1.0)  # fixed seed: the same picture again
    np.testing.assert_allclose(app.samples.get_offsets(), stochastic)
    app.set_eta(0.0)


def test_updates_reuse_the_figure_and_its_artists(app):
    fig, samples, lines = app.fig, app.samples, list(app.paths)
    n_axes, n_collections = len(fig.axes), len(fig.axes[0].collections)
    app.set_sampler("heun")
    app.set_steps(3)
    app.set_steps(5)
    assert app.fig is fig and app.samples is samples and app.paths == lines
    assert len(fig.axes) == n_axes and len(fig.axes[0].collections) == n_collections


def test_bad_input_names_the_parameter(app, ring8, cosine):
    with pytest.raises(ValueError, match="steps"):
        app.set_steps(0)
    with pytest.raises(ValueError, match="steps"):
        app.set_steps(app.max_steps + 1)
    with pytest.raises(ValueError, match="sampler"):
        app.set_sampler("euler")
    with pytest.raises(ValueError, match="eta"):
        app.set_eta(1.5)
    with pytest.raises(TypeError, match="eps_fn"):
        SamplerApp(None, cosine, ring8)
    with pytest.raises(ValueError, match="max_steps"):
        SamplerApp(oracle.eps_fn(ring8, cosine), cosine, ring8, max_steps=5000)
    with pytest.raises(ValueError, match="n must be"):
        SamplerApp(oracle.eps_fn(ring8, cosine), cosine, ring8, n=10)


def test_the_exact_score_lands_on_the_target_and_an_untrained_model_does_not(ring8, cosine, app):
    exact = SamplerApp(oracle.eps_fn(ring8, cosine), cosine, ring8, n=200, n_paths=3, steps=32)
    assert exact.last_error is None
    for app_, inside in ((exact, True), (app, False)):
        app_.set_sampler("heun")
        app_.set_steps(32)
        for s in metrics.STATISTICS:
            threshold = app_.floors[s].threshold
            assert (app_.report[s] <= threshold) if inside else (app_.report[s] > 3 * threshold), (s, app_.report)
    assert exact.floors["mmd2"] is metrics.noise_floor(ring8, 200)  # the library's one floor at the app's n


def test_below_500_points_the_title_shows_both_statistics_and_no_verdict(app):
    app.set_sampler("heun")
    app.set_steps(16)
    title = app._title.get_text()
    assert app.verdict is None and "no at-floor verdict below n = 500" in title
    assert f"MMD² = {app.mmd2:.4f}" in title and f"detail miss = {app.detail_miss:.3f}" in title
    floor = app.floors["detail_miss"]
    assert f"(floor {floor.mean:.3f} ± {floor.sd:.3f})" in title


def test_at_500_points_the_verdict_is_floor_reports(ring8, cosine, app):
    exact = SamplerApp(oracle.eps_fn(ring8, cosine), cosine, ring8, n=500, n_paths=0, sampler="heun", steps=32)
    report = metrics.floor_report(exact.result.x.float(), ring8, reference=exact.reference)
    assert exact.verdict is True and report["at_floor"] is True
    assert exact.mmd2 == pytest.approx(report["mmd2"]) and exact.detail_miss == pytest.approx(report["detail_miss"])
    assert exact._title.get_text().endswith("at the floor (both ≤ mean + 3 sd): yes")
    exact.set_sampler("ddim")
    exact.set_grid("karras")
    exact.set_steps(4)  # Euler on the Karras grid at 4 steps: modes visibly smeared
    assert exact.verdict is False and exact._title.get_text().endswith(": no")
    assert exact.report["detail_miss"] > exact.floors["detail_miss"].threshold


def test_non_finite_points_are_counted_and_fail_the_verdict(app):
    x = app.reference.clone()
    x[:3] = float("nan")
    report = app.measure(x)
    assert report["lost"] == 3 and report["at_floor"] is False
    assert np.isfinite(report["mmd2"]) and np.isfinite(report["detail_miss"])
    report = app.measure(app.reference.clone())
    assert report["lost"] == 0 and report["at_floor"] is None and report["detail_miss"] == 0.0


def test_widget_has_the_controls(app):
    box = app.widget
    assert app.sampler_picker in box.children and app.errors in box.children


def test_pickers_come_from_the_registry_and_the_colour_follows_the_sampler(app):
    assert [value for _, value in app.sampler_picker.options] == list(samplers.SAMPLERS)
    assert [label for label, _ in app.sampler_picker.options] == [s.label for s in samplers.SAMPLERS.values()]
    assert list(app.grid_picker.options) == list(samplers.GRIDS)
    for name in ("ddim", "dpmpp_2m"):
        app.set_sampler(name)
        np.testing.assert_allclose(app.samples.get_facecolor()[0], to_rgba(samplers.SAMPLERS[name].colour))
        assert app._title.get_text().startswith(samplers.SAMPLERS[name].label)


@pytest.mark.parametrize("sampler", ["ddim", "heun", "dpmpp_2m"])
def test_the_grid_picker_runs_the_sampler_on_that_grid(app, sampler):
    app.set_sampler(sampler)
    app.set_steps(6)
    seen = {}
    for grid in samplers.GRIDS:
        app.set_grid(grid)
        assert app.last_error is None, app.last_error
        g = torch.Generator().manual_seed(app.seed + 1)
        direct = samplers.run(sampler, app.eps_fn, app.schedule, app.noise, 6, generator=g, grid=grid,
                              sigma_max=app.sigma_max)
        np.testing.assert_allclose(app.samples.get_offsets(), direct.x.numpy(), rtol=1e-5, atol=1e-6)
        assert f"{grid} grid" in app._title.get_text()
        seen[grid] = app.samples.get_offsets().copy()
    assert not np.allclose(*seen.values())  # the two grids give different samples at N = 6
    with pytest.raises(ValueError, match="grid must be one of"):
        app.set_grid("uniform")
