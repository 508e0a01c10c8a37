import re

import pytest
import torch

from labkit import schedules, targets


@pytest.fixture(scope="session")
def ring8():
    return targets.get("ring8")


@pytest.fixture(scope="session")
def cosine():
    return schedules.cosine()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _close_figures():
    """Widget and plotting tests open figures; close them so memory stays flat across the run."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def rejects(fn, *names):
    """fn() raises ValueError/TypeError whose message names one of ``names``; returns the message."""
    with pytest.raises((ValueError, TypeError)) as err:
        fn()
    message = str(err.value)
    assert any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", message) for n in names), \
        f"{type(err.value).__name__} does not name {names}: {message}"
    return message
