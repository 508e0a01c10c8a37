import pytest
import torch

from labkit import guidance, oracle, schedules, targets
from labkit.model import EpsMLP
from tests.helpers import gen


class CountingModel(torch.nn.Module):
    """Wraps an EpsMLP and records the batch size of every forward call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.num_classes, self.calls = model, model.num_classes, []

    def forward(self, x, t, c):
        self.calls.append(len(x))
        return self.model(x, t, c)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return EpsMLP(num_classes=8).eval()


def _inputs(n=16):
    return torch.randn(n, 2, generator=gen(0)), torch.full((n,), 500.0)


def test_w0_is_the_conditional_model_in_one_call(model):
    counting = CountingModel(model)
    x, t = _inputs()
    c = torch.arange(16) % 8
    out = guidance.cfg(counting, c, 0.0)(x, t)
    assert torch.equal(out, model(x, t, c))
    assert counting.calls == [16]


def test_positive_w_follows_the_formula_in_one_batched_call(model):
    counting = CountingModel(model)
    x, t = _inputs()
    c = torch.arange(16) % 8
    w = 2.5
    out = guidance.cfg(counting, c, w)(x, t)
    eps_c, eps_null = model(x, t, c), model(x, t, torch.full((16,), 8))
    assert torch.allclose(out, (1 + w) * eps_c - w * eps_null, atol=1e-6)
    assert counting.calls == [32]  # conditional and null halves together


def test_w_form_equals_the_guidance_scale_form_of_diffusers(model):
    # diffusers / GLIDE: eps_null + s (eps_c - eps_null) with s = 1 + w.
    x, t = _inputs()
    w = 3.0
    out = guidance.cfg(model, 5, w)(x, t)
    eps_c, eps_null = model(x, t, torch.full((16,), 5)), model(x, t, torch.full((16,), 8))
    assert torch.allclose(out, eps_null + (1 + w) * (eps_c - eps_null), atol=1e-5)


def test_unconditional_is_the_null_token(model):
    x, t = _inputs()
    assert torch.equal(guidance.cfg(model, None, 0.0)(x, t), model(x, t, torch.full((16,), 8)))
    assert torch.equal(model.eps_fn()(x, t), model(x, t))


def test_cfg_works_on_the_exact_mixture_score():
    ring8 = targets.get("ring8")
    exact = oracle.MixtureEps(ring8, schedules.cosine())
    x, t = _inputs()
    x = x.double()
    guided = guidance.cfg(exact, 2, 1.0)(x, t.double())
    expected = 2 * exact(x, t.double(), torch.full((16,), 2)) - exact(x, t.double())
    assert torch.allclose(guided, expected)


def test_output_keeps_the_input_dtype(model):
    x, t = _inputs()
    out = guidance.cfg(model, 1, 1.0)(x.double(), t.double())
    assert out.dtype == torch.float64


def test_a_guided_call_counts_two_network_forwards():
    from labkit import samplers

    ring8, cosine = targets.get("ring8"), schedules.cosine()

    exact = oracle.MixtureEps(ring8, cosine)
    noise = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert samplers.heun(guidance.cfg(exact, 2, 0.0), cosine, noise, 4).nfe == 7
    assert samplers.heun(guidance.cfg(exact, 2, 1.5), cosine, noise, 4).nfe == 14  # conditional and null halves
    assert samplers.ddim(guidance.cfg(exact, 2, 1.5), cosine, noise, 4).nfe == 8
