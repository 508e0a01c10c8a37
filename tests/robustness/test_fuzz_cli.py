"""Property-based tests (hypothesis) of training's arguments and the command line.

train(): random valid arguments on a tiny model give a history of exactly ``steps`` finite losses
and finite weights; each invalid argument gives a ValueError/TypeError naming it.
labkit.cli.main([...]): random valid ``sample`` command lines (from a tiny saved checkpoint, so
nothing trains) write n finite points; random invalid options of every subcommand exit non-zero
with a message naming the option, and never lose an existing checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labkit import checkpoints, cli, schedules, targets
from labkit import train as train_module
from labkit.model import EpsMLP
from labkit.train import one_torch_thread
from tests.helpers import rejects

FUZZ = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SEEDS = st.integers(0, 2**31 - 1)
NOT_INTS = st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.none())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one torch thread (two contend on a busy machine); restored after the module."""
    with one_torch_thread():
        yield


def tiny_model(target, T, seed=0):
    torch.manual_seed(seed)
    return EpsMLP(target.num_classes, T=T, dim=target.dim, width=8, depth=1, time_dim=4, class_dim=2)


# ---------------------------------------------------------------- train()

@FUZZ
@given(name=st.sampled_from(targets.names()), T=st.integers(2, 50), steps=st.integers(0, 4),
       batch_size=st.one_of(st.just(1), st.integers(1, 32)), lr=st.one_of(st.just(1.0), st.floats(1e-8, 1.0)),
       p_uncond=st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1)), seed=SEEDS,
       cosine=st.booleans(), double=st.booleans())
@example(name="ring8", T=2, steps=4, batch_size=1, lr=1.0, p_uncond=1.0, seed=0, cosine=True, double=True)
def test_train_gives_one_finite_loss_per_step_and_finite_weights(name, T, steps, batch_size, lr, p_uncond, seed,
                                                                 cosine, double):
    target = targets.get(name)
    schedule = schedules.cosine(T=T) if cosine else schedules.linear(T=T)
    model = tiny_model(target, T, seed % 11)
    if double:
        model = model.double()
    # A small data pool keeps each example cheap; training reads the constant at call time.
    with mock.patch.object(train_module, "POOL_SIZE", 256):
        history = train_module.train(model, target, schedule, steps=steps, batch_size=batch_size, lr=lr,
                                     p_uncond=p_uncond, seed=seed, progress=False)
    assert len(history) == steps and all(math.isfinite(v) for v in history)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not model.training


RING8 = targets.get("ring8")
SCHED = schedules.cosine(T=10)


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("steps"), st.one_of(st.integers(max_value=-1), st.integers(10_000_001, 2**70), NOT_INTS)),
    st.tuples(st.just("batch_size"), st.one_of(st.integers(max_value=0), st.integers(1_000_001, 2**40), NOT_INTS)),
    st.tuples(st.just("lr"), st.one_of(st.floats(max_value=0), st.floats(min_value=1.0000001),
                                       st.sampled_from([math.nan, "0.1", None]))),
    st.tuples(st.just("p_uncond"), st.one_of(st.floats(max_value=-1e-12), st.floats(min_value=1.0000001),
                                             st.sampled_from([math.nan, "0.1", None]))),
    st.tuples(st.just("seed"), st.one_of(st.integers(max_value=-1), st.integers(2**63, 2**80), NOT_INTS)),
    st.tuples(st.just("history"), st.sampled_from([(), "abc", 3, {}])),
    st.tuples(st.just("callback"), st.sampled_from([3, "print", 1.5])),
    st.tuples(st.just("stop"), st.sampled_from([True, 1, "stop"])),
    st.tuples(st.just("model"), st.sampled_from([None, "model", "wrong classes", "wrong T"])),
    st.tuples(st.just("target"), st.sampled_from([None, "ring8"])),
    st.tuples(st.just("schedule"), st.sampled_from([None, "cosine"])),
))
def test_train_rejects_bad_arguments_naming_them(case):
    kind, value = case
    model = tiny_model(RING8, SCHED.T)
    args = {"model": model, "target": RING8, "schedule": SCHED}
    kwargs = {"steps": 1, "progress": False}
    names = (kind,)
    if kind == "model" and value == "wrong classes":
        args["model"], names = tiny_model(targets.get("moons"), SCHED.T), ("model", "num_classes")
    elif kind == "model" and value == "wrong T":
        args["model"], names = tiny_model(RING8, 20), ("model", "T")
    elif kind in args:
        args[kind] = value
    else:
        kwargs[kind] = value
    before = [p.detach().clone() for p in model.parameters()]
    rejects(lambda: train_module.train(args["model"], args["target"], args["schedule"], **kwargs), *names)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ---------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny untrained ring8 model saved as a checkpoint: the CLI loads it instead of training."""
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "tiny.pt"
    checkpoints.save(tiny_model(RING8, 1000), path, target="ring8", schedule=None)
    return path


def run_cli(argv):
    """(exit code, stdout, stderr) of labkit.cli.main(argv), SystemExit included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
            if isinstance(code, str):
                err.write(code)
                code = 1
    return code, out.getvalue(), err.getvalue()


# The most DDIM steps the CLI's schedules allow from sigma_max = 80 (one per timestep below it).
MAX_DDIM = {name: schedules.get(name).last_t_below(80.0) + 1 for name in ("cosine", "linear")}


