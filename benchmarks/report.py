"""Write benchmarks/RESULTS.md from benchmarks/results/*.json (run by run_all.py; can be re-run alone).

The hand-written findings in benchmarks/NOTES.md (profiles, causes of missed bars, recommended
fixes) are appended unchanged.
"""

from __future__ import annotations

from common import HERE, load_result

OUT = HERE / "RESULTS.md"


def fmt(v, spec=".2f", none="-"):
    return none if v is None else format(v, spec)


def table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def verdict(ok) -> str:
    return "**pass**" if ok else "**FAIL**"


def collect_bars(results) -> list[tuple[str, str, str, str]]:
    rows = []
    ttq, sd, df, wl, co = (results.get(k) for k in
                           ("time_to_quality", "vs_smalldiffusion", "vs_diffusers", "widget_latency", "course"))
    for b in (ttq or {}).get("bars", []):
        rows.append((f"Time to quality, {b['name'].split()[0]} (DDPM and a sampler at <= 16 NFE at the strict floor)",
                     f"<= {b['limit_s']:.0f} s", fmt(b["value_s"], ".1f", "not reached") + " s", verdict(b["pass"])))
    if sd:
        for b in sd["bars"]:
            value = "-" if b["value"] is None else ("> " if b["lower_bound"] else "") + f"{b['value']:.2f}x"
            rows.append((b["name"], ">= 5x", value, verdict(b["pass"])))
    if df:
        for b in df["bars"]:
            value = f"{b['value']:.1e}" if "agree" in b["name"] else f"{b['value']:.3f}x (slowest case)"
            rows.append((b["name"], f"<= {b['limit']:.0e}" if "agree" in b["name"] else ">= 1", value,
                         verdict(b["pass"])))
    if wl:
        for b in wl["bars"]:
            rows.append((b["name"], f"<= {b['limit_ms']:.0f} ms", f"{b['value_ms']:.1f} ms", verdict(b["pass"])))
    if co:
        partial = "" if co.get("complete", True) else " (PARTIAL: run stopped)"
        for b in co["bars"]:
            b = {**b, "name": b["name"] + partial}
            if "limit_s" in b:
                rows.append((b["name"], "<= 240 s", f"{b['value_s']:.0f} s", verdict(b["pass"])))
            else:
                rows.append((b["name"], "<= 1000 MB", f"{b['value_mb']:.0f} MB", verdict(b["pass"])))
    return rows


def section_ttq(r) -> list[str]:
    lines = ["## Time to quality (`time_to_quality.py`)", "",
             f"Default recipe ({', '.join(f'{k}={v}' for k, v in r['defaults'].items())}); complete runs of increasing "
             f"length, a fresh model each; n = {r['n']} per seed, {r['seeds']} seeds; at floor = "
             "`labkit.metrics.floor_report` at the floor (seed MMD^2 and detail_miss, each <= mean + 3 sd of its "
             "shipped noise floor) in every seed, for DDPM and for the best sampler at <= 16 NFE. Time = training "
             "wall time (median of the repeats listed).", ""]
    rows = []
    for t in r["targets"]:
        for run in t["runs"]:
            d = run["ddpm"]
            fast = ", ".join(f"{name} {q['detail_miss_mean']:.4f}{' *' if q['at_floor'] else ''}"
                             for name, q in run["fast"].items())
            rows.append((t["target"], run["steps"], fmt(run["train_s"], ".2f"),
                         fmt(d["detail_miss_mean"] if d else None, ".4f", "skipped") + (" *" if d and d["at_floor"]
                                                                                         else ""),
                         fast, run["best"] or "-", "yes" if run["at_floor"] else "no"))
    lines += table(["target", "train steps", "train s", "DDPM detail_miss", "<= 16 NFE detail_miss (* at floor)",
                    "best", "at floor"], rows)
    rows = [(t["target"], fmt(t["steps_to_quality"], "d", "not reached"),
             fmt(t["seconds_to_quality"], ".2f", "not reached"),
             ", ".join(f"{x:.2f}" for x in t["timing_repeats"]) or "-") for t in r["targets"]]
    lines += ["Summary:", ""] + table(["target", "steps to quality", "seconds to quality", "timings (s)"], rows)
    return lines


