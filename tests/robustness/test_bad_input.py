"""One test per input rule: each error is a ValueError/TypeError naming the parameter and its range."""

import math

import pytest
import torch

from labkit import guidance, metrics, oracle, samplers, schedules, targets
from labkit.model import EpsMLP
from labkit.train import new_model, train


@pytest.fixture(scope="module")
def exact(ring8, cosine):
    return oracle.eps_fn(ring8, cosine)


def test_unknown_target_name():
    with pytest.raises(ValueError, match=r"target must be one of \[.*ring8.*\], got 'ring9'"):
        targets.get("ring9")


def test_unknown_schedule_name():
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedules.get("sigmoid")


@pytest.mark.parametrize("steps", [0, -3])
def test_steps_below_one(exact, cosine, steps):
    noise = torch.randn(4, 2)
    for sampler in (samplers.ddim, samplers.heun):
        with pytest.raises(ValueError, match=r"steps must be in \[1, "):
            sampler(exact, cosine, noise, steps)


def test_steps_too_many_for_the_schedule(exact, cosine):
    t_max = cosine.last_t_below(80.0)
    with pytest.raises(ValueError, match=rf"steps must be in \[1, {t_max + 1}\]"):
        samplers.ddim(exact, cosine, torch.randn(4, 2), t_max + 2)
    with pytest.raises(ValueError, match=r"steps must be in \[1, 10000\]"):
        samplers.heun(exact, cosine, torch.randn(4, 2), 10_001)


def test_steps_must_be_an_integer(exact, cosine):
    with pytest.raises(TypeError, match="steps must be an integer"):
        samplers.ddim(exact, cosine, torch.randn(4, 2), 4.5)


@pytest.mark.parametrize("t", [-1, 1000, -0.5, 999.5, math.nan])
def test_t_outside_the_schedule(cosine, t):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 999\]"):
        cosine.t_to_sigma(torch.tensor([t], dtype=torch.float64))


def test_q_sample_t_outside_the_schedule(cosine):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 999\]"):
        cosine.q_sample(torch.zeros(2, 2), torch.tensor([0, 1000]), torch.zeros(2, 2))


@pytest.mark.parametrize("w", [-0.1, math.inf, math.nan])
def test_negative_or_non_finite_w(w):
    with pytest.raises(ValueError, match="w must be"):
        guidance.cfg(EpsMLP(num_classes=2), 0, w)


def test_w_of_the_wrong_type():
    with pytest.raises(TypeError, match="w must be a real number"):
        guidance.cfg(EpsMLP(num_classes=2), 0, "2")


@pytest.mark.parametrize("shape", [(4,), (2, 2, 2)])
def test_noise_that_is_not_a_batch_of_points(exact, cosine, shape):
    with pytest.raises(ValueError, match=r"noise must have shape \(n, d\)"):
        samplers.ddim(exact, cosine, torch.randn(*shape), 4)


def test_points_of_the_wrong_dimension_for_a_2d_target(exact, cosine):
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        samplers.ddim(exact, cosine, torch.randn(4, 3), 4)


def test_noise_must_be_a_float_tensor(exact, cosine):
    with pytest.raises(TypeError, match="noise must be"):
        samplers.heun(exact, cosine, [[0.0, 0.0]], 4)
    with pytest.raises(TypeError, match="noise must be a floating tensor"):
        samplers.heun(exact, cosine, torch.zeros(3, 2, dtype=torch.long), 4)


def test_mmd_needs_two_points_and_matching_dimensions():
    with pytest.raises(ValueError, match="x must have at least 2 rows"):
        metrics.mmd2(torch.zeros(1, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="same dimension"):
        metrics.mmd2(torch.zeros(3, 2), torch.zeros(3, 3))


def test_sample_size_and_classes(ring8):
    with pytest.raises(ValueError, match=r"n must be in \[1, "):
        ring8.sample(0)
    with pytest.raises(ValueError, match=r"classes must lie in \[0, 7\]"):
        ring8.sample(3, classes=8)
    with pytest.raises(ValueError, match=r"classes must have shape \(3,\)"):
        ring8.sample(3, classes=torch.zeros(4, dtype=torch.long))


def test_eta_and_sigma_max(exact, cosine):
    with pytest.raises(ValueError, match=r"eta must be in \[0.0, 1.0\]"):
        samplers.ddim(exact, cosine, torch.randn(4, 2), 4, eta=1.5)
    with pytest.raises(ValueError, match="sigma_max must be in"):
        samplers.heun(exact, cosine, torch.randn(4, 2), 4, sigma_max=1e-6)


def test_schedule_parameters():
    with pytest.raises(ValueError, match=r"T must be in \[2, "):
        schedules.linear(T=1)
    with pytest.raises(ValueError, match="max_beta must be in"):
        schedules.cosine(max_beta=1.0)
    with pytest.raises(ValueError, match="beta_start must be in"):
        schedules.linear(beta_start=0.0)


def test_train_arguments(ring8, cosine):
    model = new_model(ring8, cosine)
    with pytest.raises(ValueError, match=r"steps must be in \[0, "):
        train(model, ring8, cosine, steps=-1, progress=False)
    with pytest.raises(ValueError, match=r"p_uncond must be in \[0.0, 1.0\]"):
        train(model, ring8, cosine, steps=1, p_uncond=2.0, progress=False)
    with pytest.raises(ValueError, match="does not match target"):
        train(model, targets.get("moons"), cosine, steps=1, progress=False)


def test_oracle_needs_a_mixture(cosine):
    with pytest.raises(TypeError, match="target must be a Gaussian mixture"):
        oracle.eps_fn(targets.get("moons"), cosine)
