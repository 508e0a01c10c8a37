"""The lab app driven through the corners of its controls, for every target and sampler:
finite arrows and points, no error (issue: widgets at their extremes)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import fields, targets  # noqa: E402
from labkit.widgets.lab import MAX_STEPS, MAX_W, LabApp  # noqa: E402


@pytest.mark.parametrize("name", targets.names(2))  # the lab offers the 2-D targets
def test_every_corner_of_the_lab_gives_finite_arrows_and_points(name):
    app = LabApp(name, train_steps=20, seed=0)
    app.train(blocking=True)  # a barely trained model: the corners must still be finite
    T = app.schedule.T
    for cls, w in ((None, 0.0), (0, 0.0), (app.target.num_classes - 1, MAX_W)):
        app.set_class(cls)
        if cls is not None:
            app.set_w(w)
        for t in (0, T // 2, T - 1):
            app.set_t(t)
            assert app.last_error is None, app.last_error
            uv = np.stack([np.asarray(app.quiver.U), np.asarray(app.quiver.V)], axis=1)
            assert np.isfinite(uv).all()
            # Arrows are drawn at a common length: the longest spans 0.9 of a grid cell.
            cell = 2 * app.lim / (app.size - 1)
            assert np.linalg.norm(uv, axis=1).max() == pytest.approx(0.9 * cell, rel=1e-5)
            raw = fields.score_field(app.eps_fn(), app.schedule, t, fields.grid(app.lim, app.size))
            assert torch.isfinite(raw).all()
        for sampler, steps in (("ddpm", 1), ("ddim", 1), ("ddim", MAX_STEPS), ("heun", 1), ("heun", MAX_STEPS)):
            app.set_steps(steps)
            app.set_sampler(sampler)  # without a UI loop each change re-renders the samples at once
            result = app.result
            assert app.last_error is None, app.last_error
            assert result.x.shape == (app.n, 2) and torch.isfinite(result.x).all(), (sampler, steps, cls, w)
            assert np.isfinite(np.asarray(app.sample_points.get_offsets())).all()