@FUZZ
@given(schedule=st.sampled_from(["cosine", "linear"]), sampler=st.sampled_from(["ddim", "heun"]),
       n=st.one_of(st.just(1), st.integers(1, 40)), w=st.one_of(st.just(0.0), st.floats(0, 20)),
       cls=st.one_of(st.none(), st.integers(0, 7)), seed=SEEDS, data=st.data())
def test_cli_sample_writes_n_finite_points(ckpt, schedule, sampler, n, w, cls, seed, data):
    top = MAX_DDIM[schedule] if sampler == "ddim" else 32
    steps = data.draw(st.one_of(st.just(1), st.just(top), st.integers(1, min(top, 32))))
    if cls is None:
        w = 0.0
    out = ckpt.parent / f"sample_{seed % 4}.npz"
    argv = ["sample", "--checkpoint", ckpt, "--schedule", schedule, "--sampler", sampler, "--steps", steps,
            "--n", n, "--w", repr(w), "--seed", seed, "--out", out, "--quiet"]
    if cls is not None:
        argv += ["--class", cls]
    code, stdout, stderr = run_cli(argv)
    assert code == 0, stderr
    saved = np.load(out)
    x = saved["x"]
    assert x.shape == (n, 2) and np.isfinite(x).all()
    assert (saved["classes"] == (-1 if cls is None else cls)).all() and saved["classes"].shape == (n,)


def test_cli_sample_with_ddpm_writes_finite_points(ckpt):
    out = ckpt.parent / "ddpm.npz"
    code, _, stderr = run_cli(["sample", "--checkpoint", ckpt, "--sampler", "ddpm", "--n", 3, "--out", out,
                               "--quiet"])
    assert code == 0, stderr
    assert np.isfinite(np.load(out)["x"]).all()


INTS_BELOW = st.integers(-10**6, 0).map(str)
NOT_AN_INT = st.sampled_from(["x", "1.5", "", "1e3", "nan"])
BAD_W = st.one_of(st.floats(max_value=-1e-9, allow_infinity=False).map(repr), st.sampled_from(["nan", "inf", "x"]))


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("sample"), st.just("--n"), st.one_of(INTS_BELOW, NOT_AN_INT)),
    st.tuples(st.just("sample"), st.just("--steps"), st.one_of(INTS_BELOW, NOT_AN_INT, st.just("10001"))),
    st.tuples(st.just("sample"), st.just("--w"), BAD_W),
    st.tuples(st.just("sample"), st.just("--class"), st.one_of(st.integers(-10**6, -1), st.integers(8, 10**6))
              .map(str)),
    st.tuples(st.just("sample"), st.just("--sampler"), st.sampled_from(["foo", "DDIM", ""])),
    st.tuples(st.sampled_from(["sample", "train", "quality"]), st.just("--target"),
              st.text(max_size=8).filter(lambda s: s not in targets.names())),
    st.tuples(st.sampled_from(["sample", "train", "quality"]), st.just("--schedule"),
              st.sampled_from(["foo", "Cosine", ""])),
    st.tuples(st.sampled_from(["sample", "train"]), st.just("--seed"), st.one_of(st.integers(-10**6, -1).map(str),
                                                                                 NOT_AN_INT)),
    st.tuples(st.just("train"), st.just("--train-steps"), st.one_of(st.integers(-10**6, -1).map(str), NOT_AN_INT)),
    st.tuples(st.just("quality"), st.just("--n"), st.one_of(st.integers(-10**6, 1).map(str), NOT_AN_INT)),
    st.tuples(st.just("quality"), st.just("--seeds"), st.one_of(INTS_BELOW, NOT_AN_INT)),
    st.tuples(st.just("quality"), st.just("--steps"), st.one_of(INTS_BELOW, st.sampled_from(["a,b", "", ",", "4,x"]))),
    st.tuples(st.just("quality"), st.just("--samplers"), st.sampled_from(["foo", "", "ddim,foo", ","])),
))
def test_cli_rejects_bad_options_naming_them_and_keeps_the_checkpoint(ckpt, case):
    command, option, value = case
    work = ckpt.parent / "bad"
    work.mkdir(exist_ok=True)
    keep = work / "keep.pt"  # an existing checkpoint that a failing command must leave intact
    if not keep.exists():
        keep.write_bytes(ckpt.read_bytes())
    before = keep.read_bytes()
    argv = [command, f"{option}={value}"]
    if command == "sample":
        argv += ["--checkpoint", ckpt, "--out", work / "s.npz", "--sampler", "ddim", "--steps", "2", "--n", "3"]
        if option == "--w":
            argv += ["--class", "1"]
    elif command == "train":
        argv += ["--checkpoint", keep]
    else:
        argv += ["--exact", "--out", work / "q", "--steps", "2", "--n", "20", "--seeds", "1"]
    argv += ["--quiet"]
    # The option under test comes first; argparse keeps the last value, so drop the defaults above.
    for i in range(len(argv) - 2, 1, -1):
        if argv[i] == option:
            del argv[i:i + 2]
    code, _, stderr = run_cli(argv)
    bare = option.lstrip("-").replace("-", "_")
    assert code not in (0, None), f"{argv} was accepted"
    assert option in stderr or re.search(rf"(?<![\w-]){re.escape(bare)}(?![\w-])", stderr), \
        f"{argv}: the message does not name {option}: {stderr}"
    assert keep.read_bytes() == before
