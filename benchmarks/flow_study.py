"""Chapter 9's measurements: uniform vs logit-normal t for the flow loss, training time to at_floor
(flow vs eps model), and quality vs NFE (flow Euler/Heun vs DDIM/Heun/DPM-Solver++(2M)), exact and learned.

    python benchmarks/flow_study.py --out benchmarks/flow_study.json

One torch thread (the machine is shared). at_floor at n = 1000 on one fixed noise batch per row.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from labkit import flow, metrics, oracle, samplers, schedules, targets, train

N_EVAL = 1000
STEP_COUNTS = (2, 4, 8, 16, 32)


def report(x, target, seed=0):
    r = metrics.floor_report(x.float(), target, generator=torch.Generator().manual_seed(100 + seed))
    return {"mmd2": r["mmd2"], "detail_miss": r["detail_miss"], "at_floor": bool(r["at_floor"])}


def flow_rows(v, target, noise, label):
    rows = []
    for solver in ("euler", "heun"):
        for n in STEP_COUNTS:
            out = flow.sample(v, noise, n, solver=solver)
            rows.append({"model": label, "sampler": f"flow-{solver}", "steps": n, "nfe": out.nfe,
                         **report(out.x, target)})
    return rows


def eps_rows(eps_fn, target, schedule, noise, label):
    rows = []
    for name, grid in (("ddim", "trailing"), ("heun", "karras"), ("dpmpp_2m", "karras")):
        for n in STEP_COUNTS:
            out = samplers.run(name, eps_fn, schedule, noise, n, grid=grid, keep_trajectory=False)
            rows.append({"model": label, "sampler": f"{name}-{grid}", "steps": n, "nfe": out.nfe,
                         **report(out.x, target)})
    return rows


def first_at_floor(rows):
    ok = [r["nfe"] for r in rows if r["at_floor"]]
    return min(ok) if ok else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/flow_study.json")
    parser.add_argument("--budgets", default="1000,2000,4000")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ring8, schedule = targets.get("ring8"), schedules.cosine()
    noise = torch.randn(N_EVAL, 2, generator=torch.Generator().manual_seed(7))
    t0 = time.perf_counter()
    metrics.noise_floor(ring8, N_EVAL), metrics.noise_floor(ring8, N_EVAL, statistic="detail_miss")
    result = {"floor_seconds": time.perf_counter() - t0, "training": [], "quality": []}
    print(f"floors: {result['floor_seconds']:.0f} s", flush=True)

    budgets = [int(b) for b in args.budgets.split(",")]
    for kind in ("flow-uniform", "flow-logit_normal", "eps"):
        for steps in budgets:
            start = time.perf_counter()
            if kind == "eps":
                model = train.new_model(ring8, schedule, seed=0)
                train.train(model, ring8, schedule, steps=steps, progress=False)
            else:
                model = flow.new_model(ring8, seed=0)
                flow.train(model, ring8, steps=steps, t_sampling=kind.split("-")[1], progress=False)
            seconds = time.perf_counter() - start
            rows = eps_rows(model.eps_fn(), ring8, schedule, noise, kind) if kind == "eps" else \
                flow_rows(flow.velocity_fn(model), ring8, noise, kind)
            row = {"kind": kind, "train_steps": steps, "train_seconds": seconds,
                   "first_at_floor_nfe": {s: first_at_floor([r for r in rows if r["sampler"] == s])
                                          for s in dict.fromkeys(r["sampler"] for r in rows)},
                   "detail_miss_at_16": {r["sampler"]: round(r["detail_miss"], 4) for r in rows if r["steps"] == 16}}
            result["training"].append(row)
            print(json.dumps(row), flush=True)
            if steps == budgets[-1]:
                result["quality"] += rows

    result["quality"] += flow_rows(oracle.velocity_fn(ring8), ring8, noise, "exact")
    result["quality"] += eps_rows(oracle.eps_fn(ring8, schedule), ring8, schedule, noise, "exact")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    for r in result["quality"]:
        print(f"{r['model']:18s} {r['sampler']:18s} N={r['steps']:3d} NFE={r['nfe']:3d} mmd2={r['mmd2']:.4f} "
              f"detail={r['detail_miss']:.3f} at_floor={r['at_floor']}")


if __name__ == "__main__":
    main()
