"""Input checks shared by the public functions: each error names the parameter and its range."""

from __future__ import annotations

import math
import numbers

import torch

SEED_MAX = 2**62  # leaves room for the offsets that derive per-run seeds (seed + 1000 (i + 1), seed + calls)


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """Return ``value`` as int if it is an integer in [low, high], else raise naming ``name``."""
    # numbers.Integral also admits numpy integers (e.g. values read from an array).
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point()
        and value.dtype != torch.bool
    ):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return value


def check_float(name: str, value, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """Return ``value`` as a finite float in the given range, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool
        and not value.is_complex()
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        value = math.copysign(math.inf, value)
    lo = "(" if low_open else "["
    allowed = f"{lo}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite and in {allowed}, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return value


def check_points(name: str, x, dim: int | None = 2) -> torch.Tensor:
    """A floating (n, d) tensor of finite values (d = ``dim`` when given)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n, {dim or 'd'}), "
                        f"got {type(x).__name__}")
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"{name} must have shape (n, {dim or 'd'}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must hold finite values only")
    return x


def check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def check_seed(seed) -> int:
    """A seed: an integer in [0, SEED_MAX]."""
    return check_int("seed", seed, 0, SEED_MAX)
