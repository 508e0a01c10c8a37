"""Command line: ``python -m labkit {quality,train,sample,exercises} ...`` reproduces the course's charts headless
and writes the student notebooks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from . import checkpoints, oracle, schedules, targets
from ._checks import SEED_MAX, check_int
from .cache import TRAIN_SETTINGS
from .guidance import cfg
from .quality import DEFAULT_STEPS, format_table, parse_samplers, run_quality
from .samplers import GRIDS, SAMPLERS
from .samplers import run as run_sampler
from .train import new_model, recipe, train


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="ring8", choices=targets.names())
    p.add_argument("--schedule", default="cosine", choices=["cosine", "linear"])
    p.add_argument("--train-steps", type=int, default=None,
                   help="Adam steps when training (default: the target's recipe, labkit.train.recipe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="load this checkpoint if it exists; otherwise train and save it here")


def _model(args, quiet: bool, retrain: bool = False):
    """Load ``args.checkpoint`` when it exists (unless ``retrain``), else train a fresh model (and
    save it if asked)."""
    target, schedule = targets.get(args.target), schedules.get(args.schedule)
    check_int("--seed", args.seed, 0, SEED_MAX)
    settings = recipe(target)
    if args.train_steps is not None:
        settings["steps"] = check_int("--train-steps", args.train_steps, 0, 10_000_000)
    if not retrain and args.checkpoint is not None and args.checkpoint.exists():
        model, meta = checkpoints.load(args.checkpoint)
        if meta.get("target") not in (None, target.name) or meta.get("schedule") not in (None, schedule.name):
            raise SystemExit(f"error: {args.checkpoint} was trained on {meta.get('target')}/"
                             f"{meta.get('schedule')}, not {target.name}/{schedule.name}")
        print(f"loaded {args.checkpoint}", file=sys.stderr)
        return model, meta.get("train_seconds"), target, schedule
    torch.manual_seed(args.seed)
    model = new_model(target, schedule, seed=args.seed)
    start = time.perf_counter()
    history = train(model, target, schedule, seed=args.seed, progress=not quiet,
                    **{k: settings[k] for k in TRAIN_SETTINGS})
    seconds = time.perf_counter() - start
    print(f"trained {target.name} for {len(history)} steps in {seconds:.1f} s "
          f"(final loss {sum(history[-100:]) / max(1, len(history[-100:])):.4f})", file=sys.stderr)
    if args.checkpoint is not None:
        checkpoints.save(model, args.checkpoint, target=target.name, schedule=schedule.name,
                         history=history, train_seconds=seconds)
        print(f"saved {args.checkpoint}", file=sys.stderr)
    return model, seconds, target, schedule


def cmd_quality(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    if args.exact:
        target, schedule = targets.get(args.target), schedules.get(args.schedule)
        eps_fn, seconds = oracle.eps_fn(target, schedule), 0.0
    else:
        model, seconds, target, schedule = _model(args, args.quiet)
        eps_fn = model.eps_fn()
    result = run_quality(eps_fn, target, schedule, args.samplers, args.steps, n=args.n, seeds=args.seeds,
                         seed=args.seed, progress=not args.quiet, grid=args.grid)
    result = {"target": result.pop("target"), "train_seconds": seconds,
              "eps": "exact" if args.exact else "model", **result}
    (args.out / "quality.json").write_text(json.dumps(result, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_quality

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    for row, metric in zip(axes, ("mmd2", "detail_miss"), strict=True):
        plot_quality(result, row[0], x_axis="steps", metric=metric)
        plot_quality(result, row[1], x_axis="nfe", metric=metric)
    fig.savefig(args.out / "quality.png", dpi=120)
    print(format_table(result))
    print(f"wrote {args.out / 'quality.json'} and {args.out / 'quality.png'}")
    return 0


def cmd_train(args) -> int:
    if args.checkpoint is None:
        raise SystemExit("error: train needs --checkpoint PATH to save the model")
    # The old checkpoint stays until the new one replaces it (checkpoints.save is atomic), so a
    # bad argument or an error during training never loses it.
    _model(args, args.quiet, retrain=True)
    return 0


def cmd_sample(args) -> int:
    check_int("--n", args.n, 1, 10_000_000)
    if args.out.suffix not in (".npz", ".png"):
        raise ValueError(f"--out must end in .npz (samples) or .png (a figure), got {args.out.name!r}")
    model, _, target, schedule = _model(args, args.quiet)
    if args.cls is not None and not 0 <= args.cls < target.num_classes:
        raise SystemExit(f"error: --class must be in [0, {target.num_classes - 1}] for {target.name}")
    g = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(args.n, target.dim, generator=g)
    kwargs = {"grid": args.grid} if args.grid is not None and SAMPLERS[args.sampler].takes_steps else {}
    # The target's own start (digits: sigma_max 5, where its model's x0_hat is still usable) unless given.
    sigma_max = args.sigma_max if args.sigma_max is not None else getattr(target, "sampling", {}).get("sigma_max", 80.0)
    result = run_sampler(args.sampler, cfg(model, args.cls, args.w), schedule, noise, args.steps, generator=g,
                         keep_trajectory=False, sigma_max=sigma_max, **kwargs)
    classes = torch.full((args.n,), -1 if args.cls is None else args.cls)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".png":
        _plot_samples(args, target, result, classes)
    else:
        import numpy as np

        np.savez(args.out, x=result.x.numpy(), classes=classes.numpy())
    print(f"wrote {args.n} samples ({args.sampler}, NFE {result.nfe}) to {args.out}")
    return 0


def _plot_samples(args, target, result, classes) -> None:
    """A scatter of 2-D samples, or an image grid for image targets (dim = side^2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plotting

    title = f"{target.name}: {args.sampler}, NFE {result.nfe}, w = {args.w}"
    fig, ax = plt.subplots(figsize=(4, 4), layout="constrained")
    if target.dim == 2:
        plotting.scatter(ax, result.x, None if args.cls is None else classes, title=title)
    else:
        plotting.image_grid(ax, result.x[:100], ncols=10, shape=target.image_shape, title=title)
    fig.savefig(args.out, dpi=120)


def cmd_exercises(args) -> int:
    from .exercises import write_student_versions

    written = write_student_versions(args.source, args.student)
    print(f"wrote {len(written)} student notebooks to {args.student} (solutions replaced by stubs, outputs cleared)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quality", help="MMD^2 vs steps for each sampler: quality.json and quality.png")
    _add_model_args(q)
    q.add_argument("--samplers", type=parse_samplers, default=["ddim", "heun"],
                   help=f"comma-separated, from {','.join(SAMPLERS)}")
    q.add_argument("--grid", choices=list(GRIDS), default=None, help="sigma grid (default: each sampler's own)")
    q.add_argument("--steps", type=_int_list, default=list(DEFAULT_STEPS), help="e.g. 4,8,16,32")
    q.add_argument("--n", type=int, default=1000, help="samples per MMD estimate")
    q.add_argument("--seeds", type=int, default=3, help="repeats with fresh noise and reference")
    q.add_argument("--exact", action="store_true", help="use the exact score (mixture targets) instead of a model")
    q.add_argument("--out", type=Path, required=True, help="output folder")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_quality)

    t = sub.add_parser("train", help="train a model and save a checkpoint")
    _add_model_args(t)
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample from a (loaded or trained) model to .npz or .png")
    _add_model_args(s)
    s.add_argument("--sampler", default="heun", choices=list(SAMPLERS))
    s.add_argument("--grid", choices=list(GRIDS), default=None, help="sigma grid (default: the sampler's own)")
    s.add_argument("--sigma-max", type=float, default=None,
                   help="the noise level sampling starts from (default: the target's, 80 for the 2-D targets)")
    s.add_argument("--steps", type=int, default=16)
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--w", type=float, default=0.0, help="guidance weight (0 = conditional)")
    s.add_argument("--class", dest="cls", type=int, default=None, help="class label (default: unconditional)")
    s.add_argument("--out", type=Path, required=True,
                   help="FILE.npz (x in data coordinates, classes; -1 = unconditional) or FILE.png (a figure)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("exercises", help="write the student notebooks: each exercise's solution replaced by a stub")
    e.add_argument("--student", type=Path, required=True, help="output folder for the student notebooks")
    e.add_argument("--source", type=Path, default=Path(__file__).resolve().parent.parent / "notebooks",
                   help="folder of the chapters with solutions (default: the course's notebooks/)")
    e.set_defaults(func=cmd_exercises)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
