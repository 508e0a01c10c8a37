"""Trained models kept on disk, so that chapters needing the same model train it only once.

``trained_model(target, schedule, seed=0, **recipe)`` returns the model trained with that recipe:
loaded from the cache when a checkpoint is there, else trained (``labkit.train``, with a progress
bar) and saved. A checkpoint is a :mod:`labkit.checkpoints` file (no pickle, atomic save, checked
by SHA-256); one that is corrupted, or does not hold what its key says, is trained over.

Location: ``$LABKIT_CACHE_DIR`` when set, else the platform's cache directory: ``$XDG_CACHE_HOME/labkit``
(default ``~/.cache/labkit``) on Linux, ``~/Library/Caches/labkit`` on macOS,
``%LOCALAPPDATA%\\labkit\\cache`` on Windows. The tests and the notebook runs point
``LABKIT_CACHE_DIR`` at a fresh empty directory, so that every chapter proves it trains.

Key: a SHA-256 of the target's name, the schedule (name and betas), the seed, the whole recipe
(training and model settings, defaults filled in), labkit's version and the checkpoint format.
Targets are the labkit targets, known by name (``targets.get``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import __version__, checkpoints
from . import schedules as _schedules
from . import targets as _targets
from . import train as _train
from ._checks import check_seed
from .model import EpsMLP

ENV = "LABKIT_CACHE_DIR"
MODEL_SETTINGS = _train.MODEL_KEYS
TRAIN_SETTINGS = tuple(k for k in _train.DEFAULTS if k not in MODEL_SETTINGS)  # steps, batch_size, lr, ema, ...
# EpsMLP's own defaults for the model settings a recipe leaves out, so that the key holds them all
MODEL_DEFAULTS = {k: inspect.signature(EpsMLP).parameters[k].default for k in MODEL_SETTINGS}


def directory() -> Path:
    """The cache directory (not created): ``$LABKIT_CACHE_DIR``, else the platform's user cache."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "labkit" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "labkit"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labkit"


def full_recipe(target: _targets.Target, **recipe) -> dict:
    """``train.recipe(target)`` (model defaults filled in) updated by ``recipe``; unknown settings raise TypeError."""
    unknown = sorted(set(recipe) - set(TRAIN_SETTINGS) - set(MODEL_SETTINGS))
    if unknown:
        raise TypeError(f"recipe got unknown setting(s) {unknown}; allowed: {[*TRAIN_SETTINGS, *MODEL_SETTINGS]}")
    return {**MODEL_DEFAULTS, **_train.recipe(target), **recipe}


def key(target: _targets.Target, schedule: _schedules.Schedule, seed: int, recipe: dict) -> dict:
    """Everything the trained weights depend on, as a JSON-able dict (``recipe`` already full)."""
    betas = schedule.betas.to(torch.float64).contiguous().numpy().tobytes()
    return {"target": target.name, "schedule": schedule.name, "T": schedule.T,
            "betas_sha256": hashlib.sha256(betas).hexdigest(), "seed": seed,
            "recipe": {k: recipe[k] for k in sorted(recipe)}, "labkit": __version__,
            "checkpoint_version": checkpoints.VERSION}


def path_for(target, schedule, *, seed: int = 0, **recipe) -> Path:
    """Where the checkpoint of this (target, schedule, seed, recipe) lives in the cache."""
    target, schedule, seed = _resolve(target, schedule, seed)
    k = key(target, schedule, seed, full_recipe(target, **recipe))
    digest = hashlib.sha256(json.dumps(k, sort_keys=True).encode()).hexdigest()[:20]
    return directory() / f"{target.name}-{schedule.name}-seed{seed}-{digest}.pt"


def _resolve(target, schedule, seed):
    target = _targets.get(target) if isinstance(target, str) else target
    schedule = _schedules.get(schedule) if isinstance(schedule, str) else schedule
    if not isinstance(target, _targets.Target):
        raise TypeError(f"target must be a labkit Target or a target name, got {type(target).__name__}")
    if not isinstance(schedule, _schedules.Schedule):
        raise TypeError(f"schedule must be a labkit Schedule or a schedule name, got {type(schedule).__name__}")
    return target, schedule, check_seed(seed)


