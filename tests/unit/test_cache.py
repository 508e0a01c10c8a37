"""labkit.cache: train once, load after; corrupted or mismatched files are trained over."""

import pytest
import torch

from labkit import cache, checkpoints, schedules, train
from tests.helpers import rejects

SMALL = {"steps": 30, "batch_size": 64, "width": 16, "depth": 2}


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def no_training(*args, **kwargs):
    raise AssertionError("trained although the model was in the cache")


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_directory_follows_the_environment_variable(empty_cache, monkeypatch, tmp_path):
    assert cache.directory() == empty_cache
    monkeypatch.delenv(cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if cache.sys.platform.startswith("linux"):
        assert cache.directory() == tmp_path / "xdg" / "labkit"
    assert cache.directory().name in ("labkit", "cache")


def test_trains_once_then_loads_the_same_model(ring8, cosine, monkeypatch):
    model, history = cache.trained_model(ring8, cosine, seed=3, progress=False, **SMALL)
    path = cache.path_for(ring8, cosine, seed=3, **SMALL)
    assert path.exists() and len(history) == SMALL["steps"]
    reference = train.new_model(ring8, cosine, seed=3, width=16, depth=2)
    expected = train.train(reference, ring8, cosine, seed=3, progress=False, steps=30, batch_size=64)
    assert same_weights(model, reference) and history == pytest.approx(expected, abs=1e-6)
    monkeypatch.setattr(cache._train, "train", no_training)
    again, history_again = cache.trained_model("ring8", "cosine", seed=3, progress=False, **SMALL)
    assert same_weights(again, model) and history_again == pytest.approx(history, abs=1e-6)
    assert not again.training


def test_key_separates_every_setting(ring8, cosine, monkeypatch):
    base = cache.path_for(ring8, cosine, **SMALL)
    others = [cache.path_for(ring8, cosine, seed=1, **SMALL),
              cache.path_for("moons", cosine, **SMALL),
              cache.path_for(ring8, schedules.linear(), **SMALL),
              cache.path_for(ring8, schedules.cosine(s=0.01), **SMALL),
              *(cache.path_for(ring8, cosine, **{**SMALL, k: v})
                for k, v in {"steps": 31, "batch_size": 65, "lr": 5e-3, "p_uncond": 0.2, "width": 17,
                             "depth": 3, "time_dim": 16, "class_dim": 8, "fourier": 4}.items())]
    assert len({base, *others}) == len(others) + 1
    assert cache.path_for(ring8, cosine, **SMALL, lr=train.DEFAULTS["lr"]) == base  # defaults filled in
    monkeypatch.setattr(cache, "__version__", "999.0")
    assert cache.path_for(ring8, cosine, **SMALL) != base


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped byte", "empty"])
def test_a_corrupted_file_is_trained_over(ring8, cosine, damage):
    model, _ = cache.trained_model(ring8, cosine, progress=False, **SMALL)
    path = cache.path_for(ring8, cosine, **SMALL)
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint", "truncated": data[: len(data) // 2], "empty": b"",
                      "flipped byte": data[:-2000] + bytes([data[-2000] ^ 0xFF]) + data[-1999:]}[damage])
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load(path)
    again, history = cache.trained_model(ring8, cosine, progress=False, **SMALL)
    assert same_weights(again, model) and len(history) == SMALL["steps"]
    assert same_weights(checkpoints.load(path)[0], model)  # the file was rewritten, intact


def test_a_file_of_another_model_under_the_key_is_trained_over(ring8, cosine):
    other, _ = cache.trained_model(ring8, cosine, progress=False, **{**SMALL, "width": 8})
    path = cache.path_for(ring8, cosine, **SMALL)
    path.write_bytes(cache.path_for(ring8, cosine, **{**SMALL, "width": 8}).read_bytes())
    model, _ = cache.trained_model(ring8, cosine, progress=False, **SMALL)
    assert model.config["width"] == 16 and checkpoints.load(path)[0].config["width"] == 16
    checkpoints.save(model, path, target="moons", schedule="cosine", history=[0.0] * SMALL["steps"])
    again, _ = cache.trained_model(ring8, cosine, progress=False, **SMALL)
    assert checkpoints.load(path)[1]["target"] == "ring8" and same_weights(again, model)


def test_store_puts_a_live_trained_model_where_trained_model_finds_it(ring8, cosine, monkeypatch):
    model = train.new_model(ring8, cosine, seed=0, width=16, depth=2)
    history = train.train(model, ring8, cosine, seed=0, progress=False, steps=30, batch_size=64)
    path = cache.store(model, history, ring8, cosine, seed=0, **SMALL)
    assert path == cache.path_for(ring8, cosine, **SMALL)
    monkeypatch.setattr(cache._train, "train", no_training)
    loaded, loaded_history = cache.trained_model(ring8, cosine, progress=False, **SMALL)
    assert same_weights(loaded, model) and loaded_history == pytest.approx(history, abs=1e-6)


def test_store_refuses_a_model_that_is_not_the_recipe(ring8, cosine):
    model = train.new_model(ring8, cosine, seed=0, width=16, depth=2)
    history = train.train(model, ring8, cosine, progress=False, steps=30, batch_size=64)
    assert "history" in rejects(lambda: cache.store(model, history + [1.0], ring8, cosine, **SMALL), "history")
    rejects(lambda: cache.store(model, history, ring8, cosine, **{**SMALL, "width": 32}), "model")
    rejects(lambda: cache.store("weights", history, ring8, cosine, **SMALL), "model")
    assert not cache.directory().exists() or not any(cache.directory().iterdir())


def test_bad_input_is_named(ring8, cosine):
    rejects(lambda: cache.trained_model(ring8, cosine, stepz=10), "recipe")
    rejects(lambda: cache.trained_model(ring8, cosine, seed=-1), "seed")
    rejects(lambda: cache.trained_model(42, cosine), "target")
    rejects(lambda: cache.trained_model(ring8, [0.1, 0.2]), "schedule")
    rejects(lambda: cache.trained_model(ring8, cosine, steps=0.5), "steps")
    assert not cache.directory().exists()


def test_chapter_3s_live_run_is_the_model_trained_model_trains(ring8, cosine, empty_cache, monkeypatch, tmp_path):
    from labkit.widgets.training import TrainingApp

    net = train.new_model(ring8, cosine, seed=0, width=16, depth=2)
    app = TrainingApp(ring8, cosine, model=net, steps=SMALL["steps"], batch_size=SMALL["batch_size"], seed=0)
    app.train()
    cache.store(net, app.history, ring8, cosine, seed=0, **SMALL)
    monkeypatch.setenv(cache.ENV, str(tmp_path / "elsewhere"))  # an empty cache: trained_model trains
    trained, history = cache.trained_model(ring8, cosine, progress=False, **SMALL)
    assert same_weights(trained, net) and history == pytest.approx(app.history, abs=1e-6)
