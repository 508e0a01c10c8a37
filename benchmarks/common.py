"""Shared helpers of the benchmark scripts: timing, machine facts, quality checks, JSON output.

Every script in this folder answers one question, prints a short table and writes
``benchmarks/results/<name>.json``; ``run_all.py`` runs them all and ``report.py`` turns the
JSON files into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
if str(ROOT) not in sys.path:  # the peer environment imports labkit's targets and metrics from the tree
    sys.path.insert(0, str(ROOT))


def machine() -> dict:
    """Facts about the machine and the software that the numbers depend on."""
    import torch

    info = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "loadavg": list(os.getloadavg()),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(fn, repeats: int = 5, warmup: int = 1) -> dict:
    """Wall times of ``repeats`` calls of ``fn()`` after ``warmup`` calls: median, min, all (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "times": times}


def percentile(values, q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between order statistics."""
    v = sorted(values)
    if not v:
        raise ValueError("values must not be empty")
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


_FLOORS: dict = {}


def quality_check(samples_fn, target, *, n: int = 1000, seeds: int = 3, seed: int = 0, floor_repeats: int = 20):
    """MMD^2 of ``samples_fn(noise)`` against fresh target batches, next to the noise floor.

    ``samples_fn`` maps a (seeds * n, 2) noise tensor to samples of the same shape; the batch is
    split into ``seeds`` groups of ``n``, each compared with its own fresh target batch of ``n``
    (the same as ``seeds`` separate runs, in one batched sampler call). The floor is the MMD^2 of
    two fresh target batches, ``floor_repeats`` times. Returns a dict with the per-seed values,
    their mean, the floor (mean, sd) and ``at_floor``: mean <= floor mean + 2 floor sd.
    """
    import torch

    from labkit.metrics import mmd2, noise_floor

    key = (target.name, n, seed, floor_repeats)
    if key not in _FLOORS:  # the floor and the generator state after it depend on the key alone
        g = torch.Generator().manual_seed(seed)
        _FLOORS[key] = noise_floor(target, n, repeats=floor_repeats, generator=g), g.get_state()
    floor, state = _FLOORS[key]
    g = torch.Generator()
    g.set_state(state)
    noise = torch.randn(seeds * n, 2, generator=g)
    references = [target.sample(n, g)[0] for _ in range(seeds)]
    x = samples_fn(noise)
    values = [mmd2(x[i * n:(i + 1) * n], references[i]) for i in range(seeds)]
    mean = statistics.fmean(values)
    return {"mmd2": values, "mmd2_mean": mean, "floor_mean": floor.mean, "floor_sd": floor.sd,
            "threshold": floor.threshold, "at_floor": mean <= floor.threshold}


def write_result(name: str, data: dict) -> Path:
    """Write ``data`` (plus the machine facts) to benchmarks/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    data = {"benchmark": name, "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def load_result(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