def _matches(model: EpsMLP, target, schedule, recipe: dict) -> bool:
    """Whether ``model``'s architecture is the one ``recipe`` builds for ``target`` and ``schedule``."""
    expected = {"num_classes": target.num_classes, "T": schedule.T, "dim": target.dim,
                **{k: recipe[k] for k in MODEL_SETTINGS}}
    return {k: model.config.get(k) for k in expected} == expected


def _read(path: Path, target, schedule, recipe: dict) -> tuple[EpsMLP, list[float]] | None:
    """The cached (model, history) at ``path``, or None when absent, unreadable or not what the key says."""
    try:
        model, meta = checkpoints.load(path)
    except (OSError, checkpoints.CheckpointError):
        return None
    same = (meta.get("target"), meta.get("schedule")) == (target.name, schedule.name)
    if not (same and _matches(model, target, schedule, recipe) and len(meta["history"]) == recipe["steps"]):
        return None
    return model, meta["history"]


def trained_model(target, schedule, *, seed: int = 0, progress: bool = True,
                  **recipe) -> tuple[EpsMLP, list[float]]:
    """(model, loss history) of ``target`` under ``schedule`` trained with ``recipe`` from ``seed``.

    Loaded from the cache when there, else trained with ``labkit.train`` and saved. ``recipe``
    overrides the target's recipe (``train.recipe(target)``: ``steps``, ``batch_size``, ``lr``,
    ``p_uncond``, and the model's ``width``, ``depth``, ...). Prints one line saying which it did.
    """
    target, schedule, seed = _resolve(target, schedule, seed)
    recipe = full_recipe(target, **recipe)
    path = path_for(target, schedule, seed=seed, **recipe)
    cached = _read(path, target, schedule, recipe)
    if cached is not None:
        print(f"{target.name}: loaded the model trained for {recipe['steps']} steps from the cache ({path})")
        return cached
    start = time.perf_counter()
    model = _train.new_model(target, schedule, seed=seed, **{k: recipe[k] for k in MODEL_SETTINGS})
    history = _train.train(model, target, schedule, seed=seed, progress=progress,
                           **{k: recipe[k] for k in TRAIN_SETTINGS})
    seconds = time.perf_counter() - start
    if len(history) == recipe["steps"]:  # an interrupted run is returned, never cached
        store(model, history, target, schedule, seed=seed, train_seconds=seconds, **recipe)
    print(f"{target.name}: trained {len(history)} steps in {seconds:.1f} s, saved to the cache ({path})")
    return model, history


def store(model: EpsMLP, history: list[float], target, schedule, *, seed: int = 0,
          train_seconds: float | None = None, **recipe) -> Path:
    """Save a model trained elsewhere (chapter 3's live run) under its key; returns the path.

    The caller vouches that ``model`` is ``labkit.train.new_model(target, schedule, seed=seed)``
    trained once by ``labkit.train.train(..., seed=seed)`` with ``recipe``: checked here are the
    architecture and that ``history`` holds exactly ``steps`` losses.
    """
    target, schedule, seed = _resolve(target, schedule, seed)
    recipe = full_recipe(target, **recipe)
    if not isinstance(model, EpsMLP):
        raise TypeError(f"model must be an EpsMLP, got {type(model).__name__}")
    if not isinstance(history, list) or len(history) != recipe["steps"]:
        got = len(history) if isinstance(history, list) else type(history).__name__
        raise ValueError(f"history must be the list of the {recipe['steps']} losses of one training run "
                         f"with this recipe (steps={recipe['steps']}), got {got}")
    if not _matches(model, target, schedule, recipe):
        raise ValueError(f"model's config {model.config} is not the architecture of the recipe "
                         f"{ {k: recipe[k] for k in MODEL_SETTINGS} } for {target.name}")
    path = path_for(target, schedule, seed=seed, **recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.save(model, path, target=target.name, schedule=schedule.name, history=history,
                     train_seconds=train_seconds)
    return path
