"""Calibration of ``labkit.metrics.at_floor``: how often it accepts fresh target samples and how
often it rejects the perturbed targets of ``labkit.perturbed``, at n = 1000.

    python benchmarks/at_floor_calibration.py [--trials 100] [--n 1000]
    python benchmarks/at_floor_calibration.py --markdown-only   (AT_FLOOR.md from the saved JSON)

Each trial draws a sample (fresh or perturbed) and asks ``floor_report`` with its own generator
(a fresh reference batch per trial); the floors are labkit's cached ones (FLOOR_REPEATS pairs).
Besides the joint verdict it records both statistics, so the table also shows what the rule
mean + 2 sd would have done. Writes benchmarks/results/at_floor_calibration.json and
benchmarks/AT_FLOOR.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from common import HERE, RESULTS, machine  # noqa: F401  (common puts the tree on sys.path)

from labkit import metrics, perturbed, targets


def measure(cases: dict, n: int, trials: int, seed: int = 1) -> list[dict]:
    rows = []
    for case, (name, description, draw) in cases.items():
        target = targets.get(name)
        t0 = time.perf_counter()
        floors = {s: metrics.noise_floor(target, n, statistic=s) for s in metrics.STATISTICS}
        floor_s = time.perf_counter() - t0
        g = torch.Generator().manual_seed(seed)
        reports, t0 = [], time.perf_counter()
        for _ in range(trials):
            reports.append(metrics.floor_report(draw(n, g).to(torch.float32), target, generator=g))
        call_s = (time.perf_counter() - t0) / trials
        row = {"case": case, "target": name, "perturbation": description, "n": n, "trials": trials,
               "pass": sum(r["at_floor"] for r in reports), "floor_build_s": floor_s, "call_s": call_s}
        for s, floor in floors.items():
            values = [r[s] for r in reports]
            row[s] = {"mean": sum(values) / trials, "floor_mean": floor.mean, "floor_sd": floor.sd,
                      "threshold": floor.threshold, "pass": sum(r[f"{s}_at_floor"] for r in reports),
                      "pass_2sd": sum(v <= floor.mean + 2 * floor.sd for v in values)}
        row["pass_2sd"] = sum(all(r[s] <= floors[s].mean + 2 * floors[s].sd for s in floors) for r in reports)
        rows.append(row)
        print(f"{case:<42} pass {row['pass']:>3}/{trials}  (mmd2 {row['mmd2']['pass']:>3}, detail "
              f"{row['detail_miss']['pass']:>3}; rule 2 sd: {row['pass_2sd']:>3})  floors {floor_s:5.1f} s, "
              f"{1000 * call_s:5.0f} ms/call", flush=True)
    return rows


def markdown(rows: list[dict], args, seconds: float, where: dict) -> str:
    fresh = [r for r in rows if r["case"].endswith(" fresh")]
    bad = [r for r in rows if not r["case"].endswith(" fresh")]
    ring = next(r for r in rows if r["case"] == "ring8 fresh")
    blind = next((r for r in rows if r["case"] == "ring8 modes 2.3x too wide"), None)
    lines = [
        "# Calibration of `metrics.at_floor`",
        "",
        f"Command: `python benchmarks/at_floor_calibration.py --trials {args.trials} --n {args.n}` "
        f"({seconds:.0f} s, one torch thread, load average {where['loadavg'][0]:.1f} at the end).",
        "",
        f"Rule: a statistic is at the floor when it is <= mean + {metrics.FLOOR_Z:g} sd of its null "
        f"(`Floor.threshold`), the null being {metrics.FLOOR_REPEATS} pairs of fresh target batches of the same n "
        "(seeded, cached per target, n and statistic). `at_floor` needs both the seed's `mmd2` and "
        f"`detail_miss` ((1 - precision) + (1 - recall) in {metrics.DETAIL_K}-NN balls, Kynkaanniemi et al. 2019) "
        "at the floor. Each trial: a new sample and a new reference batch.",
        "",
        "## Fresh target samples (must pass >= 90%)",
        "",
        "| case | n | trials | at_floor passes | mmd2 passes | detail passes | joint passes with mean + 2 sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in fresh:
        lines.append(f"| {r['case']} | {r['n']} | {r['trials']} | {r['pass']} ({100 * r['pass'] / r['trials']:.0f}%) "
                     f"| {r['mmd2']['pass']} | {r['detail_miss']['pass']} | {r['pass_2sd']} |")
    lines += [
        "",
        "## Perturbed targets (must fail >= 90%)",
        "",
        "| case | perturbation | n | trials | at_floor passes (fail rate) | mmd2 passes | detail passes "
        "| mean mmd2 / threshold | mean detail / threshold |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in bad:
        m, d = r["mmd2"], r["detail_miss"]
        lines.append(f"| {r['case']} | {r['perturbation']} | {r['n']} | {r['trials']} | {r['pass']} "
                     f"({100 * (1 - r['pass'] / r['trials']):.0f}% fail) | {m['pass']} | {d['pass']} "
                     f"| {m['mean']:.5f} / {m['threshold']:.5f} | {d['mean']:.4f} / {d['threshold']:.4f} |")
    lines += [
        "",
        "## Timings (n = 1000, one torch thread)",
        "",
        "| target | first call (builds both floors) | later calls |",
        "|---|---|---|",
    ]
    for r in fresh:
        lines.append(f"| {r['target']} | {r['floor_build_s'] + r['call_s']:.1f} s | {1000 * r['call_s']:.0f} ms |")
    lines += ["", f"Floors of ring8 at n = {ring['n']}: mmd2 {ring['mmd2']['floor_mean']:.5f} +- "
              f"{ring['mmd2']['floor_sd']:.5f} (threshold {ring['mmd2']['threshold']:.5f}); detail_miss "
              f"{ring['detail_miss']['floor_mean']:.4f} +- {ring['detail_miss']['floor_sd']:.4f} "
              f"(threshold {ring['detail_miss']['threshold']:.4f})."]
    values = metrics.noise_floor(targets.get("ring8"), ring["n"]).values
    negative = sum(v < 0 for v in values)
    lines += ["", f"Of the {len(values)} MMD^2 values of ring8's floor at n = {ring['n']}, {negative} are negative "
              f"(mean {ring['mmd2']['floor_mean']:.5f}): the unbiased MMD^2 of equal distributions is negative "
              f"{'more' if negative > len(values) / 2 else 'not more'} than half the time (its null is skewed right)."]
    if blind:
        lines += ["", f"The seed's blind spot: ring8 with modes 2.3x too wide (sd 0.23) passes the seed's MMD in "
                  f"{blind['mmd2']['pass']}/{blind['trials']} trials (mean MMD^2 {blind['mmd2']['mean']:.5f} under "
                  f"its threshold {blind['mmd2']['threshold']:.5f}) and the detail criterion in "
                  f"{blind['detail_miss']['pass']}/{blind['trials']} (mean {blind['detail_miss']['mean']:.3f} "
                  f"against {blind['detail_miss']['threshold']:.4f})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite AT_FLOOR.md from the last results/at_floor_calibration.json, measuring nothing")
    args = parser.parse_args(argv)
    if args.markdown_only:
        saved = json.loads((RESULTS / "at_floor_calibration.json").read_text())
        args.trials, args.n = saved["rows"][0]["trials"], saved["rows"][0]["n"]
        (HERE / "AT_FLOOR.md").write_text(markdown(saved["rows"], args, saved["seconds"], saved["machine"]))
        return 0
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = measure({**perturbed.FRESH, **perturbed.PERTURBATIONS}, args.n, args.trials)
    seconds = time.perf_counter() - t0
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "at_floor_calibration.json").write_text(json.dumps(
            {"machine": machine(), "seconds": seconds, "rows": rows}, indent=1))
        (HERE / "AT_FLOOR.md").write_text(markdown(rows, args, seconds, machine()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
