"""Chapter 10's widgets: the t slider over noised digits and the w slider / class picker over guided samples."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from labkit import digits, schedules, targets, train  # noqa: E402
from labkit.model import EpsMLP  # noqa: E402
from labkit.widgets.digits import GuidedDigitsApp, NoisedDigitsApp  # noqa: E402
from tests.helpers import rejects  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    target, schedule = targets.get("digits"), schedules.cosine()
    model = train.seeded(0, EpsMLP, 10, T=schedule.T, dim=64, width=64, depth=2)
    return target, schedule, model, digits.classifier(target)


def test_t_slider_noises_the_row_in_closed_form_and_redraws_in_place(setup):
    target, schedule, _, _ = setup
    app = NoisedDigitsApp(target, schedule, n=6)
    image = app.image
    assert np.allclose(image.get_array()[:8, :8], app.x_t[0].reshape(8, 8).numpy())
    assert (app.x_t - app.x0).abs().max() < 0.1        # t = 0: barely noised
    for t in (500, schedule.T - 1, 0):
        app.t_slider.value = t            # through the control, as a student drags it
        assert app.last_error is None, app.last_error
        assert app.t == t and app.image is image
        abar = float(schedule.alphas_cumprod[t])
        expected = abar**0.5 * app.x0 + (1 - abar) ** 0.5 * app.eps
        assert torch.allclose(app.x_t, expected)
        assert np.allclose(image.get_array()[:8, 9:17], expected[1].reshape(8, 8).numpy())
        assert f"t = {t}" in app.ax.get_title()
    rejects(lambda: app.set_t(schedule.T), "t")


def test_w_slider_and_class_picker_resample_with_accuracy_and_diversity_in_the_title(setup):
    target, schedule, model, clf = setup
    app = GuidedDigitsApp(model, target, schedule, clf, n=20, steps=3, w=0.0)
    image, before = app.image, app.samples.clone()
    app.w_slider.value = 4.0
    assert app.last_error is None, app.last_error
    assert app.w == 4.0 and app.image is image and not torch.equal(app.samples, before)
    labels = torch.full((20,), 0)
    assert app.accuracy == digits.accuracy(clf, app.samples, labels)
    assert app.diversity == pytest.approx(digits.diversity(app.samples, labels))
    assert f"{app.accuracy:.0%}" in app.ax.get_title() and f"{app.diversity:.2f}" in app.ax.get_title()
    before = app.samples.clone()
    app.class_picker.value = 9
    assert app.last_error is None and app.cls == 9 and not torch.equal(app.samples, before)
    assert "class 9" in app.ax.get_title()
    assert np.isfinite(image.get_array()).any()
    rejects(lambda: app.set_w(-1.0), "w")
    rejects(lambda: app.set_class(10), "cls")
    rejects(lambda: GuidedDigitsApp(model, target, schedule, clf, sampler="ddpm"), "sampler")
