"""Local experiments behind the recommendations in NOTES.md (not part of run_all).

    python benchmarks/experiments.py recipe 128:3e-3:512:1250 128:1e-2:512:600   # width:lr:batch:steps
    python benchmarks/experiments.py recipe 128:1e-2:512:300:1.0:2   # ...:p_uncond:seed (defaults 0.1 and 0)
    python benchmarks/experiments.py blit          # ScoreFieldApp update, full draw vs blitting
    python benchmarks/experiments.py step-cost     # CPU ms per training step of labkit's default recipe

Everything runs at one torch thread and is timed in CPU time (time.process_time), which stays
meaningful while other jobs share the cores; quality checks are the benchmark's (common.py).
"""

from __future__ import annotations

import sys
import time

import torch

torch.set_num_threads(1)


def recipe(specs):
    """Ring8 quality after training with each width:lr:batch:steps[:p_uncond[:seed]] setting of train()'s
    arguments (unconditional samples, through the null token)."""
    from time_to_quality import evaluate

    from labkit import schedules, targets, train

    target, schedule = targets.get("ring8"), schedules.cosine()
    for spec in specs:
        parts = spec.split(":")
        width, lr, batch, steps = parts[:4]
        p_uncond = parts[4] if len(parts) > 4 else "0.1"
        seed = parts[5] if len(parts) > 5 else "0"
        model = train.new_model(target, schedule, seed=int(seed), width=int(width))
        start = time.process_time()
        train.train(model, target, schedule, steps=int(steps), lr=float(lr), batch_size=int(batch),
                    p_uncond=float(p_uncond), seed=int(seed), progress=False)
        cpu = time.process_time() - start
        q = evaluate(model, target, schedule, n=1000, seeds=3)
        ddpm = q["ddpm"]["mmd2_mean"] if q["ddpm"] else float("nan")
        print(f"width {width} lr {lr} batch {batch} steps {steps} p_uncond {p_uncond} seed {seed}: "
              f"CPU {cpu:.2f} s ({cpu / int(steps) * 1e3:.2f} ms/step)  "
              f"Heun-16 {q['heun16']['mmd2_mean']:.5f}  DDPM {ddpm:.5f}  threshold "
              f"{q['heun16']['threshold']:.5f}  {'AT FLOOR' if q['at_floor'] else ''}", flush=True)


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
    if len(sys.argv) < 2 or sys.argv[1] not in ("recipe", "blit", "step-cost"):
        raise SystemExit(__doc__)
    {"recipe": lambda: recipe(sys.argv[2:]), "blit": blit, "step-cost": step_cost}[sys.argv[1]]()
