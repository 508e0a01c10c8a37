import json

import numpy as np
import pytest

from labkit import checkpoints
from labkit.cli import main


def test_quality_with_the_exact_score_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "q"
    rc = main(["quality", "--target", "ring8", "--exact", "--samplers", "ddim,heun", "--steps", "2,16",
               "--n", "500", "--seeds", "2", "--grid", "karras", "--out", str(out), "--quiet"])
    assert rc == 0
    data = json.loads((out / "quality.json").read_text())
    assert data["target"] == "ring8" and data["eps"] == "exact" and data["train_seconds"] == 0.0
    assert {"mean", "sd", "threshold"} == set(data["floor"]) == set(data["detail_floor"])
    assert [(r["sampler"], r["grid"], r["steps"], r["nfe"]) for r in data["records"]] == [
        ("ddim", "karras", 2, 2), ("ddim", "karras", 16, 16), ("heun", "karras", 2, 3), ("heun", "karras", 16, 31)]
    assert all(len(r["mmd2"]) == len(r["detail_miss"]) == 2 for r in data["records"])
    assert all(isinstance(r["at_floor"], bool) and 0 <= r["at_floor_seeds"] <= 2 for r in data["records"])
    assert [r["at_floor"] for r in data["records"] if r["steps"] == 2] == [False, False]
    assert (out / "quality.png").stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "noise floor" in table and "heun" in table


def test_train_then_sample_loads_the_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    assert main(["train", "--target", "moons", "--train-steps", "30", "--checkpoint", str(ckpt), "--quiet"]) == 0
    model, meta = checkpoints.load(ckpt)
    assert meta["target"] == "moons" and len(meta["history"]) == 30
    npz = tmp_path / "s.npz"
    assert main(["sample", "--target", "moons", "--checkpoint", str(ckpt), "--sampler", "dpmpp_2m", "--steps", "4",
                 "--grid", "trailing", "--n", "20", "--class", "1", "--w", "2", "--out", str(npz), "--quiet"]) == 0
    assert "loaded" in capsys.readouterr().err
    saved = np.load(npz)
    assert saved["x"].shape == (20, 2) and np.isfinite(saved["x"]).all() and (saved["classes"] == 1).all()
    rc = main(["sample", "--target", "moons", "--checkpoint", str(ckpt), "--out", str(tmp_path / "s.csv"), "--quiet"])
    assert rc == 2 and "--out must end in .npz" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["checkerboard", "spirals"])
def test_train_uses_the_targets_whole_recipe(tmp_path, name):
    """checkerboard's recipe draws half of t at EDM's noise levels, spirals' adds Fourier features of x: the
    command line's model is the one train.train gives with every setting of train.recipe."""
    import torch

    from labkit import schedules, targets, train

    ckpt = tmp_path / "m.pt"
    assert main(["train", "--target", name, "--train-steps", "20", "--checkpoint", str(ckpt), "--quiet"]) == 0
    model, _ = checkpoints.load(ckpt)
    target, schedule = targets.get(name), schedules.get("cosine")
    settings = {**train.recipe(target), "steps": 20}
    direct = train.new_model(target, schedule, seed=0)
    train.train(direct, target, schedule, seed=0, progress=False,
                **{k: v for k, v in settings.items() if k not in train.MODEL_KEYS})
    assert model.config == direct.config and model.config["fourier"] == settings.get("fourier", 0)
    pairs = zip(model.state_dict().values(), direct.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_bad_arguments_give_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["quality", "--target", "nope", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
    rc = main(["quality", "--exact", "--steps", "0,4", "--out", str(tmp_path), "--quiet"])
    assert rc == 2 and "steps must be in" in capsys.readouterr().err
    rc = main(["quality", "--exact", "--n", "1", "--out", str(tmp_path), "--quiet"])
    assert rc == 2 and "n must be in" in capsys.readouterr().err


def test_exercises_writes_a_student_notebook_per_chapter(tmp_path, capsys):
    import nbformat

    assert main(["exercises", "--student", str(tmp_path / "student")]) == 0
    written = sorted(p.name for p in (tmp_path / "student").glob("*.ipynb"))
    assert written and all(name[:2].isdigit() for name in written)
    nb = nbformat.read(tmp_path / "student" / written[0], as_version=4)
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    assert "### BEGIN SOLUTION" not in "".join(c.source for c in nb.cells)
    assert main(["exercises", "--student", str(tmp_path / "s2"), "--source", str(tmp_path)]) == 2
    assert "no chapters" in capsys.readouterr().err


def test_digits_train_and_sample_write_64_d_samples_and_an_image_grid(tmp_path):
    ckpt = tmp_path / "digits.pt"
    assert main(["train", "--target", "digits", "--train-steps", "20", "--checkpoint", str(ckpt), "--quiet"]) == 0
    model, _ = checkpoints.load(ckpt)
    assert model.dim == 64 and model.config["width"] == 512  # the digits recipe's model
    npz, png = tmp_path / "d.npz", tmp_path / "d.png"
    for out in (npz, png):
        assert main(["sample", "--target", "digits", "--checkpoint", str(ckpt), "--sampler", "dpmpp_2m", "--steps", "4",
                     "--n", "30", "--class", "3", "--w", "1", "--out", str(out), "--quiet"]) == 0
    saved = np.load(npz)
    assert saved["x"].shape == (30, 64) and (saved["classes"] == 3).all()
    assert png.stat().st_size > 5_000
