"""Helpers shared by the test modules (fixtures live in conftest.py)."""

import re

import pytest
import torch


def gen(seed: int) -> torch.Generator:
    """A torch generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def rejects(fn, *names):
    """fn() raises ValueError/TypeError whose message names one of ``names``; returns the message."""
    with pytest.raises((ValueError, TypeError)) as err:
        fn()
    message = str(err.value)
    assert any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", message) for n in names), \
        f"{type(err.value).__name__} does not name {names}: {message}"
    return message
