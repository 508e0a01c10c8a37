"""Fixtures shared by every test folder: unit/, robustness/, widgets/, course/, browser/."""

import pytest

from labkit import schedules, targets


@pytest.fixture(scope="session")
def ring8():
    return targets.get("ring8")


@pytest.fixture(scope="session")
def cosine():
    return schedules.cosine()


@pytest.fixture(autouse=True)
def _close_figures():
    """Widget and plotting tests open figures; close them so memory stays flat across the run."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
