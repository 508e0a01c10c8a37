import pickle

import pytest
import torch

from labkit import checkpoints
from labkit.model import EpsMLP
from tests.helpers import gen


@pytest.mark.parametrize("fourier", [0, 8])
def test_round_trip_is_exact(tmp_path, fourier):
    torch.manual_seed(0)
    model = EpsMLP(num_classes=3, width=32, depth=2, fourier=fourier)
    # the random Fourier matrix B is saved with the weights; without features the state is the one of
    # checkpoints written before the option existed
    assert ("x_features.B" in model.state_dict()) == (fourier > 0)
    path = tmp_path / "m.pt"
    checkpoints.save(model, path, target="moons", schedule="cosine", history=[1.0, 0.5], train_seconds=1.5)
    loaded, meta = checkpoints.load(path)
    assert loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert meta["target"] == "moons" and meta["history"] == [1.0, 0.5] and meta["train_seconds"] == 1.5
    x, t = torch.randn(4, 2, generator=gen(0)), torch.full((4,), 10.0)
    assert torch.equal(model(x, t), loaded(x, t))


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(checkpoints.CheckpointError, match="not a readable labkit checkpoint"):
        checkpoints.load(path)
    torch.save({"some": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a labkit checkpoint"):
        checkpoints.load(tmp_path / "other.pt")


class _Evil:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": checkpoints.FORMAT, "payload": _Evil()}, f)
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load(path)
    assert not (tmp_path / "PWNED").exists()
