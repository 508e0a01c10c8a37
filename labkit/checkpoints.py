"""Saving and loading EpsMLP checkpoints without pickle.

A checkpoint is a ``torch.save`` file of plain tensors, numbers and strings, read back with
``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import torch

from .model import EpsMLP

FORMAT = "labkit.EpsMLP"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable labkit checkpoint."""


def save(model: EpsMLP, path, *, target: str | None = None, schedule: str | None = None,
         history: list[float] | None = None, train_seconds: float | None = None) -> None:
    """Write ``model``'s config and weights (plus optional metadata) to ``path``."""
    if not isinstance(model, EpsMLP):
        raise TypeError(f"model must be an EpsMLP, got {type(model).__name__}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "target": target,
        "schedule": schedule,
        "history": torch.tensor(history if history is not None else [], dtype=torch.float64),
        "train_seconds": train_seconds,
    }
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a crash while writing never leaves a half-written checkpoint


def load(path, map_location="cpu") -> tuple[EpsMLP, dict]:
    """Read a checkpoint: returns (model in eval mode, metadata dict without the weights)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError, TypeError) as err:
        raise CheckpointError(f"{path}: not a readable labkit checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a labkit checkpoint (expected format {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')} is not supported "
                              f"(this labkit reads version {VERSION})")
    try:
        model = EpsMLP(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: weights do not match the EpsMLP architecture "
                              f"({str(err).splitlines()[0]})") from None
    model.eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "format", "version")}
    meta["history"] = payload["history"].tolist() if isinstance(payload.get("history"), torch.Tensor) else []
    return model, meta
