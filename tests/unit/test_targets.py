import pytest
import torch

from labkit import targets
from tests.helpers import gen


def test_required_targets_exist():
    assert {"ring8", "moons", "swiss_roll", "checkerboard", "spirals", "text"} <= set(targets.names())


@pytest.mark.parametrize("name", targets.names())
def test_sample_shapes_labels_and_range(name):
    t = targets.get(name)
    x, c = t.sample(500, gen(0))
    assert x.shape == (500, t.dim) and x.dtype == torch.float32
    assert c.shape == (500,) and c.dtype == torch.long
    assert torch.isfinite(x).all()
    assert c.min() >= 0 and c.max() < t.num_classes
    assert len(set(c.tolist())) == t.num_classes  # every class appears in 500 draws
    assert x.abs().max() < 3.5


@pytest.mark.parametrize("name", targets.names())
def test_conditional_sampling_returns_the_requested_class(name):
    t = targets.get(name)
    x_all, c_all = t.sample(2000, gen(0))
    x, c = t.sample(300, gen(1), classes=t.num_classes - 1)
    assert (c == t.num_classes - 1).all()
    # Points of class k lie where the joint sample's class-k points lie (close in mean).
    ref = x_all[c_all == t.num_classes - 1].mean(0)
    assert torch.allclose(x.mean(0), ref, atol=0.25)


@pytest.mark.parametrize("name", targets.names())
def test_same_generator_seed_gives_the_same_sample(name):
    t = targets.get(name)
    a, ca = t.sample(100, gen(7))
    b, cb = t.sample(100, gen(7))
    d, _ = t.sample(100, gen(8))
    assert torch.equal(a, b) and torch.equal(ca, cb)
    assert not torch.equal(a, d)


def test_ring8_is_eight_gaussians_of_radius_2_and_sd_0_1(ring8):
    assert ring8.num_classes == 8
    assert torch.allclose(ring8.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    assert torch.allclose(ring8.stds, torch.full((8,), 0.1, dtype=torch.float64))
    x, c = ring8.sample(8000, gen(0))
    resid = x.double() - ring8.means[c]
    assert resid.std().item() == pytest.approx(0.1, rel=0.05)


def test_text_points_lie_inside_the_glyphs():
    t = targets.get("text")
    x, c = t.sample(400, gen(0))
    for k, path in enumerate(t._paths):
        inside = path.contains_points(x[c == k].double().numpy())
        assert inside.all()
