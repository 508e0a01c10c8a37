"""Run every benchmark, each in a fresh process, then write benchmarks/RESULTS.md.

    python benchmarks/run_all.py            # all questions: 13 min on 2 idle cores (775 s measured)
    python benchmarks/run_all.py --only widget_latency,vs_diffusers

The first run also creates the smalldiffusion peer environment (benchmarks/.venv-peer, about
5.5 GB, 71 s measured; not counted in the timings). Results: benchmarks/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import report
from common import HERE, RESULTS

SCRIPTS = ["throughput", "widget_latency", "vs_diffusers", "time_to_quality", "vs_smalldiffusion", "course"]
# Wall-clock limits per script (s), generous on an idle machine; a script past its limit is stopped and
# reported as timed out (course.py writes its JSON after every chapter, so it leaves partial numbers).
TIMEOUTS = {"throughput": 240, "widget_latency": 240, "vs_diffusers": 240, "time_to_quality": 1800,
            "vs_smalldiffusion": 900, "course": 1200}


def run_script(name: str, limit: float):
    """Run one script in its own process group; past ``limit`` s stop the group (kernels, the peer) too."""
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py")], cwd=HERE, start_new_session=True)
    try:
        return proc.wait(timeout=max(limit, 1.0))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timed out"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCRIPTS), help=f"comma-separated subset of {SCRIPTS}")
    parser.add_argument("--budget", type=float, default=None, help="stop everything after this many seconds")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s]
    unknown = set(chosen) - set(SCRIPTS)
    if unknown:
        raise SystemExit(f"--only must name scripts among {SCRIPTS}, got {sorted(unknown)}")
    RESULTS.mkdir(exist_ok=True)
    command = " ".join(["python benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])])
    log = {"command": command,
           "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "scripts": []}
    start_all = time.perf_counter()
    for name in chosen:
        print(f"=== {name} (load average {os.getloadavg()[0]:.2f})", flush=True)
        load_before = list(os.getloadavg())
        start = time.perf_counter()
        stale = RESULTS / f"{name}.json"
        stale.unlink(missing_ok=True)  # so that a failed or stopped script leaves no old numbers behind
        left = args.budget - (time.perf_counter() - start_all) if args.budget else float("inf")
        returncode = run_script(name, min(TIMEOUTS[name], left))
        log["scripts"].append({"name": name, "seconds": time.perf_counter() - start, "returncode": returncode,
                               "loadavg_before": load_before, "loadavg_after": list(os.getloadavg())})
        print(f"=== {name} done in {time.perf_counter() - start:.0f} s (exit {returncode})", flush=True)
    log["total_s"] = time.perf_counter() - start_all
    log["finished_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    (RESULTS / "run_all.json").write_text(json.dumps(log, indent=1) + "\n")
    report.main()
    print(f"all done in {log['total_s']:.0f} s")
    return 0 if all(s["returncode"] == 0 for s in log["scripts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