def section_sd(r) -> list[str]:
    s, peers = r["summary"], r["smalldiffusion"]
    p = peers[0]
    lines = ["## labkit vs smalldiffusion (`vs_smalldiffusion.py`)", "",
             f"smalldiffusion {p['smalldiffusion']} (torch {p['torch']}, {p['torch_threads']} thread, its own venv), "
             f"recipe: {p['recipe']}; trained on a pool of ring8 points; checked every {p['every']} steps and at "
             f"labkit's times (clock stopped while checking), budget {p['budget_s']:.0f} s. labkit (1 thread): "
             "complete runs of 100, 200, ... steps, a fresh model each, with an unconditional model "
             "(`p_uncond=1.0`, every other setting the default recipe: the like-for-like comparison, since "
             "smalldiffusion's model is unconditional) and with the default class-conditional recipe "
             "(`p_uncond=0.1`, sampled unconditionally through the null token). Both sides repeated for "
             f"{s['train_seeds']} training seeds (initialisation, data pool and order); a side's time is the "
             "median over seeds, labkit's time per seed the median of 3 timings of the passing run. Same check "
             "for both (same noise, reference batches and floor: at floor = mean MMD^2 over 3 sample seeds <= "
             f"{s['threshold']:.5f}).", ""]
    reached = fmt(s["smalldiffusion_s"], ".2f", f"> {s['smalldiffusion_budget_s']:.0f} (not reached)")
    per_seed = ", ".join(f"{n} ({t:.2f} s)" if n else f"not reached ({t:.2f} s)" for n, t in
                         zip(s["smalldiffusion_steps_per_seed"], s["smalldiffusion_s_per_seed"]))
    lines += [f"smalldiffusion to the floor, steps (seconds) per seed: {per_seed}; median {reached} s.", ""]
    rows = []
    for c in s["comparisons"]:
        eq = c["smalldiffusion_at_labkit_time"]
        seeds = ", ".join(f"{n} ({t:.2f} s)" if n else "not reached" for n, t in
                          zip(c["labkit_steps"], c["labkit_s_per_seed"]))
        per_seed_speedup = ", ".join("-" if a is None or b is None else f"{b / a:.1f}x" for a, b in
                                     zip(c["labkit_s_per_seed"], s["smalldiffusion_s_per_seed"]))
        rows.append((c["recipe"], c["criterion"], seeds, fmt(c["labkit_s"], ".2f"), reached,
                     ("> " if c["speedup_is_lower_bound"] else "") + fmt(c["speedup"], ".2f") + "x", per_seed_speedup,
                     ", ".join("-" if e is None else f"{e['mmd2_mean']:.5f} ({e['train_s']:.2f} s)" for e in eq)))
    lines += table(["labkit recipe", "labkit criterion", "labkit steps (s) per seed", "labkit s (median)",
                    "smalldiffusion s (median)", "speedup (medians)", "speedup per seed",
                    "smalldiffusion MMD^2 at labkit's time, per seed"], rows)
    rows = [(q["seed"], c["steps"], fmt(c["train_s"], ".2f"), fmt(c["mmd2_mean"], ".5f"),
             "yes" if c["at_floor"] else "no") for q in peers for c in q["checkpoints"]]
    lines += ["smalldiffusion checkpoints:", ""] + table(["seed", "steps", "train s", "MMD^2", "at floor"], rows)
    return lines


