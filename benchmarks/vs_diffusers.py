"""labkit's sampler loops vs diffusers' scheduler loops on the same eps function, at equal NFE.

The eps function is labkit's EpsMLP trained on ring8 (1000 steps of the default recipe: the
quality does not matter here, only that both loops call the same function). diffusers is set up
to be the same sampler:
- DDIM: ``DDIMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
  set_alpha_to_one=True, clip_sample=False)``, N dividing 1000, against ``labkit.samplers.ddim(...,
  sigma_max=None)`` (labkit's trailing timesteps over the full range, t_max = T - 1, and the last
  step to abar = 1). Outputs must agree to 1e-8 in float64 throughout, from the same x_T (the
  algorithms). In float32 they differ by up to about 5e-3 from sigma_{T-1} (about 2e4 for cosine):
  labkit's sampling core keeps the state in EDM's coordinates x_VP sqrt(1 + sigma^2), about 2e4
  there, where float32 keeps about 1e-3 of the data's scale; the float32 rows are reported beside
  the bar.
- Heun: ``HeunDiscreteScheduler(beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)``
  against ``labkit.samplers.heun(..., sigma_max=schedule.sigma_max)``: diffusers' Karras schedule
  runs from the schedule's own largest sigma (about 2e4 for cosine) down to its smallest, while
  labkit's default starts at sigma_max = 80 (EDM); with labkit's sigma_max set to the schedule's
  largest sigma both are EDM's Algorithm 1 on the same sigmas (diffusers in float32), so the
  outputs are compared too, and the default labkit Heun is timed beside them.
Timings, in one process, the three loops interleaved so that drifting machine load hits all alike:
labkit without its trajectory (``keep_trajectory=False``: diffusers keeps none), diffusers, and
labkit keeping the trajectory (its default). Each of ``--repeats`` rounds runs every loop once; the
ratio is the median over rounds of diffusers time / labkit time (> 1: labkit faster). Two eps
functions: the model (n = 300, a widget's sample, and n = 10000), where both loops spend nearly all
their time in the same model calls, and a stub eps = x / 2 (no model), which leaves only the
loops' own work. Resolution: the same ratio for labkit against itself (two identical labkit loops
interleaved the same way); a model-eps ratio within that spread of 1 is "equal". One torch thread.

    python benchmarks/vs_diffusers.py
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics

import diffusers
import torch
from common import timed, write_result
from diffusers import DDIMScheduler, HeunDiscreteScheduler

from labkit import oracle, samplers, schedules, targets, train


@torch.inference_mode()
def diffusers_ddim(eps_fn, noise, steps, abar=None):
    """diffusers' DDIM loop; ``abar`` (float64) replaces its float32 alphas_cumprod when given."""
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False,
                              set_alpha_to_one=True, timestep_spacing="trailing", prediction_type="epsilon")
    if abar is not None:
        scheduler.alphas_cumprod = abar.clone()
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = eps_fn(x, torch.full((len(x),), float(t)))
        x = scheduler.step(eps, t, x).prev_sample
    return x, len(scheduler.timesteps)


@torch.inference_mode()
def diffusers_heun(eps_fn, noise, steps, abar=None):
    """diffusers' Heun loop on its Karras sigmas; ``abar`` (float64) replaces its alphas_cumprod when given."""
    scheduler = HeunDiscreteScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                      use_karras_sigmas=True, prediction_type="epsilon")
    if abar is not None:
        scheduler.alphas_cumprod = abar.clone()
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    nfe = 0
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        eps = eps_fn(x_in, torch.full((len(x),), float(t)))
        nfe += 1
        x = scheduler.step(eps, t, x).prev_sample
    return x, nfe


def agreement(eps_fns: dict, schedule, ddim_steps, heun_steps: int, n: int = 300) -> list[dict]:
    """max |labkit - diffusers| of the final samples, for each eps function in ``eps_fns`` (label ->
    {dtype: eps function}): in float32 with diffusers' stock float32 schedule and with labkit's float64
    abar given to it, and in float64 throughout (noise, both loops' states, the eps function: a
    float64 copy of a model), which compares the algorithms."""
    noise32 = torch.randn(n, 2, generator=torch.Generator().manual_seed(7))
    modes = (("float32 schedule (stock)", None, noise32), ("labkit's float64 abar", schedule.alphas_cumprod, noise32),
             ("float64 throughout", schedule.alphas_cumprod, noise32.double()))
    rows = []
    for label, fns in eps_fns.items():
        for mode, abar, noise in modes:
            fn = fns[noise.dtype]
            # in float64, diffusers' DDIM starts where labkit's does, x_T = sqrt(1 - abar_{T-1}) z (its own
            # start is z: 1.2e-9 further out, which a learned model's first step amplifies to about 6e-7)
            start = noise * math.sqrt(1 - float(schedule.alphas_cumprod[-1])) if noise.dtype == torch.float64 \
                else noise
            pairs = [(f"DDIM-{k}", samplers.ddim(fn, schedule, noise, k, sigma_max=None).x,
                      lambda k=k, fn=fn, start=start, abar=abar: diffusers_ddim(fn, start, k, abar)[0])
                     for k in ddim_steps]
            pairs.append((f"Heun-{heun_steps}", samplers.heun(fn, schedule, noise, heun_steps,
                                                              sigma_max=schedule.sigma_max).x,
                          lambda fn=fn, noise=noise, abar=abar: diffusers_heun(fn, noise, heun_steps, abar)[0]))
            for name, ours, theirs in pairs:
                diff = float((ours - theirs()).abs().max())
                rows.append({"eps": label, "sampler": name, "diffusers_schedule": mode, "n": n,
                             "max_abs_diff": diff, "max_abs_x": float(ours.abs().max())})
                print(f"agreement {label:<22} {name:<8} {mode:<25} max|diff| {diff:.2e}  (max|x| "
                      f"{float(ours.abs().max()):.3g})")
    return rows


