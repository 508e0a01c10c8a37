"""Local experiments behind the recommendations in NOTES.md (not part of run_all).

    python benchmarks/experiments.py recipe 128:3e-3:512:1250 128:1e-2:512:600   # width:lr:batch:steps
    python benchmarks/experiments.py recipe 128:1e-2:512:300:1.0:2   # ...:p_uncond:seed (defaults 0.1 and 0)
    python benchmarks/experiments.py blit          # ScoreFieldApp update, full draw vs blitting
    python benchmarks/experiments.py step-cost     # CPU ms per training step of labkit's default recipe

Everything runs at one torch thread and is timed in CPU time (time.process_time), which stays
meaningful while other jobs share the cores; quality checks are the benchmark's (common.py).
"""

from __future__ import annotations

import os
import sys
import time

import torch
from common import parse_spec

torch.set_num_threads(1)


SAMPLER_CHOICES = {  # name -> (sampler, steps, grid): the fast samplers at <= 16 NFE, and DDPM-T
    "heun8-karras": ("heun", 8, "karras"), "heun8-trailing": ("heun", 8, "trailing"),
    "dpm16-karras": ("dpmpp_2m", 16, "karras"), "dpm16-trailing": ("dpmpp_2m", 16, "trailing"),
    "ddpm": ("ddpm", None, None),
}


def judge(model, target, schedule, names=tuple(SAMPLER_CHOICES), n=1000, seeds=3, labels="null") -> dict:
    """common.quality_check of the model's samples for each sampler in ``names``: unconditional
    (``labels="null"``, the null token) or with labels drawn from the target's (``"drawn"``)."""
    from common import quality_check, sample_labels

    from labkit import samplers

    eps_fn = model.eps_fn(None if labels == "null" else sample_labels(target, seeds * n))
    out = {}
    for name in names:
        sampler, steps, grid = SAMPLER_CHOICES[name]
        kwargs = {"grid": grid} if grid else {"generator": torch.Generator().manual_seed(1)}
        def draw(z, sampler=sampler, steps=steps, kwargs=kwargs):
            return samplers.run(sampler, eps_fn, schedule, z, steps, keep_trajectory=False, **kwargs).x

        out[name] = quality_check(draw, target, n=n, seeds=seeds)
    return out


def train_spec(target, schedule, spec: str):
    """A fresh model trained with the target's recipe updated by ``spec`` (``seed=`` seeds the model and its
    training); returns (model, seed, the full recipe, CPU seconds of training)."""
    from labkit import train

    settings = parse_spec(spec)
    seed = settings.pop("seed", 0)
    full = {**train.recipe(target), **settings}
    model = train.new_model(target, schedule, seed=seed, **{k: full[k] for k in train.MODEL_KEYS if k in full})
    start = time.process_time()
    train.train(model, target, schedule, seed=seed, progress=False,
                **{k: v for k, v in full.items() if k not in train.MODEL_KEYS})
    return model, seed, full, time.process_time() - start


def recipe(specs, target_name="ring8", names=("dpm16-karras", "dpm16-trailing", "ddpm"), labels=("null", "drawn")):
    """Quality after training with each recipe spec (train.DEFAULTS updated by key=value pairs; ``seed``
    seeds the model and its training), judged per sampler by common.quality_check (3 seeds x n = 1000)."""
    from labkit import schedules, targets

    target, schedule = targets.get(target_name), schedules.cosine()
    for spec in specs:
        model, seed, full, cpu = train_spec(target, schedule, spec)
        q = {f"{k}/{mode}": v for mode in labels for k, v in judge(model, target, schedule, names, labels=mode).items()}
        cells = "  ".join(f"{k} dm {v['detail_miss_mean']:.4f} (max {max(v['detail_miss']):.4f}) mmd "
                          f"{v['mmd2_mean']:.4f}{' OK' if v['at_floor'] else ''}" for k, v in q.items())
        print(f"{target_name} {spec} seed {seed}: CPU {cpu:.1f} s ({cpu / full['steps'] * 1e3:.2f} ms/step) "
              f"| {cells} | thresholds dm {next(iter(q.values()))['detail_miss_threshold']:.4f} "
              f"mmd {next(iter(q.values()))['mmd2_threshold']:.4f} | load {os.getloadavg()[0]:.1f}", flush=True)


