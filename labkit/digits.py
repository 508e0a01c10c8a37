"""Fidelity, diversity and memorisation of samples of the 64-D ``digits`` target (chapter 10).

- **fidelity**: the share of samples that a classifier trained on the *held-out* real digits
  (multinomial logistic regression on the 64 pixels) labels as the class they were asked for;
- **diversity**: the mean distance between two samples of the same class, averaged over classes
  (the real digits' own value is the yardstick);
- **memorisation**: each sample's distance to its nearest training digit, beside the same distance
  for held-out digits (a model that copies its training set gets distances near 0).
"""

from __future__ import annotations

import torch

from ._checks import check_float, check_points
from .targets import Digits


def classifier(target: Digits, C: float = 1.0):
    """A scikit-learn LogisticRegression fitted on ``target``'s held-out digits (never the training rows)."""
    from sklearn.linear_model import LogisticRegression

    if not isinstance(target, Digits):
        raise TypeError(f"target must be the digits target (labkit.targets.get('digits')), got {type(target).__name__}")
    C = check_float("C", C, 0.0, 1e6, low_open=True)
    return LogisticRegression(C=C, max_iter=5000).fit(target.held_out_x.numpy(), target.held_out_c.numpy())


def accuracy(clf, x: torch.Tensor, classes: torch.Tensor) -> float:
    """Share of images x (n, 64) that ``clf`` labels as ``classes`` (n,). Pixels are clipped to
    [-1, 1] first, as an image display does."""
    check_points("x", x, dim=64)
    if not isinstance(classes, torch.Tensor) or classes.shape != (len(x),) or classes.is_floating_point():
        raise ValueError(f"classes must be an integer tensor of shape ({len(x)},)")
    predicted = torch.from_numpy(clf.predict(x.detach().clamp(-1, 1).cpu().double().numpy()))
    return float((predicted == classes.cpu()).double().mean())


def diversity(x: torch.Tensor, classes: torch.Tensor) -> float:
    """Mean pairwise distance within each class (classes with >= 2 members), averaged over classes."""
    check_points("x", x, dim=None)
    if not isinstance(classes, torch.Tensor) or classes.shape != (len(x),) or classes.is_floating_point():
        raise ValueError(f"classes must be an integer tensor of shape ({len(x)},)")
    x = x.detach().double().cpu()
    means = [torch.pdist(x[classes == k]).mean() for k in classes.unique() if int((classes == k).sum()) >= 2]
    if not means:
        raise ValueError("classes must give at least one class at least 2 samples")
    return float(torch.stack(means).mean())


def nearest_distance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For each row of x, the distance to its nearest row of ``reference`` (float64, shape (n,))."""
    check_points("x", x, dim=None)
    check_points("reference", reference, dim=x.shape[1])
    return torch.cdist(x.detach().double().cpu(), reference.detach().double().cpu()).min(dim=1).values