def interleaved(loops: dict, repeats: int) -> dict:
    """Wall times of each loop in ``loops`` (name -> fn), one call of each per round, ``repeats`` rounds."""
    for fn in loops.values():  # warm-up
        fn()
    times = {name: [] for name in loops}
    for _ in range(repeats):
        for name, fn in loops.items():
            times[name].append(timed(fn, repeats=1, warmup=0)["median"])
    return times


def paired_ratio(slow, fast) -> float:
    """Median over rounds of slow[i] / fast[i]."""
    return statistics.median(a / b for a, b in zip(slow, fast))


def stub_eps(x, t):
    return 0.5 * x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,10000")
    parser.add_argument("--ddim-steps", default="10,50")
    parser.add_argument("--heun-steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--train-steps", type=int, default=1000)
    args = parser.parse_args(argv)
    # Both loops make the same model calls, so the thread count cannot favour either; one thread
    # removes OpenMP's scheduling jitter (labkit against itself: +-4% at 2 threads, +-1% at 1).
    torch.set_num_threads(1)

    target, schedule = targets.get("ring8"), schedules.cosine()
    model = train.new_model(target, schedule)
    train.train(model, target, schedule, steps=args.train_steps, progress=False)
    model_eps = model.eps_fn()
    ddim_steps = [int(k) for k in args.ddim_steps.split(",")]
    h = args.heun_steps
    exact, model64 = oracle.eps_fn(target, schedule), copy.deepcopy(model).double()
    agree = agreement({"learned EpsMLP": {torch.float32: model_eps, torch.float64: model64.eps_fn()},
                       "exact oracle (ring8)": {torch.float32: exact, torch.float64: exact}}, schedule, ddim_steps, h)
    rows = []
    for eps_name, eps_fn in (("model", model_eps), ("stub x/2", stub_eps)):
        for n in [int(s) for s in args.sizes.split(",")]:
            noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(n))
            cases = [(f"DDIM-{k}",
                      lambda keep, k=k, z=noise, f=eps_fn: samplers.ddim(f, schedule, z, k, sigma_max=None,
                                                                           keep_trajectory=keep),
                      lambda k=k, z=noise, f=eps_fn: diffusers_ddim(f, z, k)) for k in ddim_steps]
            cases.append((f"Heun-{h}",
                          lambda keep, z=noise, f=eps_fn: samplers.heun(f, schedule, z, h, sigma_max=schedule.sigma_max,
                                                                        keep_trajectory=keep),
                          lambda z=noise, f=eps_fn: diffusers_heun(f, z, h)))
            for name, ours, theirs in cases:
                nfe_ours, nfe_theirs = ours(False).nfe, theirs()[1]
                loops = {"labkit": lambda o=ours: o(False), "diffusers": theirs,
                         "labkit_trajectory": lambda o=ours: o(True), "labkit_again": lambda o=ours: o(False)}
                t = interleaved(loops, args.repeats)
                row = {"eps": eps_name, "sampler": name, "n": n, "nfe_labkit": nfe_ours, "nfe_diffusers": nfe_theirs,
                       **{f"{k}_s": statistics.median(v) for k, v in t.items()},
                       "ratio": paired_ratio(t["diffusers"], t["labkit"]),
                       "ratio_with_trajectory": paired_ratio(t["diffusers"], t["labkit_trajectory"]),
                       "ratio_labkit_vs_itself": paired_ratio(t["labkit_again"], t["labkit"]),
                       "times": t}
                rows.append(row)
                print(f"{eps_name:<8} n={n:>6} {name:<8} NFE {nfe_ours:>3}/{nfe_theirs:>3}  labkit "
                      f"{row['labkit_s'] * 1e3:8.2f} ms  diffusers {row['diffusers_s'] * 1e3:8.2f} ms  ratio "
                      f"{row['ratio']:5.2f}  (with trajectory {row['ratio_with_trajectory']:5.2f}, labkit vs "
                      f"itself {row['ratio_labkit_vs_itself']:5.3f})", flush=True)
    ddim_f64 = max(r["max_abs_diff"] for r in agree
                   if r["sampler"].startswith("DDIM") and r["diffusers_schedule"] == "float64 throughout")
    model_rows = [r for r in rows if r["eps"] == "model"]
    stub_rows = [r for r in rows if r["eps"] != "model"]
    resolution = max(abs(r["ratio_labkit_vs_itself"] - 1.0) for r in model_rows)
    slowest_model = min(r["ratio"] for r in model_rows)
    slowest_stub = min(r["ratio"] for r in stub_rows)
    bars = [{"name": "DDIM outputs agree with diffusers' (same abar and x_T, float64 throughout) to 1e-8",
             "limit": 1e-8,
             "value": ddim_f64, "pass": ddim_f64 <= 1e-8},
            {"name": "labkit's sampler loop not slower than diffusers' (time ratio diffusers/labkit >= 1), "
                     "loops alone (stub eps)", "limit": 1.0, "value": slowest_stub, "pass": slowest_stub >= 1.0},
            {"name": "labkit's sampler loop not slower than diffusers' (time ratio diffusers/labkit >= 1), with "
                     f"the model (equal within the measured resolution, +-{resolution:.3f})",
             "limit": 1.0, "value": slowest_model, "resolution": resolution,
             "pass": slowest_model >= 1.0 - resolution}]
    write_result("vs_diffusers", {"diffusers": diffusers.__version__, "train_steps": args.train_steps,
                                  "repeats": args.repeats, "agreement": agree, "rows": rows, "bars": bars})


if __name__ == "__main__":
    main()