def flow_recipe(specs, target_name="ring8", runs=(("euler", 16), ("euler", 32), ("heun", 16))):
    """The flow model's quality after training with each spec (flow.DEFAULTS updated by key=value pairs),
    null-token samples judged by common.quality_check per (solver, steps) of flow.sample."""
    from common import quality_check

    from labkit import flow, targets

    target = targets.get(target_name)
    for spec in specs:
        settings = parse_spec(spec)
        seed = settings.pop("seed", 0)
        full = {**flow.DEFAULTS, **settings}
        model = flow.new_model(target, seed, full.pop("width"), full.pop("depth"))
        start = time.process_time()
        flow.train(model, target, seed=seed, progress=False, **full)
        cpu = time.process_time() - start
        v = flow.velocity_fn(model)
        q = {f"{solver}{steps}": quality_check(lambda z, solver=solver, steps=steps, v=v: flow.sample(
            v, z, steps, solver=solver).x, target) for solver, steps in runs}
        cells = "  ".join(f"{k} dm {r['detail_miss_mean']:.4f} (max {max(r['detail_miss']):.4f}) mmd "
                          f"{r['mmd2_mean']:.4f}{' OK' if r['at_floor'] else ''}" for k, r in q.items())
        print(f"flow {target_name} {spec} seed {seed}: CPU {cpu:.1f} s | {cells} | load {os.getloadavg()[0]:.1f}",
              flush=True)


def blit():
    """CPU ms of ScoreFieldApp.set_t with its full canvas draw, and with the dynamic artists blitted."""
    import matplotlib

    matplotlib.use("Agg")
    from common import percentile

    from labkit import schedules, targets, train
    from labkit.widgets.score_field import ScoreFieldApp

    target, schedule = targets.get("ring8"), schedules.cosine()
    model = train.new_model(target, schedule)
    train.train(model, target, schedule, steps=200, progress=False)
    app = ScoreFieldApp(schedule, {"learned eps": model.eps_fn()}, target=target)
    ts = (torch.rand(60, generator=torch.Generator().manual_seed(0)) * (schedule.T - 1)).tolist()

    def cpu_ms(fn):
        out = []
        for t in ts:
            start = time.process_time()
            fn(t)
            out.append((time.process_time() - start) * 1e3)
        return f"p50 {percentile(out, 50):.1f} ms, p95 {percentile(out, 95):.1f} ms"

    canvas = app.fig.canvas
    print("set_t, full draw:       ", cpu_ms(app.set_t))
    print("canvas draw alone:      ", cpu_ms(lambda t: canvas.draw()))
    print("score field alone:      ", cpu_ms(app.scores))
    dynamic = [*app.quivers.values(), *app.clouds.values(), *app._notes.values(), app._suptitle]
    for artist in dynamic:
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(app.fig.bbox)

    def blit_redraw():
        canvas.restore_region(background)
        for artist in dynamic:
            app.fig.draw_artist(artist)
        canvas.blit(app.fig.bbox)

    app.redraw = blit_redraw
    print("set_t, blitted:         ", cpu_ms(app.set_t))


def step_cost():
    from labkit import schedules, targets, train

    target, schedule = targets.get("ring8"), schedules.cosine()
    model = train.new_model(target, schedule)
    train.train(model, target, schedule, steps=20, progress=False)
    start = time.process_time()
    train.train(model, target, schedule, steps=300, progress=False)
    print(f"labkit default recipe: {(time.process_time() - start) / 300 * 1e3:.2f} CPU ms per step")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("recipe", "flow", "blit", "step-cost"):
        raise SystemExit(__doc__)
    {"recipe": lambda: recipe(sys.argv[2:]), "flow": lambda: flow_recipe(sys.argv[2:]), "blit": blit,
     "step-cost": step_cost}[sys.argv[1]]()
