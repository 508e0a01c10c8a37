import threading

import pytest
import torch

from labkit import diagnostics, metrics, samplers
from labkit.train import DEFAULTS, new_model, recipe, train
from tests.helpers import gen


@pytest.fixture(scope="module")
def trained(ring8, cosine):
    model = new_model(ring8, cosine, seed=0)
    history = train(model, ring8, cosine, progress=False)
    return model, history


def test_default_recipe_reaches_the_strict_floor_with_ddpm_and_dpm_solver_at_16_steps(trained, ring8, cosine):
    """metrics.at_floor (seed MMD and detail_miss) in each of 3 seeds of 1000 class-conditional samples,
    labels drawn at ring8's frequencies (c ~ p(c), x ~ p(x | c): a sample of ring8 itself)."""
    model, history = trained
    assert len(history) == DEFAULTS["steps"]
    assert sum(history[-200:]) / 200 < sum(history[:200]) / 200
    eps_fn = model.eps_fn(ring8.sample(3000, gen(30))[1])
    for name, steps in (("ddpm", None), ("dpmpp_2m", 16)):
        noise = torch.randn(3000, 2, generator=gen(40))
        x = samplers.run(name, eps_fn, cosine, noise, steps, generator=gen(50)).x
        reports = [metrics.floor_report(x[i::3], ring8, generator=gen(60 + i)) for i in range(3)]
        assert all(r["at_floor"] for r in reports), (name, reports)
        # and the modes have ring8's width (sd 0.1), measured directly
        assert abs(diagnostics.mode_stats(x, ring8).rms_distance - 0.1) < 0.015, name


def test_same_seed_gives_bitwise_identical_history_and_weights(ring8, cosine):
    runs = []
    for _ in range(2):
        model = new_model(ring8, cosine, seed=3)
        history = train(model, ring8, cosine, steps=60, seed=5, progress=False)
        noise = torch.randn(50, 2, generator=gen(0))
        runs.append((history, model.state_dict(), samplers.heun(model.eps_fn(), cosine, noise, 4).x))
    (h1, w1, x1), (h2, w2, x2) = runs
    assert h1 == h2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert torch.equal(x1, x2)
    other = train(new_model(ring8, cosine, seed=3), ring8, cosine, steps=60, seed=6, progress=False)
    assert other != h1


def test_training_continues_from_the_current_weights(ring8, cosine):
    model = new_model(ring8, cosine, seed=1)
    history = train(model, ring8, cosine, steps=300, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train(model, ring8, cosine, steps=300, seed=1, history=history, progress=False)
    assert len(history) == 600
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Continuing, not restarting: the second call starts near where the first ended.
    assert sum(history[300:320]) / 20 < sum(history[:20]) / 20


def test_stop_event_ends_training_after_a_completed_step(ring8, cosine):
    model = new_model(ring8, cosine, seed=0)
    stop = threading.Event()
    seen = []

    def callback(step, loss):
        seen.append(step)
        if step == 9:
            stop.set()

    history = train(model, ring8, cosine, steps=1000, stop=stop, callback=callback, progress=False)
    assert len(history) == 10 == len(seen)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_keyboard_interrupt_keeps_model_and_history_consistent(ring8, cosine):
    import os
    import signal

    model = new_model(ring8, cosine, seed=0)

    def callback(step, loss):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    history = train(model, ring8, cosine, steps=100, callback=callback, progress=False)
    assert len(history) == 5
    # The weights are exactly those after 5 steps: replay the same call stopped at the same count.
    replay = new_model(ring8, cosine, seed=0)
    stop = threading.Event()
    train(replay, ring8, cosine, steps=100, progress=False, stop=stop,
          callback=lambda step, loss: stop.set() if step == 4 else None)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), replay.parameters()))


def test_recipe_is_the_defaults_updated_by_the_target_and_new_model_follows_it(ring8, cosine):
    from labkit import targets as targets_module
    from labkit.model import EpsMLP

    assert recipe(ring8) == DEFAULTS and {"steps", "batch_size", "lr", "p_uncond", "width", "depth"} <= set(DEFAULTS)

    class Small(type(ring8)):
        recipe = {"width": 24, "depth": 2, "lr": 3e-3}

    small = Small("small", ring8.means, ring8.stds)
    assert recipe(small) == {**DEFAULTS, "width": 24, "depth": 2, "lr": 3e-3}
    model = new_model(small, cosine, seed=0)
    assert isinstance(model, EpsMLP) and (model.config["width"], model.config["depth"]) == (24, 2)
    assert model.num_classes == small.num_classes and model.dim == small.dim == 2 and model.T == cosine.T
    assert new_model(small, cosine, seed=0, width=8).config["width"] == 8   # keyword arguments win
    assert isinstance(targets_module.get("moons").recipe, dict)


def test_new_model_is_seeded_and_leaves_the_global_rng_alone(ring8, cosine):
    state = torch.random.get_rng_state()
    a, b, c = (new_model(ring8, cosine, seed=s) for s in (4, 4, 5))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    with pytest.raises(ValueError, match="seed"):
        new_model(ring8, cosine, seed=2**63)


def test_spirals_recipe_builds_seeded_fourier_features(cosine):
    from labkit import targets as targets_module

    spirals = targets_module.get("spirals")
    a, b, c = (new_model(spirals, cosine, seed=s) for s in (4, 4, 5))
    assert recipe(spirals)["fourier"] == 16 and a.x_features.B.shape == (2, 16)
    assert a.net[0].in_features == 2 + 2 * 16 + a.time_dim + a.config["class_dim"]
    assert torch.equal(a.x_features.B, b.x_features.B) and not torch.equal(a.x_features.B, c.x_features.B)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    angle = 2 * torch.pi * x @ a.x_features.B
    assert torch.allclose(a.x_features(x), torch.cat([x, angle.sin(), angle.cos()], 1))


