"""Sampling throughput vs the FLOP bound: DDPM-1000 on 1000 points, against measured matmul speed.

FLOPs per model call are counted from the layer shapes (2 in out per row for each Linear, plus
its bias); the time embedding's sin/cos and SiLU are elementwise and listed apart. The machine's
matmul throughput is measured with torch.mm in float32, once large (2048^3, near the peak) and
once at the model's own shape (1000 x 128 @ 128 x 128). The DDPM time is split into the model
calls alone and the sampler's own per-step work (the same loop with an eps function that returns
zeros). Thread settings are compared side by side: model calls and training steps with torch at
1 thread and at the default.

    python benchmarks/throughput.py
"""

from __future__ import annotations

import argparse

import torch
from common import timed, write_result
from torch import nn

from labkit import samplers, schedules, targets, train


def linear_flops(model: nn.Module) -> dict:
    """FLOPs per row: matmuls (2 in out) and bias adds of every nn.Linear, from the layer shapes."""
    layers = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    matmul = sum(2 * i * o for i, o in layers)
    bias = sum(o for _, o in layers)
    silu = sum(o for _, o in layers[:-1])  # one SiLU per hidden unit (a few FLOPs each; counted as 1)
    return {"layers": layers, "matmul_per_row": matmul, "bias_per_row": bias, "silu_units_per_row": silu,
            "time_embedding_sincos_per_row": model.time_dim, "total_per_row": matmul + bias}


def matmul_gflops(m: int, k: int, n: int, repeats: int = 20) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    inner = max(1, int(2e8 / (2 * m * k * n)))  # about 0.2 GFLOP per timed call
    t = timed(lambda: [torch.mm(a, b) for _ in range(inner)], repeats=repeats, warmup=2)["median"]
    return 2 * m * k * n * inner / t / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=1000)
    args = parser.parse_args(argv)
    default_threads = torch.get_num_threads()
    target, schedule = targets.get("ring8"), schedules.cosine()
    model = train.new_model(target, schedule)
    train.train(model, target, schedule, steps=args.train_steps, progress=False)
    eps_fn = model.eps_fn()
    flops = linear_flops(model)
    n, T = args.n, schedule.T
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))

    out = {"n": n, "T": T, "flops": flops, "threads": {}}
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        g = torch.Generator()
        ddpm = timed(lambda g=g: samplers.ddpm(eps_fn, schedule, noise, generator=g.manual_seed(1)),
                     repeats=args.repeats, warmup=1)
        x, t = noise.clone(), torch.full((n,), 500.0)
        with torch.inference_mode():
            calls = timed(lambda x=x, t=t: [eps_fn(x, t) for _ in range(T)], repeats=args.repeats, warmup=1)
            raw = timed(lambda x=x, t=t: [model(x, t) for _ in range(T)], repeats=args.repeats, warmup=1)
        overhead = timed(lambda g=g: samplers.ddpm(lambda z, tt: torch.zeros_like(z), schedule, noise,
                                                   generator=g.manual_seed(1)), repeats=args.repeats, warmup=1)
        small = model_bound = matmul_gflops(n, 128, 128)
        big = matmul_gflops(2048, 2048, 2048, repeats=5)
        total = flops["total_per_row"] * n * T
        m = train.new_model(target, schedule)
        train_t = timed(lambda m=m: train.train(m, target, schedule, steps=200, progress=False), repeats=3, warmup=0)
        row = {"ddpm_s": ddpm["median"], "ddpm_times": ddpm["times"], "model_calls_s": calls["median"],
               "bare_forward_s": raw["median"], "sampler_only_s": overhead["median"],
               "gflop_total": total / 1e9, "achieved_gflops": total / ddpm["median"] / 1e9,
               "matmul_gflops_large": big, "matmul_gflops_model_shape": small,
               "fraction_of_large": total / ddpm["median"] / 1e9 / big,
               "fraction_of_model_shape": total / ddpm["median"] / 1e9 / model_bound,
               "train_steps_per_s": 200 / train_t["median"], "train_200_times": train_t["times"]}
        out["threads"][str(threads)] = row
        print(f"threads={threads}: DDPM-{T} on {n} points {row['ddpm_s']:.2f} s ({row['gflop_total']:.1f} GFLOP, "
              f"{row['achieved_gflops']:.1f} GFLOP/s); {T} model calls {row['model_calls_s']:.2f} s (bare forward "
              f"{row['bare_forward_s']:.2f} s); sampler alone {row['sampler_only_s']:.2f} s; matmul {big:.1f} GFLOP/s "
              f"large, {small:.1f} at 1000x128x128; fraction {row['fraction_of_large']:.1%} / "
              f"{row['fraction_of_model_shape']:.1%}; training {row['train_steps_per_s']:.0f} steps/s")
    torch.set_num_threads(default_threads)
    out["default_threads"] = default_threads
    write_result("throughput", out)


if __name__ == "__main__":
    main()
