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


def quality_check(samples_fn, target, *, n: int = 1000, seeds: int = 3, seed: int = 0) -> dict:
    """``metrics.floor_report`` of ``samples_fn(noise)`` per seed: at the floor only if every seed is.

    ``samples_fn`` maps a (seeds * n, target.dim) noise tensor to samples of the same shape; the batch
    is split into ``seeds`` groups of ``n``, each judged by ``labkit.metrics.floor_report`` against its
    own fresh target batch of ``n`` (the same as ``seeds`` separate runs, in one batched sampler call).
    The noise and the reference batches depend on ``seed`` alone, so every sampler, recipe and library
    judged with one seed sees the same ones. Returns the per-seed values of both statistics (the seed's
    MMD^2 and detail_miss), their means, their thresholds (labkit's floors at this n) and ``at_floor``.
    """
    import torch

    from labkit import metrics

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(seeds * n, target.dim, generator=g)
    references = [target.sample(n, g)[0] for _ in range(seeds)]
    x = samples_fn(noise)
    reports = [_report(x[i * n:(i + 1) * n], target, references[i]) for i in range(seeds)]
    out = {"n": n, "seeds": seeds, "finite": bool(torch.isfinite(x).all())}
    for name in metrics.STATISTICS:
        values = [r[name] for r in reports]
        out.update({name: values, f"{name}_mean": statistics.fmean(values),
                    f"{name}_threshold": reports[0][f"{name}_threshold"],
                    f"{name}_at_floor": [r[f"{name}_at_floor"] for r in reports]})
    out["threshold"] = out["mmd2_threshold"]  # the seed MMD's, as earlier results name it
    out["at_floor"] = all(r["at_floor"] for r in reports)
    return out


def sample_labels(target, count: int, seed: int = 12345):
    """``count`` class labels drawn with the target's own label frequencies (from its sampler), for
    class-conditional samples of the whole target: c ~ p(c), then x ~ p(x | c) is a sample of p(x)."""
    import torch

    return target.sample(count, torch.Generator().manual_seed(seed))[1]


def _report(x, target, reference) -> dict:
    """floor_report of one seed's samples; a sample with a non-finite point fails with NaN statistics."""
    from labkit import metrics

    if bool(x.isfinite().all()):
        return metrics.floor_report(x, target, reference=reference)
    report = {"at_floor": False}
    for name in metrics.STATISTICS:
        threshold = metrics.noise_floor(target, len(x), statistic=name).threshold
        report.update({name: float("nan"), f"{name}_threshold": threshold, f"{name}_at_floor": False})
    return report


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


def parse_spec(spec: str) -> dict:
    """'steps=3000,lr=1e-2,ema=0.99' -> {'steps': 3000, 'lr': 0.01, 'ema': 0.99} (ints stay ints)."""
    out = {}
    for item in spec.split(","):
        key, value = item.split("=")
        out[key] = int(value) if value.lstrip("-").isdigit() else (float(value) if value[0].isdigit() else value)
    return out
