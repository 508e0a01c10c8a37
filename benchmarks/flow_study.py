"""Chapter 9's measurements: uniform vs logit-normal t for the flow loss, training time to at_floor
(flow vs eps model), and quality vs NFE (flow Euler/Heun vs DDIM/Heun/DPM-Solver++(2M)), exact and learned.

    python benchmarks/flow_study.py --out benchmarks/flow_study.json
    python benchmarks/flow_study.py --floor --train-seeds 0,1,2   # Euler at the strict floor (issue 13)
    python benchmarks/flow_study.py --ladder 1500,3000,4500,6000   # training steps to that floor

``--floor``: the default recipe's model per training seed and the exact velocity, Euler on the uniform
grid and on flow.karras_times, labels drawn at ring8's frequencies (and the null token at N = 32),
each judged by common.quality_check on 5 x 3 batches of n = 1000: how many are at_floor.

One torch thread (the machine is shared). at_floor at n = 1000 on one fixed noise batch per row.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import quality_check, sample_labels

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


FLOOR_STEPS = (16, 20, 24, 32)
FLOOR_QUALITY_SEEDS = 5  # x 3 batches each (common.quality_check)


def floor_cells(v, target, labels):
    """{(grid, labels, N): (batches at_floor, batches, worst detail_miss, worst mmd2)} for velocity v."""
    cells = {}
    for grid in ("uniform", "karras_times"):
        for mode in ("drawn", "null"):
            for n in FLOOR_STEPS if mode == "drawn" else (32,):
                vc, times = v(labels if mode == "drawn" else None), flow.karras_times(n) if grid != "uniform" else None
                qs = [quality_check(lambda z, vc=vc, n=n, times=times: flow.sample(vc, z, n, times=times).x.float(),
                                    target, seed=s) for s in range(FLOOR_QUALITY_SEEDS)]
                ok = [a for q in qs for a, b in zip(q["detail_miss_at_floor"], q["mmd2_at_floor"]) if a and b]
                cells[grid, mode, n] = (len(ok), 3 * len(qs), max(max(q["detail_miss"]) for q in qs),
                                        max(max(q["mmd2"]) for q in qs))
    return cells


def floor_study(train_seeds, out):
    """Euler at the strict floor: per training seed of the default recipe, and for the exact velocity."""
    ring8 = targets.get("ring8")
    labels = sample_labels(ring8, 3000)
    exact = oracle.velocity_fn
    rows = {"exact": floor_cells(lambda c: lambda x, t: exact(ring8, c)(x.double(), t.double()).float(), ring8,
                                 labels)}
    cpu = {}
    for seed in train_seeds:
        model = flow.new_model(ring8, seed)
        start = time.process_time()
        flow.train(model, ring8, seed=seed, progress=False)
        cpu[seed] = time.process_time() - start
        rows[f"seed {seed}"] = floor_cells(lambda c, model=model: flow.velocity_fn(model, c), ring8, labels)
    print(f"DEFAULTS {flow.DEFAULTS}; CPU s per training: {cpu}")
    print("velocity    grid          labels N   at_floor  worst detail_miss  worst mmd2")
    for name, cells in rows.items():
        for (grid, mode, n), (ok, total, dm, mmd) in cells.items():
            print(f"{name:11s} {grid:13s} {mode:6s} {n:3d}  {ok:2d}/{total}  {dm:.3f}  {mmd:.4f}")
    with open(out, "w") as f:
        json.dump({"recipe": flow.DEFAULTS, "train_cpu_seconds": cpu, "rows": {
            name: [{"grid": g, "labels": m, "steps": n, "at_floor": ok, "batches": tot, "worst_detail_miss": dm,
                    "worst_mmd2": mmd} for (g, m, n), (ok, tot, dm, mmd) in cells.items()]
            for name, cells in rows.items()}}, f, indent=1)


def ladder(budgets, out, seed=0, n=32):
    """Training steps (and CPU s on one thread) until the flow model is at the strict floor with Euler-n on
    flow.karras_times, labels drawn at ring8's frequencies: 5 x 3 batches of n = 1000 per budget."""
    ring8 = targets.get("ring8")
    labels, rows = sample_labels(ring8, 3000), []
    for steps in budgets:
        model, start = flow.new_model(ring8, seed), time.process_time()
        flow.train(model, ring8, steps=steps, seed=seed, progress=False)
        cpu, v = time.process_time() - start, flow.velocity_fn(model, labels)
        qs = [quality_check(lambda z, v=v: flow.sample(v, z, n, times=flow.karras_times(n)).x.float(), ring8, seed=s)
              for s in range(FLOOR_QUALITY_SEEDS)]
        ok = sum(a and b for q in qs for a, b in zip(q["detail_miss_at_floor"], q["mmd2_at_floor"]))
        rows.append({"train_steps": steps, "cpu_seconds": cpu, "at_floor": ok, "batches": 3 * len(qs),
                     "worst_detail_miss": max(max(q["detail_miss"]) for q in qs)})
        print(json.dumps(rows[-1]), flush=True)
    with open(out, "w") as f:
        json.dump({"recipe": flow.DEFAULTS, "euler_steps": n, "training_seed": seed, "rows": rows}, f, indent=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/flow_study.json")
    parser.add_argument("--budgets", default="1000,2000,4000")
    parser.add_argument("--floor", action="store_true", help="Euler at the strict floor (see the docstring)")
    parser.add_argument("--train-seeds", default="0,1,2")
    parser.add_argument("--ladder", default=None, help="training-step budgets to the Euler-32 floor (see ladder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.ladder:
        ladder([int(s) for s in args.ladder.split(",")], args.out)
        return
    if args.floor:
        floor_study([int(s) for s in args.train_seeds.split(",")], args.out)
        return
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
