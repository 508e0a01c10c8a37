"""Widget latency: how long one slider update takes, headless (matplotlib Agg), p50 and p95.

Measured through labkit's own widget apps, the code a slider runs (each call wrapped in the apps'
``guarded``, as a slider's callback is: one torch thread, errors caught by the app):
- score field: ``ScoreFieldApp.set_t(t)`` with one panel (the learned eps of ring8) on the
  16 x 16 grid with the noised cloud: model call, ``set_UVC`` and ``set_offsets``, canvas draw.
  t sweeps over random values in [0, T-1]. Bar p95 <= 50 ms.
- samples: ``SamplerApp.update()`` with Heun, 16 steps (31 NFE), 300 points: sampler, MMD^2 to
  the app's reference batch (shown in its title), ``set_offsets``/``set_data``, canvas draw.
  Bar p95 <= 150 ms.
- the lab's N and w sliders: ``LabApp.set_steps(N)`` (N around 16, Heun: samples re-rendered), and a
  w move with class 2 chosen as a kernel runs it: the guided score field redrawn at once
  (``update_field``), the guided samples (two forwards per evaluation) once w settles (``sample``),
  each a draw of the whole lab figure; 300 points. Bar p95 <= 150 ms, the samples' budget. The lab's
  t slider (``set_t``: the field alone) is timed too.
The same operations without the apps (model call + artist update + draw) are timed beside them,
so the apps' own overhead shows. With ipympl in a browser the PNG transfer comes on top; it is
not part of these numbers.

    python benchmarks/widget_latency.py [--updates 100]
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from common import percentile, write_result  # noqa: E402

from labkit import fields, samplers, schedules, targets, train  # noqa: E402

BARS_MS = {"score_field": 50.0, "heun16_300": 150.0}


def latencies(update, args_list, warmup: int = 3) -> list[float]:
    for a in args_list[:warmup]:
        update(a)
    out = []
    for a in args_list:
        start = time.perf_counter()
        update(a)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def stats(ms: list[float]) -> dict:
    return {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "max_ms": max(ms), "count": len(ms),
            "values_ms": ms}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=1000)
    args = parser.parse_args(argv)

    target, schedule = targets.get("ring8"), schedules.cosine()
    model = train.new_model(target, schedule)
    train.train(model, target, schedule, steps=args.train_steps, progress=False)
    eps_fn = model.eps_fn()
    g = torch.Generator().manual_seed(0)
    ts = (torch.rand(args.updates, generator=g) * (schedule.T - 1)).tolist()
    results = {}

    # --- score field through the app ---
    from labkit.widgets.score_field import ScoreFieldApp

    app = ScoreFieldApp(schedule, {"learned eps": eps_fn}, target=target)
    # What a t-slider change runs: the app's guarded callback (one torch thread, errors to the app).
    results["score_field_app"] = stats(latencies(lambda t: app.guarded(lambda: app.set_t(t)), ts))
    plt.close(app.fig)

    # --- the lab's N and w sliders (300 points, Heun; w guides class 2) ---
    from labkit.widgets.lab import LabApp

    lab = LabApp(target.name, sampler="heun", steps=16, n=300)
    lab.trained.model.load_state_dict(model.state_dict())
    lab.trained.view.load_state_dict(model.state_dict())
    results["lab_steps_heun_300"] = stats(latencies(lambda k: lab.guarded(lambda: lab.set_steps(k)),
                                                    [15 + i % 3 for i in range(args.updates)]))
    lab.set_class(2)
    ws = (torch.rand(args.updates, generator=g) * 4).round(decimals=2).tolist()

    def w_then(method):  # in a kernel a w move redraws the field at once and the samples once w settles
        return lambda w: (lab.set_quietly(lab.w_slider, w), lab.guarded(method))

    results["lab_w_field_300"] = stats(latencies(w_then(lab.update_field), ws))
    results["lab_w_samples_heun16_300"] = stats(latencies(w_then(lab.sample), ws))
    results["lab_t_field"] = stats(latencies(lambda t: lab.guarded(lambda: lab.set_t(int(t))), ts))
    if lab.last_error:
        raise RuntimeError(f"a lab update failed:\n{lab.last_error}")
    plt.close(lab.fig)

    # --- score field, the bare operations ---
    points = fields.grid(3.0, 16)
    cell = 6.0 / 15
    fig, ax = plt.subplots(figsize=(4, 4))
    q = ax.quiver(points[:, 0], points[:, 1], points[:, 0] * 0, points[:, 1] * 0, angles="xy", scale_units="xy",
                  scale=1.0)
    fig.canvas.draw()

    def bare_field(t):
        v, _ = fields.display_arrows(fields.score_field(eps_fn, schedule, t, points), cell)
        q.set_UVC(v[:, 0].numpy(), v[:, 1].numpy())
        fig.canvas.draw()

    results["score_field_bare"] = stats(latencies(bare_field, ts))
    plt.close(fig)

    # --- Heun-16 on 300 points through the app ---
    from labkit.widgets.samplers import SamplerApp

    sapp = SamplerApp(eps_fn, schedule, target, sampler="heun", steps=16, n=300)
    results["heun16_300_app"] = stats(latencies(lambda _: sapp.guarded(sapp.update), list(range(args.updates))))
    if app.last_error or sapp.last_error:
        raise RuntimeError(f"an app update failed:\n{app.last_error or sapp.last_error}")
    plt.close(sapp.fig)

    # --- Heun-16 on 300 points, the bare operations (new noise each time) ---
    noises = [torch.randn(300, 2, generator=g) for _ in range(args.updates)]
    fig, ax = plt.subplots(figsize=(4, 4))
    sc = ax.scatter(noises[0][:, 0], noises[0][:, 1], s=4)
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
    fig.canvas.draw()

    def bare_sample(noise):
        x = samplers.heun(eps_fn, schedule, noise, 16).x
        sc.set_offsets(x.numpy())
        fig.canvas.draw()

    results["heun16_300_bare"] = stats(latencies(bare_sample, noises))
    plt.close(fig)

    # --- where the time goes: model call alone at the two batch sizes ---
    with torch.inference_mode():
        x256, t256 = points, torch.full((len(points),), 500.0)
        x300, t300 = noises[0], torch.full((300,), 500.0)
        results["model_call_256"] = stats(latencies(lambda _: eps_fn(x256, t256), list(range(200))))
        results["model_call_300"] = stats(latencies(lambda _: eps_fn(x300, t300), list(range(200))))
    fig, ax = plt.subplots(figsize=(4, 4))
    q = ax.quiver(points[:, 0], points[:, 1], points[:, 0] + 0.1, points[:, 1] * 0, angles="xy", scale_units="xy",
                  scale=1.0)
    results["agg_draw_quiver"] = stats(latencies(lambda _: fig.canvas.draw(), list(range(50))))
    plt.close(fig)

    for key, r in results.items():
        print(f"{key:<18} p50 {r['p50_ms']:7.2f} ms  p95 {r['p95_ms']:7.2f} ms  (n = {r['count']})")
    bars = [{"name": "score-field slider update p95 (ScoreFieldApp.set_t)", "limit_ms": BARS_MS["score_field"],
             "value_ms": results["score_field_app"]["p95_ms"],
             "pass": results["score_field_app"]["p95_ms"] <= BARS_MS["score_field"]},
            {"name": "300-point Heun-16 re-render p95 (SamplerApp.update)", "limit_ms": BARS_MS["heun16_300"],
             "value_ms": results["heun16_300_app"]["p95_ms"],
             "pass": results["heun16_300_app"]["p95_ms"] <= BARS_MS["heun16_300"]}]
    bars += [{"name": f"the lab's {what} p95 (300 points, Heun-16)", "limit_ms": BARS_MS["heun16_300"],
              "value_ms": results[key]["p95_ms"], "pass": results[key]["p95_ms"] <= BARS_MS["heun16_300"]}
             for what, key in (("N slider: samples re-render", "lab_steps_heun_300"),
                               ("w slider: guided samples re-render", "lab_w_samples_heun16_300"))]
    write_result("widget_latency", {"backend": matplotlib.get_backend(), "measured_through": "labkit.widgets apps "
                                    "(ScoreFieldApp, SamplerApp, LabApp) and the bare operations",
                                    "results": results, "bars": bars})


if __name__ == "__main__":
    main()
