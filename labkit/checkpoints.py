"""Saving and loading EpsMLP checkpoints (class-label or scalar condition) without pickle.

A checkpoint is a ``torch.save`` file of plain tensors, numbers and strings, read back with
``torch.load(weights_only=True)``, which refuses pickled code. A SHA-256 digest of the contents
is stored beside them, because torch's zip reader does not check its CRCs: a flipped byte in the
weights would otherwise load silently.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import torch

from .model import EpsMLP

FORMAT = "labkit.EpsMLP"
VERSION = 2  # 2: one EpsMLP for every condition (weights cond_embedding.*, config["cond"])


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
    payload["sha256"] = _digest(payload)
    # A temporary file of its own in the same folder: two processes saving one path never share it.
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(os.fspath(path)) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(os.fspath(path))))
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)  # a crash while writing never leaves a half-written checkpoint
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _digest(payload: dict) -> str:
    """SHA-256 over every entry but ``sha256``: keys, tensors' dtype, shape and bytes, other values' repr."""
    h = hashlib.sha256()

    def feed(value):
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                if key != "sha256":
                    h.update(f"<{key!r}>".encode())
                    feed(value[key])
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(value).encode())

    feed(payload)
    return h.hexdigest()


def load(path, map_location="cpu") -> tuple[EpsMLP, dict]:
    """Read a checkpoint: returns (model in eval mode, metadata dict without the weights)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as err:  # noqa: BLE001 -- any failure to parse the bytes means "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable labkit checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a labkit checkpoint (expected format {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')} is not supported "
                              f"(this labkit reads version {VERSION})")
    try:
        # Check the config against the weights' shapes on the meta device first, so that a bad
        # config never allocates a huge network.
        with torch.device("meta"):
            shapes = {k: v.shape for k, v in EpsMLP(**payload["config"]).state_dict().items()}
        state = payload["state_dict"]
        got = {k: getattr(v, "shape", None) for k, v in state.items()}
        if got != shapes:
            raise ValueError(f"expected tensors {sorted(shapes)} of the config's shapes")
        model = EpsMLP(**payload["config"])
        dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
        if len(dtypes) == 1:  # a float64 model comes back in float64, bit for bit
            model = model.to(dtypes.pop())
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"{path}: weights do not match the EpsMLP architecture "
                              f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    try:
        intact = payload.get("sha256") == _digest(payload)
    except Exception:  # noqa: BLE001 -- e.g. a tensor type the digest cannot read
        intact = False
    if not intact:
        raise CheckpointError(f"{path}: checksum mismatch, the file is corrupted (or was not written by "
                              f"labkit.checkpoints.save)")
    if not all(torch.isfinite(v).all() for v in model.state_dict().values()):
        raise CheckpointError(f"{path}: the weights hold NaN or infinite values")
    model.eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "format", "version", "sha256")}
    meta["history"] = payload["history"].tolist() if isinstance(payload.get("history"), torch.Tensor) else []
    return model, meta
