"""Continuous conditioning on the ring radius: a small model trained briefly samples at the radius asked for."""

import math

import pytest
import torch

from labkit import continuous, guidance, schedules, train
from labkit.continuous import RadiusRing
from labkit.model import EpsMLP


@pytest.fixture(scope="module")
def trained():
    schedule = schedules.cosine()
    model = train.new_model(RadiusRing(), schedule, seed=0)
    history = train.train(model, RadiusRing(), schedule, steps=1000, batch_size=256, lr=3e-3, progress=False)
    return model, schedule, history


def test_ring_samples_lie_at_their_radius():
    ring = RadiusRing(0.5, 2.5, noise=0.05)
    x, r = ring.sample(5000, torch.Generator().manual_seed(0))
    assert x.shape == (5000, 2) and r.shape == (5000,)
    assert 0.5 <= float(r.min()) and float(r.max()) <= 2.5
    assert (x.norm(dim=1) - r).abs().mean() < 0.05          # radial noise sd 0.05: mean |error| ~ 0.04
    x1, _ = ring.sample(2000, torch.Generator().manual_seed(1), radius=1.7)
    assert abs(continuous.mean_radius(x1) - 1.7) < 0.01


def test_ring_rejects_radius_outside_its_range():
    with pytest.raises(ValueError, match="radius"):
        RadiusRing(0.5, 2.5).sample(10, radius=3.0)
    with pytest.raises(ValueError, match="r_max"):
        RadiusRing(2.0, 1.0)


def test_training_lowers_the_loss(trained):
    _, _, history = trained
    assert len(history) == 1000
    assert sum(history[-100:]) / 100 < 0.8 * sum(history[:100]) / 100


@pytest.mark.parametrize("radius", [0.75, 1.5, 2.25])
def test_samples_requested_at_r_have_mean_radius_close_to_r(trained, radius):
    model, schedule, _ = trained
    x = continuous.sample_at_radius(model, schedule, radius, 400, generator=torch.Generator().manual_seed(2)).x
    assert torch.isfinite(x).all()
    assert abs(continuous.mean_radius(x) - radius) < 0.15


def test_null_condition_is_nan_and_guidance_combines_both(trained):
    model, _, _ = trained
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    t = torch.full((50,), 300.0)
    eps_r = model(x, t, torch.full((50,), 1.0))
    eps_null = model(x, t, torch.full((50,), math.nan))
    assert torch.allclose(guidance.cfg(model, None)(x, t), eps_null)
    assert torch.allclose(model(x, t, None), eps_null)
    assert not torch.allclose(eps_r, eps_null)
    guided = guidance.cfg(model, 1.0, w=2.0)(x, t)
    assert torch.allclose(guided, 3.0 * eps_r - 2.0 * eps_null, atol=1e-5)


def test_cfg_rejects_bad_guidance_of_the_radius_model():
    model = train.new_model(RadiusRing(), schedules.cosine())
    with pytest.raises(ValueError, match="w"):
        guidance.cfg(model, 1.0, w=-1.0)
    with pytest.raises(ValueError, match="classes"):
        guidance.cfg(model, None, w=1.0)
    with pytest.raises(TypeError, match="model"):
        guidance.cfg(object(), 1.0)
    with pytest.raises(TypeError, match="classes"):
        guidance.cfg(model, "1.0", w=1.0)


def test_train_checks_its_inputs():
    schedule = schedules.cosine()
    model = train.new_model(RadiusRing(), schedule)
    with pytest.raises(ValueError, match="p_uncond"):
        train.train(model, RadiusRing(), schedule, steps=1, p_uncond=1.5, progress=False)
    with pytest.raises(TypeError, match="target"):
        train.train(model, "ring", schedule, steps=1, progress=False)
    with pytest.raises(ValueError, match="cond"):  # a class-label model on the radius ring
        train.train(EpsMLP(0, T=schedule.T), RadiusRing(), schedule, steps=1, progress=False)


def test_the_radius_model_is_an_eps_mlp_with_a_scalar_condition_and_cfg_guides_it_in_one_call():
    schedule = schedules.cosine()
    model = train.new_model(RadiusRing(), schedule, seed=1)
    assert type(model) is EpsMLP and model.cond == "scalar" and math.isnan(model.null)
    assert dict(train.recipe(RadiusRing()), cond="scalar") == train.recipe(RadiusRing())
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    x, t = torch.randn(7, 2, generator=torch.Generator().manual_seed(4)), torch.full((7,), 100.0)
    w, r = 1.5, torch.linspace(0.5, 2.5, 7)
    guided = guidance.cfg(model, r, w)(x, t)
    assert calls == [14]
    expected = (1 + w) * model(x, t, r) - w * model(x, t, torch.full((7,), math.nan))
    assert torch.allclose(guided, expected, atol=1e-6)
    # A different radius gives a different eps: the condition is used.
    assert not torch.allclose(model(x, t, r), model(x, t, r + 0.5))
