"""Course: execution time and peak memory of every chapter notebook, each in a fresh kernel.

Each ``notebooks/NN_*.ipynb`` present is executed top to bottom with nbclient (in memory; the
committed files are not touched) in a new kernel started in notebooks/, once with the default
thread settings and once with torch limited to one thread (OMP_NUM_THREADS=1, as on a one-core
Binder). The time is the wall time of the whole execution, kernel start included. A last cell
added to the copy reads the kernel's own peak resident memory (``ru_maxrss``) and torch's thread
count. Each thread setting starts from an empty model cache (``LABKIT_CACHE_DIR`` set to a new
empty folder, shared by its chapters as a student's one cache is); ``--warm-cache`` runs every
setting a second time on the cache its first pass filled. Bars (COURSE.md section 5): all chapters
in <= 4 min in total on 2 cores (torch's default threads) with an empty model cache, each kernel
<= 1 GB; the 1-thread pass (a one-core Binder) is reported beside them.

    python benchmarks/course.py [--threads default,1] [NN_name ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager

import nbformat
from common import ROOT, write_result
from nbclient import NotebookClient

NOTEBOOKS = ROOT / "notebooks"
BAR_TOTAL_S = 240.0
BAR_RSS_MB = 1000.0  # 1 GB = 10^9 bytes
PROBE = """import json as _json, resource as _resource, sys as _sys
_torch = _sys.modules.get("torch")
print("BENCH_PROBE" + _json.dumps({"maxrss_kb": _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss,
      "torch_threads": _torch.get_num_threads() if _torch else None}))"""


@contextmanager
def thread_env(threads: str, cache: str):
    """Environment of a chapter's kernel: torch's thread limit (none for "default") and the model cache."""
    wanted = {"OMP_NUM_THREADS": None if threads == "default" else threads,
              "MKL_NUM_THREADS": None if threads == "default" else threads, "LABKIT_CACHE_DIR": cache}
    saved = {k: os.environ.get(k) for k in wanted}
    try:
        for k, v in wanted.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(path, threads: str, cache: str) -> dict:
    """Execute ``path`` in a fresh kernel with ``threads`` and the model cache folder ``cache``."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    error = None
    with thread_env(threads, cache):
        start = time.perf_counter()
        try:
            client.execute()
        except Exception as exc:  # a failing chapter is reported, not fatal to the benchmark
            error = f"{type(exc).__name__}: {str(exc)[-500:]}"
        seconds = time.perf_counter() - start
    probe = {}
    for out in nb.cells[-1].get("outputs", []):
        text = out.get("text", "")
        if "BENCH_PROBE" in text:
            probe = json.loads(text.split("BENCH_PROBE", 1)[1])
    rss_mb = probe["maxrss_kb"] * 1024 / 1e6 if probe else None
    return {"notebook": path.name, "threads": threads, "seconds": seconds, "peak_rss_mb": rss_mb,
            "torch_threads": probe.get("torch_threads"), "error": error}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--threads", default="default,1")
    parser.add_argument("--result", default="course", help="name of the JSON file in benchmarks/results")
    parser.add_argument("--warm-cache", action="store_true",
                        help="run each setting again on the model cache its first pass filled")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names or p.name in args.names]
    runs, caches = {}, []
    passes = [(t, "") for t in args.threads.split(",")]
    if args.warm_cache:
        passes = [p for t, _ in passes for p in ((t, ""), (t, " warm"))]
    for threads, warm in passes:
        if not warm:
            cache = tempfile.mkdtemp(prefix="labkit-course-cache-")
            caches.append(cache)
        rows = []
        name = threads + warm
        runs[name] = summarize(rows)
        for path in paths:
            row = run_notebook(path, threads, cache)
            rows.append(row)
            runs[name] = summarize(rows)
            rss = f"{row['peak_rss_mb']:7.0f} MB" if row["peak_rss_mb"] else "      ? MB"
            print(f"threads={name:<12} {path.name:<28} {row['seconds']:7.1f} s  peak RSS {rss}  "
                  f"torch threads {row['torch_threads']}  {row['error'] or ''}", flush=True)
            # written after every chapter, so a stopped run still leaves what it measured
            write_result(args.result, {"notebooks": [p.name for p in paths], "runs": runs, "bars": bars(runs),
                                       "complete": False})
        print(f"threads={name}: total {runs[name]['total_s']:.1f} s, largest peak RSS "
              f"{runs[name]['max_peak_rss_mb']:.0f} MB")
    write_result(args.result, {"notebooks": [p.name for p in paths], "runs": runs, "bars": bars(runs),
                               "complete": True})
    for cache in caches:
        shutil.rmtree(cache, ignore_errors=True)


def summarize(rows) -> dict:
    return {"chapters": rows, "total_s": sum(r["seconds"] for r in rows),
            "max_peak_rss_mb": max((r["peak_rss_mb"] or 0.0) for r in rows) if rows else 0.0,
            "errors": [r["notebook"] for r in rows if r["error"]]}


def bars(runs) -> list[dict]:
    out = []
    for threads, run in runs.items():
        if not run["chapters"] or threads.endswith(" warm"):  # the bars are for an empty model cache
            continue
        if threads == "default":  # the time bar is for 2 cores (COURSE.md section 5); 1 thread is reported
            out.append({"name": "all chapters execute in <= 4 min (2 cores, threads: default)",
                        "limit_s": BAR_TOTAL_S, "value_s": run["total_s"],
                        "pass": run["total_s"] <= BAR_TOTAL_S and not run["errors"]})
        out.append({"name": f"each kernel's peak RSS <= 1 GB (threads: {threads})", "limit_mb": BAR_RSS_MB,
                    "value_mb": run["max_peak_rss_mb"], "pass": 0 < run["max_peak_rss_mb"] <= BAR_RSS_MB})
    return out


if __name__ == "__main__":
    main()
