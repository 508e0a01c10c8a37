"""labkit's sampler loops vs diffusers' scheduler loops on the same eps function, at equal NFE.

The eps function is labkit's EpsMLP trained on ring8 (1000 steps of the default recipe: the
quality does not matter here, only that both loops call the same function). diffusers is set up
to be the same sampler:
- DDIM: ``DDIMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
  set_alpha_to_one=True, clip_sample=False)``, N dividing 1000, against ``labkit.samplers.ddim(...,
  sigma_max=None)`` (labkit's trailing timesteps over the full range, t_max = T - 1, and the last
  step to abar = 1). Outputs must agree to 1e-5.
- Heun: ``HeunDiscreteScheduler(beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)``
  against ``labkit.samplers.heun(..., sigma_max=schedule.sigma_max)``: diffusers' Karras schedule
  runs from the schedule's own largest sigma (about 2e4 for cosine) down to its smallest, while
  labkit's default starts at sigma_max = 80 (EDM); with labkit's sigma_max set to the schedule's
  largest sigma both are EDM's Algorithm 1 on the same sigmas (diffusers in float32), so the
  outputs are compared too, and the default labkit Heun is timed beside them.
Timings: median of repeated runs of each whole loop, interleaved, in one process, for n = 300
(a widget's sample) and n = 10000; the ratio is diffusers time / labkit time (> 1: labkit faster).

    python benchmarks/vs_diffusers.py
"""

from __future__ import annotations

import argparse
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
    """max |labkit - diffusers| of the final samples, with diffusers' stock float32 schedule and with
    labkit's float64 abar given to it, for each eps function in ``eps_fns``."""
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(7))
    rows = []
    for label, fn in eps_fns.items():
        pairs = [(f"DDIM-{k}", samplers.ddim(fn, schedule, noise, k, sigma_max=None).x,
                  lambda abar, k=k, fn=fn: diffusers_ddim(fn, noise, k, abar)[0]) for k in ddim_steps]
        heun_x = samplers.heun(fn, schedule, noise, heun_steps, sigma_max=schedule.sigma_max).x
        pairs.append((f"Heun-{heun_steps}", heun_x, lambda abar, fn=fn: diffusers_heun(fn, noise, heun_steps, abar)[0]))
        for name, ours, theirs in pairs:
            for mode, abar in (("float32 schedule (stock)", None), ("labkit's float64 abar", schedule.alphas_cumprod)):
                diff = float((ours - theirs(abar)).abs().max())
                rows.append({"eps": label, "sampler": name, "diffusers_schedule": mode, "n": n,
                             "max_abs_diff": diff, "max_abs_x": float(ours.abs().max())})
                print(f"agreement {label:<22} {name:<8} {mode:<25} max|diff| {diff:.2e}  (max|x| "
                      f"{float(ours.abs().max()):.3g})")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,10000")
    parser.add_argument("--ddim-steps", default="10,50")
    parser.add_argument("--heun-steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=1000)
    args = parser.parse_args(argv)

    target, schedule = targets.get("ring8"), schedules.cosine()
    model = train.new_model(target, schedule)
    train.train(model, target, schedule, steps=args.train_steps, progress=False)
    eps_fn = model.eps_fn()
    ddim_steps = [int(k) for k in args.ddim_steps.split(",")]
    h = args.heun_steps
    agree = agreement({"learned EpsMLP": eps_fn, "exact oracle (ring8)": oracle.eps_fn(target, schedule)},
                      schedule, ddim_steps, h)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(n))
        cases = [(f"DDIM-{k}", lambda k=k, z=noise: samplers.ddim(eps_fn, schedule, z, k, sigma_max=None),
                  lambda k=k, z=noise: diffusers_ddim(eps_fn, z, k)) for k in ddim_steps]
        cases.append((f"Heun-{h}", lambda z=noise: samplers.heun(eps_fn, schedule, z, h, sigma_max=schedule.sigma_max),
                      lambda z=noise: diffusers_heun(eps_fn, z, h)))
        for name, ours, theirs in cases:
            nfe_ours, nfe_theirs = ours().nfe, theirs()[1]
            t_ours, t_theirs = [], []
            for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
                t_ours.append(timed(ours, repeats=1, warmup=0)["median"])
                t_theirs.append(timed(theirs, repeats=1, warmup=0)["median"])
            med = statistics.median(t_ours), statistics.median(t_theirs)
            rows.append({"sampler": name, "n": n, "nfe_labkit": nfe_ours, "nfe_diffusers": nfe_theirs,
                         "labkit_s": med[0], "diffusers_s": med[1], "ratio": med[1] / med[0],
                         "labkit_times": t_ours, "diffusers_times": t_theirs})
            print(f"n={n:>6} {name:<8} NFE {nfe_ours:>3}/{nfe_theirs:>3}  labkit {med[0] * 1e3:8.1f} ms  "
                  f"diffusers {med[1] * 1e3:8.1f} ms  ratio {med[1] / med[0]:5.2f}")
        # labkit's default Heun (sigma_max = 80) at the same NFE, for reference.
        t_default = timed(lambda z=noise: samplers.heun(eps_fn, schedule, z, h), repeats=args.repeats, warmup=0)
        rows.append({"sampler": f"Heun-{h} (labkit default, sigma_max = 80)", "n": n, "nfe_labkit": 2 * h - 1,
                     "labkit_s": t_default["median"], "labkit_times": t_default["times"]})
    ddim_f64 = max(r["max_abs_diff"] for r in agree if r["sampler"].startswith("DDIM") and "float64" in r[
        "diffusers_schedule"])
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    bars = [{"name": "DDIM outputs agree with diffusers' (same abar) to 1e-5", "limit": 1e-5, "value": ddim_f64,
             "pass": ddim_f64 <= 1e-5},
            {"name": "labkit's sampler loop not slower than diffusers' (time ratio diffusers/labkit >= 1)",
             "limit": 1.0, "value": min(ratios), "pass": min(ratios) >= 1.0}]
    write_result("vs_diffusers", {"diffusers": diffusers.__version__, "train_steps": args.train_steps,
                                  "agreement": agree, "rows": rows, "bars": bars})


if __name__ == "__main__":
    main()
