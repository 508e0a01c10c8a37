"""Checkpoints never lose or corrupt a model and never run code from the file.

A round trip is exact; a truncated, bit-flipped, foreign, mismatched or non-finite file raises
labkit.checkpoints.CheckpointError (a flipped byte either raises or changes nothing); a pickle
that would run code is refused before anything runs; a config that would build a huge network
is refused without allocating it; a crash while saving keeps the previous file.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit import checkpoints
from labkit.model import EpsMLP

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
CALLS: list[str] = []  # what a malicious pickle would append to, were it ever run


def _record(text):
    CALLS.append(text)
    return text


def tiny(seed=0, **config):
    torch.manual_seed(seed)
    return EpsMLP(**{"num_classes": 3, "T": 50, "width": 8, "depth": 1, **config})


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, bytes, model) of one small valid checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    model = tiny(1)
    checkpoints.save(model, path, target="ring8", schedule="cosine", history=[0.9, 0.5, 0.25], train_seconds=1.25)
    return path, path.read_bytes(), model


# ---------------------------------------------------------------- round trip

@settings(SETTINGS, max_examples=40)
@given(num_classes=st.integers(0, 9), T=st.integers(2, 2000), width=st.integers(1, 24), depth=st.integers(1, 3),
       time_dim=st.integers(1, 6).map(lambda k: 2 * k), class_dim=st.integers(1, 6), double=st.booleans(),
       seed=st.integers(0, 99),
       target=st.one_of(st.none(), st.text(max_size=10)), schedule=st.sampled_from([None, "cosine", "linear"]),
       history=st.one_of(st.none(), st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20)),
       seconds=st.one_of(st.none(), st.floats(0, 1e6)))
def test_round_trip_is_bit_exact_for_any_config_and_metadata(tmp_path_factory, num_classes, T, width, depth,
                                                             time_dim, class_dim, double, seed, target, schedule,
                                                             history, seconds):
    model = tiny(seed, num_classes=num_classes, T=T, width=width, depth=depth, time_dim=time_dim,
                 class_dim=class_dim)
    if double:
        model = model.double()
    path = tmp_path_factory.mktemp("rt") / "m.pt"
    checkpoints.save(model, path, target=target, schedule=schedule, history=history, train_seconds=seconds)
    loaded, meta = checkpoints.load(path)
    assert loaded.config == model.config and same_weights(model, loaded) and not loaded.training
    assert meta == {"config": model.config, "target": target, "schedule": schedule,
                    "history": list(history or []), "train_seconds": seconds}
    x = torch.randn(5, 2, dtype=next(model.parameters()).dtype)
    t = torch.linspace(0, T - 1, 5, dtype=x.dtype)
    assert torch.equal(model(x, t), loaded(x, t))
    assert not list(path.parent.glob("*.tmp"))


# ---------------------------------------------------------------- damaged files

@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@settings(SETTINGS, max_examples=200)
@given(data=st.data())
def test_a_truncated_file_is_refused(saved, tmp_path_factory, data):
    _, blob, _ = saved
    cut = data.draw(st.integers(0, len(blob) - 1))
    path = tmp_path_factory.mktemp("cut") / "cut.pt"
    path.write_bytes(blob[:cut])
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@settings(SETTINGS, max_examples=300)
@given(data=st.data())
def test_a_corrupted_byte_is_refused_or_harmless(saved, tmp_path_factory, data):
    """torch's zip reader does not check CRCs, so the stored SHA-256 is what catches a flipped byte
    in the weights; a flip in unused bytes of the zip may load, and then it changed nothing."""
    _, blob, model = saved
    pos = data.draw(st.integers(0, len(blob) - 1))
    mask = data.draw(st.integers(1, 255))
    damaged = bytearray(blob)
    damaged[pos] ^= mask
    path = tmp_path_factory.mktemp("flip") / "flip.pt"
    path.write_bytes(bytes(damaged))
    try:
        loaded, meta = checkpoints.load(path)
    except checkpoints.CheckpointError:
        return
    assert same_weights(model, loaded) and loaded.config == model.config
    assert meta["history"] == [0.9, 0.5, 0.25] and meta["target"] == "ring8" and meta["train_seconds"] == 1.25


def test_flipping_one_weight_byte_is_detected(saved, tmp_path):
    """The weights are stored raw in the zip: find one tensor's bytes and change one of them."""
    _, blob, model = saved
    raw = model.state_dict()["net.0.weight"].numpy().tobytes()
    pos = blob.find(raw)
    assert pos >= 0
    damaged = bytearray(blob)
    damaged[pos + len(raw) // 2] ^= 0x01
    (tmp_path / "w.pt").write_bytes(bytes(damaged))
    with pytest.raises(checkpoints.CheckpointError, match="checksum"):
        checkpoints.load(tmp_path / "w.pt")


def foreign_files(folder: Path, model: EpsMLP) -> dict[str, Path]:
    files = {}

    def put(name, content: bytes):
        files[name] = folder / name
        files[name].write_bytes(content)

    put("empty.pt", b"")
    put("text.pt", b"hello, world\n")
    put("json.pt", json.dumps({"format": checkpoints.FORMAT, "version": 1}).encode())
    put("random.pt", np.random.default_rng(0).bytes(4096))
    np.save(folder / "array.npy", np.zeros((3, 2)))
    files["array.npy"] = folder / "array.npy"
    with zipfile.ZipFile(folder / "plain.zip", "w") as z:
        z.writestr("data.txt", "not torch")
    files["plain.zip"] = folder / "plain.zip"
    for name, obj in {"state_dict.pt": model.state_dict(), "tensor.pt": torch.zeros(3),
                      "list.pt": [1, 2, 3], "other_format.pt": {"format": "someone.else", "version": 1}}.items():
        torch.save(obj, folder / name)
        files[name] = folder / name
    return files


def test_files_that_are_not_labkit_checkpoints_are_refused(tmp_path):
    for name, path in foreign_files(tmp_path, tiny()).items():
        with pytest.raises(checkpoints.CheckpointError, match="checkpoint"):
            checkpoints.load(path)
        assert name  # each file refused


def _tampered(saved, tmp_path, edit, redigest: bool) -> Path:
    """The saved payload changed by ``edit``; with ``redigest`` its checksum is recomputed, as a
    buggy writer that checksums what it wrote would do, so only the architecture check remains."""
    path, _, _ = saved
    payload = torch.load(path, weights_only=True)
    edit(payload)
    if redigest:
        payload["sha256"] = checkpoints._digest(payload)
    out = tmp_path / "tampered.pt"
    torch.save(payload, out)
    return out


@pytest.mark.parametrize("redigest", [False, True])
@pytest.mark.parametrize("edit", [
    lambda p: p["config"].update(width=16),                         # config of another architecture
    lambda p: p["config"].update(depth=2),
    lambda p: p["config"].update(num_classes=7),
    lambda p: p["state_dict"].pop("net.0.bias"),                      # a missing tensor
    lambda p: p["state_dict"].update(extra=torch.zeros(2)),           # an unexpected tensor
    lambda p: p["state_dict"].update({"net.0.weight": torch.zeros(3, 3)}),
    lambda p: p.update(config={"num_classes": 3, "T": 50, "width": -8}),  # an invalid config
    lambda p: p.update(config=[1, 2]),
    lambda p: p.update(state_dict=[1, 2]),
    lambda p: p.pop("config"),
], ids=["width", "depth", "classes", "missing", "unexpected", "shape", "invalid", "config-list", "state-list",
        "no-config"])
def test_a_file_from_another_architecture_is_refused(saved, tmp_path, edit, redigest):
    path = _tampered(saved, tmp_path, edit, redigest)
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load(path)


def test_non_finite_weights_are_refused(tmp_path):
    model = tiny()
    with torch.no_grad():
        model.net[0].weight[0, 0] = float("nan")
    checkpoints.save(model, tmp_path / "nan.pt")
    with pytest.raises(checkpoints.CheckpointError, match="NaN or infinite"):
        checkpoints.load(tmp_path / "nan.pt")


def test_a_config_for_a_huge_network_is_refused_without_building_it(saved, tmp_path):
    """width 65536, depth 64 is about 1 TB of weights: load must compare shapes on the meta
    device and refuse, never construct it for real."""
    path = _tampered(saved, tmp_path, lambda p: p["config"].update(width=65_536, depth=64), redigest=True)
    devices = []
    real = checkpoints.EpsMLP

    def spy(**config):
        device = torch.empty(0).device.type
        devices.append(device)
        if device != "meta" and config.get("width", 0) > 4096:
            raise AssertionError("load tried to allocate the huge network")
        return real(**config)

    with mock.patch.object(checkpoints, "EpsMLP", spy), pytest.raises(checkpoints.CheckpointError,
                                                                       match="do not match"):
        checkpoints.load(path)
    assert devices == ["meta"]


# ---------------------------------------------------------------- pickled code

class _OpenFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _Record:
    def __reduce__(self):
        return (_record, ("ran",))


def _evil_payloads(saved, marker):
    path, _, _ = saved
    good = torch.load(path, weights_only=True)
    for evil in (_OpenFile(marker), _System(marker), _Exec(marker), _Record()):
        yield "extra key", {**good, "evil": evil}
        yield "as the config", {**good, "config": evil}
        yield "inside the weights", {**good, "state_dict": {**good["state_dict"], "net.0.bias": evil}}
        yield "alone", evil


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle protocol 2", "pickle protocol 4", "pickle protocol 5"])
def test_a_malicious_pickle_is_refused_and_never_runs(saved, tmp_path, writer):
    marker = tmp_path / "PWNED"
    CALLS.clear()
    for i, (where, payload) in enumerate(_evil_payloads(saved, marker)):
        path = tmp_path / f"evil{i}.pt"
        if writer == "torch.save":
            torch.save(payload, path)
        else:
            with open(path, "wb") as f:
                pickle.dump(payload, f, protocol=int(writer.split()[-1]))
        with pytest.raises(checkpoints.CheckpointError):
            checkpoints.load(path)
        assert not marker.exists(), f"pickled code ran ({writer}, {where})"
        assert CALLS == [], f"pickled code ran ({writer}, {where})"


def test_a_whole_pickled_module_is_refused(tmp_path):
    torch.save(tiny(), tmp_path / "module.pt")  # pickles the EpsMLP class itself, not just tensors
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load(tmp_path / "module.pt")


# ---------------------------------------------------------------- saving never loses the old file

def test_a_crash_while_saving_keeps_the_previous_checkpoint(saved, tmp_path):
    path = tmp_path / "m.pt"
    old = tiny(1)
    checkpoints.save(old, path)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    with mock.patch.object(checkpoints.torch, "save", crash), pytest.raises(OSError, match="disk full"):
        checkpoints.save(tiny(2), path)
    assert path.read_bytes() == before and not list(path.parent.glob("*.tmp"))
    assert same_weights(old, checkpoints.load(path)[0])
