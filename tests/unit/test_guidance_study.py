"""The guidance study: spread, precision/recall and MMD^2 per class against w, and the two ways of writing CFG."""

import math

import pytest
import torch

from labkit import guidance, oracle, train
from labkit.guidance import cfg, class_spread, guidance_study, precision, summarize_study


def test_cfg_w_form_equals_guidance_scale_form(ring8, cosine):
    """labkit's (1 + w) eps_c - w eps_null is diffusers'/GLIDE's eps_null + s (eps_c - eps_null), s = 1 + w."""
    model = train.new_model(ring8, cosine, seed=0)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    t = torch.full((64,), 250.0)
    eps_c, eps_null = cfg(model, 2, 0.0)(x, t), cfg(model, None, 0.0)(x, t)
    for w in (0.0, 0.5, 3.0):
        s = 1.0 + w
        assert torch.allclose(cfg(model, 2, w)(x, t), eps_null + s * (eps_c - eps_null), atol=1e-5)


def test_class_spread_of_a_gaussian_is_sd_times_sqrt_pi_over_2():
    x = 0.3 * torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0)) + 5.0
    assert class_spread(x) == pytest.approx(0.3 * math.sqrt(math.pi / 2), rel=0.02)


def test_precision_is_one_on_the_reference_and_zero_far_from_it():
    ref = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    assert precision(ref, ref) == 1.0
    assert precision(ref + 20.0, ref) == 0.0
    collapsed = torch.zeros(300, 2)
    assert precision(collapsed, ref) == 1.0          # all samples on the support: full fidelity ...
    assert precision(ref, collapsed + 1e-3 * ref) < 0.2  # ... but they cover little of it: low recall
    with pytest.raises(ValueError, match="k"):
        precision(ref, ref[:3], k=3)


def test_exact_guidance_sharpens_each_class(ring8, cosine):
    rows = guidance_study(oracle.MixtureEps(ring8, cosine), ring8, cosine, ws=(0.0, 4.0), classes=[0, 5],
                          n=300, steps=16)
    assert len(rows) == 4 and {r["class"] for r in rows} == {0, 5}
    for c in (0, 5):
        plain, guided = (next(r for r in rows if r["class"] == c and r["w"] == w) for w in (0.0, 4.0))
        assert plain["s"] == 1.0 and guided["s"] == 5.0
        assert plain["mmd2"] < 0.05                                    # w = 0: p(x | c) itself
        assert abs(plain["spread"] - plain["target_spread"]) < 0.03
        assert guided["spread"] < 0.7 * plain["spread"]                # less diversity ...
        assert guided["recall"] < plain["recall"] - 0.3
        assert guided["mmd2"] > 10 * plain["mmd2"]                     # ... and further from p(x | c)
    summary = summarize_study(rows)
    assert [r["w"] for r in summary] == [0.0, 4.0]
    assert summary[0]["spread"] == pytest.approx((rows[0]["spread"] + rows[2]["spread"]) / 2)
    assert "precision" in guidance.format_study(summary).splitlines()[0]


def test_study_checks_its_inputs(ring8, cosine):
    model = oracle.MixtureEps(ring8, cosine)
    with pytest.raises(ValueError, match="w"):
        guidance_study(model, ring8, cosine, ws=(-1.0,), n=10)
    with pytest.raises(ValueError, match="classes"):
        guidance_study(model, ring8, cosine, ws=(0.0,), classes=[8], n=10)
    with pytest.raises(ValueError, match="ws"):
        guidance_study(model, ring8, cosine, ws=(), n=10)
