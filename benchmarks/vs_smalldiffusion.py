"""labkit vs smalldiffusion: training wall time to reach the MMD^2 noise floor on ring8, side by side.

labkit: the time-to-quality walk of ``time_to_quality.py`` on ring8 (default recipe, complete
runs of increasing length, Heun-16 and DDPM-1000 both at the floor). smalldiffusion (PyPI): its
own toy recipe, model, ``training_loop`` and sampler (``peer_smalldiffusion.py``), run in its own
virtual environment, which this script creates on first use (smalldiffusion imports torchvision,
which imports only beside the torch release it was built for, so the peer gets torch 2.14.1 and
torchvision 0.29.1 instead of touching labkit's torch). Both are judged by the same check: the
same noise, the same fresh ring8 batches and the same floor (benchmarks/common.py, seed 0).
Bar (COURSE.md section 5): labkit >= 5x faster. Also reported: smalldiffusion's MMD^2 after the
same training time as labkit needed.

    python benchmarks/vs_smalldiffusion.py [--budget 120]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import HERE, write_result
from time_to_quality import time_to_quality

PEER = Path(os.environ.get("LABKIT_BENCH_PEER", HERE / ".venv-peer"))
PEER_PACKAGES = ["smalldiffusion==0.5.0", "torch==2.14.1", "torchvision==0.29.1"]
BAR_SPEEDUP = 5.0


def peer_python() -> Path:
    """The peer environment's interpreter, creating the environment if it is missing or broken."""
    python = PEER / "bin" / "python"
    check = [str(python), "-c", "import smalldiffusion, torchvision"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating the peer environment {PEER} ({' '.join(PEER_PACKAGES)}); this takes a few minutes")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    subprocess.run(check, check=True)
    return python


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="1000,2000,4000,8000")
    parser.add_argument("--budget", type=float, default=120.0, help="smalldiffusion training seconds at most")
    parser.add_argument("--every", type=int, default=100, help="smalldiffusion steps between checks")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)

    python = peer_python()
    print("labkit (default recipe) on ring8:")
    ours = time_to_quality("ring8", [int(s) for s in args.ladder.split(",")], n=args.n, seeds=args.seeds)
    ours_s = ours["runs"][-1]["train_s"] if ours["steps_to_quality"] else None
    print("smalldiffusion (its toy recipe) on ring8:")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        cmd = [str(python), str(HERE / "peer_smalldiffusion.py"), "--out", str(out), "--budget", str(args.budget),
               "--every", str(args.every), "--n", str(args.n), "--seeds", str(args.seeds)]
        if ours_s is not None:
            cmd += ["--also-at", str(ours_s)]
        subprocess.run(cmd, check=True, cwd=HERE, env={**os.environ, "TQDM_DISABLE": "1"})
        peer = json.loads(out.read_text())

    checks = peer["checkpoints"]
    first = next((c for c in checks if c["at_floor"]), None)
    peer_s = first["train_s"] if first else None
    # smalldiffusion's quality after (about) the training time labkit needed: the last check at or before it.
    at_equal = max((c for c in checks if ours_s is not None and c["train_s"] <= ours_s * 1.02),
                   key=lambda c: c["train_s"], default=None)
    if ours_s is None:
        speedup, passed = None, False
    elif peer_s is None:  # not reached within the budget: a lower bound
        speedup, passed = checks[-1]["train_s"] / ours_s, checks[-1]["train_s"] / ours_s >= BAR_SPEEDUP
    else:
        speedup, passed = peer_s / ours_s, peer_s / ours_s >= BAR_SPEEDUP
    summary = {
        "labkit_s": ours_s, "labkit_steps": ours["steps_to_quality"],
        "labkit_heun16_mmd2": ours["runs"][-1]["heun16"]["mmd2_mean"],
        "labkit_ddpm_mmd2": (ours["runs"][-1]["ddpm"] or {}).get("mmd2_mean"),
        "smalldiffusion_s": peer_s, "smalldiffusion_steps": first["steps"] if first else None,
        "smalldiffusion_reached": first is not None, "smalldiffusion_budget_s": args.budget,
        "speedup": speedup, "speedup_is_lower_bound": peer_s is None,
        "threshold": ours["runs"][-1]["heun16"]["threshold"],
        "smalldiffusion_at_labkit_time": None if at_equal is None else
        {"train_s": at_equal["train_s"], "steps": at_equal["steps"], "mmd2_mean": at_equal["mmd2_mean"]},
    }
    bar = {"name": "labkit >= 5x faster than smalldiffusion to the floor (ring8)", "limit": BAR_SPEEDUP,
           "value": speedup, "pass": bool(passed)}
    print(json.dumps(summary, indent=1))
    write_result("vs_smalldiffusion", {"labkit": ours, "smalldiffusion": peer, "summary": summary, "bar": bar})


if __name__ == "__main__":
    main()