def test_one_loop_serves_every_loss(ring8, cosine):
    """fit runs any loss(x0, c, g): the eps loss of train, the DSM loss of the score nets, and a new one."""
    from labkit import dsm
    from labkit.train import fit, seeded

    # The single-sigma score net is fit() on dsm_loss: rebuild it by hand and get the same run, bit for bit.
    net, history = dsm.train_single_sigma(ring8, 0.5, steps=30, seed=2)
    replica = seeded(2, dsm.ScoreNet, 0.5)
    replay = fit(replica, ring8, lambda x0, c, g: dsm.dsm_loss(replica, x0, 0.5, torch.randn(x0.shape, generator=g)),
                 steps=30, batch_size=256, lr=1e-2, seed=2, progress=False)
    assert replay == history
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), replica.parameters()))
    # Another loss through the same loop (a regression of x0 on a constant, as a stand-in for a future
    # flow-matching loss): it sees batches of the target's pool and its loss goes down.
    bias = torch.nn.Linear(1, 2)
    seen = []

    def mean_loss(x0, c, g):
        seen.append((x0.shape, c.shape))
        return (bias(torch.ones(len(x0), 1)) - (x0 + 3.0)).square().mean()

    losses = fit(bias, ring8, mean_loss, steps=200, batch_size=64, lr=0.05, progress=False)
    assert len(losses) == 200 and seen[0] == (torch.Size([64, 2]), torch.Size([64]))
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20])
    fitted = bias(torch.ones(1, 1))[0]
    assert (fitted - 3.0).abs().max() < 0.3, fitted   # ring8's mean is the origin: the fit is the shift
    with pytest.raises(ValueError, match="batch_size"):
        fit(bias, ring8, mean_loss, steps=1, batch_size=0, lr=0.1)


def test_train_rejects_a_model_that_does_not_fit_the_target(ring8, cosine):
    from labkit import schedules
    from labkit.model import EpsMLP

    with pytest.raises(ValueError, match="dim"):
        train(EpsMLP(ring8.num_classes, T=cosine.T, dim=3), ring8, cosine, steps=1, progress=False)
    with pytest.raises(ValueError, match="T"):
        train(new_model(ring8, cosine), ring8, schedules.cosine(T=10), steps=1, progress=False)


def test_ema_leaves_the_moving_average_of_the_completed_steps_in_the_model(ring8, cosine):
    model = new_model(ring8, cosine, seed=2)
    start = [p.detach().clone() for p in model.parameters()]
    raw, stop = [], threading.Event()

    def callback(step, loss):  # the optimizer's own weights after each completed step
        raw.append([p.detach().clone() for p in model.parameters()])
        if step == 29:
            stop.set()

    history = train(model, ring8, cosine, steps=100, ema=0.9, stop=stop, callback=callback, progress=False)
    assert len(history) == len(raw) == 30
    average = start
    for k, weights in enumerate(raw):  # decay min(ema, (1 + k) / (10 + k)) after the k-th step
        decay = min(0.9, (1 + k) / (10 + k))
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    assert all(torch.allclose(p, a, atol=1e-6) for p, a in zip(model.parameters(), average))
    assert not all(torch.allclose(p, w, atol=1e-4) for p, w in zip(model.parameters(), raw[-1]))
    # Stopped or not, the model is the average: a replay of the same 30 steps gives it bit for bit,
    # and a later call continues from it (an empty call leaves it as it is).
    replay, seen = new_model(ring8, cosine, seed=2), []
    train(replay, ring8, cosine, steps=100, ema=0.9, progress=False, stop=lambda: len(seen) == 30,
          callback=lambda step, loss: seen.append(step))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), replay.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    assert train(model, ring8, cosine, steps=0, ema=0.9, progress=False) == []
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))


def test_train_rejects_bad_ema(ring8, cosine):
    model = new_model(ring8, cosine)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ema"):
            train(model, ring8, cosine, steps=1, ema=bad, progress=False)
    with pytest.raises(TypeError, match="ema"):
        train(model, ring8, cosine, steps=1, ema="0.9", progress=False)


def test_t_lognormal_draws_that_share_of_t_at_edms_noise_levels(ring8, cosine, monkeypatch):
    """t_lognormal = 1: every t comes from ln sigma ~ N(-1.2, 1.2^2) taken to the timestep grid (median
    sigma 0.30, where uniform t's is about 1); 0 draws nothing extra: DDPM's training bit for bit."""
    seen, q_sample = [], cosine.q_sample
    monkeypatch.setattr(cosine, "q_sample", lambda x0, t, eps, check=True: seen.append(t) or q_sample(x0, t, eps))
    train(new_model(ring8, cosine), ring8, cosine, steps=4, t_lognormal=1.0, progress=False)
    log_sigma = cosine.sigmas[torch.cat(seen)].log()
    assert abs(float(log_sigma.median()) + 1.2) < 0.15 and abs(float(log_sigma.std()) - 1.2) < 0.15
    seen.clear()
    train(new_model(ring8, cosine), ring8, cosine, steps=4, progress=False)
    assert float(cosine.sigmas[torch.cat(seen)].median()) > 0.8
    runs = [train(new_model(ring8, cosine), ring8, cosine, steps=20, progress=False, **kw)
            for kw in ({}, {"t_lognormal": 0.0}, {"t_lognormal": 0.5})]
    assert runs[0] == runs[1] != runs[2]
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="t_lognormal"):
            train(new_model(ring8, cosine), ring8, cosine, steps=1, t_lognormal=bad, progress=False)
