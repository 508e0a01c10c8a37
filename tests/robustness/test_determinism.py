"""The same seed gives bitwise-identical results in two separate processes; another seed differs.

One script draws every target, trains a small model, samples with every sampler (DDPM, DDIM at
eta = 0 and 1, Heun, Heun with guidance), computes MMD^2 and a noise floor, and runs the command
line; it prints a SHA-256 per result. It runs three times in fresh interpreters (different
PYTHONHASHSEEDs, so nothing may hang on hash order): twice with one seed, once with another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import hashlib, json, sys, tempfile
    from pathlib import Path
    import numpy as np
    import torch
    from labkit import cli, guidance, metrics, samplers, schedules, targets
    from labkit.train import new_model, train

    seed = int(sys.argv[1])
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and three of these run at once

    def digest(t):
        t = torch.as_tensor(t).detach().contiguous()
        return f"{t.dtype}:" + hashlib.sha256(t.numpy().tobytes()).hexdigest()

    def gen(k):
        return torch.Generator().manual_seed(1000 * seed + k)

    out = {}
    for name in targets.names():
        x, c = targets.get(name).sample(300, gen(1))
        out[f"targets.{name}"] = digest(x) + digest(c)
    schedule, ring8 = schedules.cosine(T=100), targets.get("ring8")
    model = new_model(ring8, schedule, seed=seed)
    history = train(model, ring8, schedule, steps=150, batch_size=256, seed=seed, progress=False)
    out["train.history"] = digest(torch.tensor(history, dtype=torch.float64))
    out["train.weights"] = digest(torch.cat([p.detach().flatten() for p in model.parameters()]))
    noise, eps_fn = torch.randn(200, 2, generator=gen(2)), model.eps_fn()
    out["ddpm"] = digest(samplers.ddpm(eps_fn, schedule, noise, generator=gen(3)).x)
    out["ddim eta=0"] = digest(samplers.ddim(eps_fn, schedule, noise, 20).x)
    out["ddim eta=1"] = digest(samplers.ddim(eps_fn, schedule, noise, 20, eta=1.0, generator=gen(4)).x)
    heun = samplers.heun(eps_fn, schedule, noise, 8).x
    out["heun"] = digest(heun)
    out["heun cfg w=2"] = digest(samplers.heun(guidance.cfg(model, 3, 2.0), schedule, noise, 8).x)
    out["dpmpp_2m trailing"] = digest(samplers.dpmpp_2m(eps_fn, schedule, noise, 8, grid="trailing").x)
    out["euler_a"] = digest(samplers.euler_a(eps_fn, schedule, noise, 8, generator=gen(7)).x)
    out["dpmpp_2m_sde"] = digest(samplers.dpmpp_2m_sde(eps_fn, schedule, noise, 8, generator=gen(8)).x)
    out["mmd2"] = repr(metrics.mmd2(heun, ring8.sample(200, gen(5))[0]))
    out["noise_floor"] = repr(metrics.noise_floor(ring8, 200, 3, gen(6)).values)
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "s.npz"
        code = cli.main(["sample", "--train-steps", "40", "--seed", str(seed), "--sampler", "heun", "--steps", "4",
                         "--n", "50", "--out", str(npz), "--quiet"])
        out["cli sample"] = f"{code}:" + digest(np.load(npz)["x"])
    print(json.dumps(out))
''')

ROOT = Path(__file__).resolve().parents[2]


def run_all(jobs):
    """Run the script for each (seed, hash seed) at once; return their result dicts."""
    procs = []
    for seed, hash_seed in jobs:
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        procs.append(subprocess.Popen([sys.executable, "-c", SCRIPT, str(seed)], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


@pytest.fixture(scope="module")
def runs():
    return run_all([(7, 1), (7, 2), (8, 3)])


def test_the_same_seed_is_bitwise_identical_across_processes(runs):
    first, second, _ = runs
    assert set(first) == set(second)
    different = {k: (first[k], second[k]) for k in first if first[k] != second[k]}
    assert not different, f"results that differ between two runs with the same seed: {different}"


def test_another_seed_changes_every_result(runs):
    first, _, other = runs
    same = [k for k in first if first[k] == other[k]]
    assert not same, f"results that did not change with the seed: {same}"


def test_the_script_covers_every_target_and_sampler(runs):
    from labkit import samplers, targets

    keys = set(runs[0])
    assert {f"targets.{name}" for name in targets.names()} <= keys
    assert all(any(k.startswith(name) for k in keys) for name in samplers.SAMPLERS)
    assert {"train.history", "train.weights", "mmd2", "noise_floor", "cli sample"} <= keys