def section_df(r) -> list[str]:
    lines = ["## labkit vs diffusers sampler loops (`vs_diffusers.py`)", "",
             f"diffusers {r['diffusers']}; eps functions: labkit's EpsMLP (ring8, {r['train_steps']} training steps) "
             "and a stub eps = x / 2 (the loops' own work only). DDIM: `DDIMScheduler(squaredcos_cap_v2, "
             "timestep_spacing='trailing', set_alpha_to_one=True, clip_sample=False)` vs `labkit.samplers.ddim(..., "
             "sigma_max=None)`. Heun: `HeunDiscreteScheduler(squaredcos_cap_v2, use_karras_sigmas=True)` vs "
             "`labkit.samplers.heun(..., sigma_max=schedule.sigma_max)` (diffusers' Karras sigmas start at the "
             "schedule's largest sigma, about 2e4; labkit's default starts at 80). One torch thread. "
             f"{r['repeats']} rounds, each running labkit (`keep_trajectory=False`; diffusers keeps no trajectory), "
             "diffusers, labkit keeping its trajectory (the default) and labkit again; times are medians, ratios "
             "the median over rounds of diffusers / labkit (> 1: labkit faster); 'labkit vs itself' is the "
             "resolution of such a ratio.", ""]
    rows = [(x["eps"], x["sampler"], x["n"], x["nfe_labkit"], x["nfe_diffusers"], fmt(x["labkit_s"] * 1e3, ".2f"),
             fmt(x["diffusers_s"] * 1e3, ".2f"), fmt(x["ratio"], ".3f"), fmt(x["ratio_with_trajectory"], ".3f"),
             fmt(x["ratio_labkit_vs_itself"], ".3f")) for x in r["rows"]]
    lines += table(["eps", "sampler", "n", "NFE labkit", "NFE diffusers", "labkit ms", "diffusers ms", "ratio",
                    "ratio, labkit keeping its trajectory", "labkit vs itself"], rows)
    rows = [(a["eps"], a["sampler"], a["diffusers_schedule"], f"{a['max_abs_diff']:.2e}", f"{a['max_abs_x']:.3g}")
            for a in r["agreement"]]
    lines += ["Agreement of the final samples (n = 300):", ""]
    lines += table(["eps function", "sampler", "diffusers' abar", "max abs diff", "max abs x"], rows)
    return lines


def section_wl(r) -> list[str]:
    lines = ["## Widget latency (`widget_latency.py`)", "",
             f"Backend {r['backend']} (headless); measured through {r['measured_through']}. Score field: "
             "`ScoreFieldApp.set_t` (one panel, 16 x 16 grid, noised cloud). Samples: `SamplerApp.update` "
             "(Heun-16, 300 points; includes the MMD^2 the app shows). Both app rows call the method through the "
             "app's `guarded` wrapper, as a slider's callback does (one torch thread, errors caught). 'bare' = the "
             "same model call, artist update and Agg draw without the app, at torch's default threads.", ""]
    rows = [(k, v["count"], fmt(v["p50_ms"], ".2f"), fmt(v["p95_ms"], ".2f"), fmt(v["max_ms"], ".2f"))
            for k, v in r["results"].items()]
    return lines + table(["measurement", "updates", "p50 ms", "p95 ms", "max ms"], rows)


def section_course(r) -> list[str]:
    partial = "" if r.get("complete", True) else " **Partial: the run was stopped before every chapter ran.**"
    lines = ["## Course (`course.py`)", "",
             f"Chapters found: {', '.join(r['notebooks']) or 'none'}.{partial} Each executed in a fresh kernel with "
             "nbclient (kernel start included), each thread setting from an empty model cache; peak RSS = the "
             "kernel's ru_maxrss. The time bar is for 2 cores (torch's default threads); the 1-thread pass, a "
             "one-core Binder, is reported beside it.", ""]
    rows = []
    for threads, run in r["runs"].items():
        for c in run["chapters"]:
            rows.append((threads, c["notebook"], fmt(c["seconds"], ".1f"), fmt(c["peak_rss_mb"], ".0f"),
                         c["torch_threads"], c["error"] or ""))
        rows.append((threads, "**total**", f"**{run['total_s']:.1f}**", f"max {run['max_peak_rss_mb']:.0f}", "", ""))
    return lines + table(["threads", "notebook", "seconds", "peak RSS MB", "torch threads", "error"], rows)


def section_tp(r) -> list[str]:
    f = r["flops"]
    lines = ["## Sampling throughput vs the FLOP bound (`throughput.py`)", "",
             f"Model layers (in, out): {f['layers']}; {f['matmul_per_row']} matmul FLOPs + {f['bias_per_row']} bias "
             f"adds per row (+ {f['silu_units_per_row']} SiLU and {f['time_embedding_sincos_per_row']} sin/cos, "
             f"elementwise). DDPM-{r['T']} on {r['n']} points = {next(iter(r['threads'].values()))['gflop_total']:.1f} "
             "GFLOP.", ""]
    rows = [(th, fmt(x["ddpm_s"], ".2f"), fmt(x["model_calls_s"], ".2f"), fmt(x["bare_forward_s"], ".2f"),
             fmt(x["sampler_only_s"], ".3f"), fmt(x["achieved_gflops"], ".1f"), fmt(x["matmul_gflops_large"], ".1f"),
             fmt(x["matmul_gflops_model_shape"], ".1f"), f"{x['fraction_of_large']:.0%}",
             f"{x['fraction_of_model_shape']:.0%}", fmt(x["train_steps_per_s"], ".0f"))
            for th, x in r["threads"].items()]
    return lines + table(["torch threads", "DDPM s", "1000 eps_fn calls s", "1000 bare forwards s",
                          "sampler alone s", "achieved GFLOP/s", "matmul GFLOP/s 2048^3",
                          "matmul GFLOP/s 1000x128x128", "fraction (2048^3)", "fraction (model shape)",
                          "training steps/s"], rows)


def main():
    names = ["time_to_quality", "vs_smalldiffusion", "vs_diffusers", "widget_latency", "course", "throughput"]
    results = {k: load_result(k) for k in names}
    run = load_result("run_all") or {}
    any_result = next((v for v in results.values() if v), None)
    m = any_result["machine"] if any_result else {}
    lines = ["# Benchmarks", "",
             "Generated by `benchmarks/report.py` from `benchmarks/results/*.json`. Reproduce with:", "",
             "```", run.get("command", "python benchmarks/run_all.py"), "```", ""]
    if m:
        lines += [f"- Machine: {m['cpu_model']}, {m['cpu_count']} cores, {m['platform']}",
                  f"- Python {m['python']}, torch {m['torch']}; torch's intra-op thread count of each part is given "
                  "under its section"]
    if run:
        lines += [f"- Run: {run['started_utc']} to {run['finished_utc']} UTC, {run['total_s']:.0f} s in all"]
        lines += ["- Load average (1, 5, 15 min) before each script: " + "; ".join(
            f"{s['name']} {', '.join(fmt(x) for x in s['loadavg_before'])} ({s['seconds']:.0f} s)"
            for s in run["scripts"])]
        failed = [f"{s['name']} ({s['returncode']})" for s in run["scripts"] if s["returncode"] != 0]
        if failed:
            lines += ["- Scripts that failed or were stopped (their sections are missing or partial): "
                      + ", ".join(failed)]
    lines += ["", "## Bars", ""]
    lines += table(["bar", "limit", "measured", "verdict"], collect_bars(results))
    for key, section in (("time_to_quality", section_ttq), ("vs_smalldiffusion", section_sd),
                         ("vs_diffusers", section_df), ("widget_latency", section_wl), ("course", section_course),
                         ("throughput", section_tp)):
        if results[key]:
            r = results[key]
            lines += section(r)
            lines += [f"_{key}: measured {r['machine']['date_utc']} UTC with torch at {r['machine']['torch_threads']} "
                      f"thread(s), load average {', '.join(f'{x:.2f}' for x in r['machine']['loadavg'])} at the end._",
                      ""]
        else:
            lines += [f"## {key}", "", "Not measured in this run.", ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
