"""Target distributions p(x, c) with class labels c: two-dimensional ones and ``digits`` (64-D).

Every target draws with a ``torch.Generator`` so that a seed fixes the sample. Gaussian
mixtures (``ring8``) expose their components, so :mod:`labkit.oracle` gives their exact score.
The 2-D targets live roughly in [-2.5, 2.5]^2, the scale the samplers and plots expect; digits in [-1, 1]^64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ._checks import SEED_MAX, check_float, check_generator, check_int


class Target:
    """A labelled distribution in ``dim`` dimensions. Subclasses implement ``_sample_given(c, generator)``.

    ``recipe`` holds this target's overrides of the default training recipe (:func:`labkit.train.recipe`).
    """

    dim: int = 2
    recipe: dict = {}

    def __init__(self, name: str, class_names: list[str], class_probs: torch.Tensor | None = None):
        self.name = name
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        probs = class_probs if class_probs is not None else torch.ones(self.num_classes)
        self.class_probs = (probs / probs.sum()).to(torch.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, num_classes={self.num_classes})"

    def sample(self, n: int, generator: torch.Generator | None = None, classes=None):
        """Draw ``n`` points: returns (x of shape (n, dim) float32, c of shape (n,) long).

        ``classes`` (an int or a long tensor of shape (n,)) draws from p(x | c) instead of p(x, c).
        """
        n = check_int("n", n, 1, 10_000_000)
        check_generator(generator)
        if classes is None:
            c = torch.multinomial(self.class_probs, n, replacement=True, generator=generator)
        else:
            c = self.check_classes(classes, n)
        x = self._sample_given(c, generator)
        return x.to(torch.float32), c

    def check_classes(self, classes, n: int) -> torch.Tensor:
        """``classes`` as a long tensor of shape (n,), each in [0, num_classes - 1]."""
        if isinstance(classes, int) and not isinstance(classes, bool):
            if not 0 <= classes < self.num_classes:
                raise ValueError(f"classes must lie in [0, {self.num_classes - 1}] for target {self.name!r}, "
                                 f"got {classes}")
            classes = torch.full((n,), classes, dtype=torch.long)
        if not isinstance(classes, torch.Tensor) or classes.is_floating_point() or classes.dtype == torch.bool:
            raise TypeError("classes must be an int or an integer tensor of shape (n,)")
        if classes.shape != (n,):
            raise ValueError(f"classes must have shape ({n},), got {tuple(classes.shape)}")
        if len(classes) and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise ValueError(f"classes must lie in [0, {self.num_classes - 1}] for target {self.name!r}")
        return classes.long()

    def _sample_given(self, c: torch.Tensor, generator) -> torch.Tensor:
        raise NotImplementedError


class GaussianMixture(Target):
    """sum_k pi_k N(mu_k, s_k^2 I), each component k belonging to class ``component_classes[k]``."""

    def __init__(self, name, means, stds, weights=None, component_classes=None, class_names=None):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        k = len(self.means)
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(k).clone()
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.weights = w / w.sum()
        self.component_classes = (torch.arange(k) if component_classes is None
                                  else torch.as_tensor(component_classes, dtype=torch.long))
        num_classes = int(self.component_classes.max()) + 1
        names = class_names or [str(i) for i in range(num_classes)]
        probs = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, self.component_classes, self.weights)
        super().__init__(name, names, probs)

    def _sample_given(self, c, generator):
        # Within its class, a point picks a component by weight: p(k | c) = pi_k [class k = c] / p(c).
        member = (self.component_classes[None, :] == c[:, None]).to(torch.float64)
        comp = torch.multinomial(member * self.weights, 1, generator=generator)[:, 0]
        z = torch.randn(len(c), 2, generator=generator, dtype=torch.float64)
        return self.means[comp] + self.stds[comp, None] * z


def ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.1) -> GaussianMixture:
    """``n_modes`` equal Gaussians on a circle; class = mode."""
    n_modes = check_int("n_modes", n_modes, 1, 1000)
    radius = check_float("radius", radius, 0.0, 100.0, low_open=True)
    std = check_float("std", std, 0.0, 100.0, low_open=True)
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return GaussianMixture(f"ring{n_modes}", means, std, class_names=[f"mode {k}" for k in range(n_modes)])


class _Curves(Target):
    """A target whose class c is a curve: x = curve_c(u) + noise with u uniform in [0, 1)."""

    def __init__(self, name, class_names, curve: Callable, noise: float, recipe: dict | None = None):
        super().__init__(name, class_names)
        self._curve, self._noise = curve, noise
        self.recipe = recipe or {}

    def _sample_given(self, c, generator):
        u = torch.rand(len(c), generator=generator, dtype=torch.float64)
        z = torch.randn(len(c), 2, generator=generator, dtype=torch.float64)
        return self._curve(u, c) + self._noise * z


def _moons(u, c):
    theta = math.pi * u
    upper = torch.stack([theta.cos(), theta.sin()], dim=1)
    lower = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], dim=1)
    pts = torch.where((c == 0)[:, None], upper, lower)
    return 1.6 * (pts - torch.tensor([0.5, 0.25], dtype=torch.float64))


def _swiss_roll(u, c):
    # The roll's angle runs over [1.5 pi, 4.5 pi]; class c is the c-th third of it.
    theta = math.pi * (1.5 + (c.to(torch.float64) + u))
    return torch.stack([theta * theta.cos(), theta * theta.sin()], dim=1) / 6.0


def _spirals(u, c, arms=3):
    # Radius grows with the angle (an Archimedean spiral); arm c is rotated by 2 pi c / arms.
    radius = 0.3 + 2.0 * u
    theta = 3.0 * u * math.pi + 2 * math.pi * c.to(torch.float64) / arms
    return torch.stack([radius * theta.cos(), radius * theta.sin()], dim=1)


class Checkerboard(Target):
    """Uniform on the 8 dark squares of a 4 x 4 board over [-2, 2]^2; class = quadrant."""

    # Half of each batch's t at EDM's noise levels (train.train's t_lognormal) sharpens the squares' edges:
    # at the strict floor (n = 1000, 3 seeds) with DDPM and DPM++(2M)-16 (trailing grid) after 6000 steps,
    # where uniform t needs 8000 for DDPM and no 16-NFE sampler gets there by 8000 (benchmarks/NOTES.md,
    # section 0: `python benchmarks/time_to_quality.py --targets checkerboard --ladder 6000 --threads 1`).
    recipe = {"t_lognormal": 0.5}

    def __init__(self):
        super().__init__("checkerboard", ["lower left", "lower right", "upper left", "upper right"])
        # Dark squares are (i + j) even; each quadrant holds two of them.
        squares = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
        self._corners = torch.tensor(squares, dtype=torch.float64) - 2.0
        self._quadrant = torch.tensor([(i >= 2) + 2 * (j >= 2) for i, j in squares])

    def _sample_given(self, c, generator):
        member = (self._quadrant[None, :] == c[:, None]).to(torch.float64)
        square = torch.multinomial(member, 1, generator=generator)[:, 0]
        u = torch.rand(len(c), 2, generator=generator, dtype=torch.float64)
        return self._corners[square] + u


class Text(Target):
    """Uniform inside the glyph outlines of ``text`` (matplotlib TextPath); class = letter."""

    # 80% of each batch's t at EDM's noise levels (train.train's t_lognormal): at the strict floor with DDPM
    # and DPM++(2M)-16 (Karras grid) after 12000 steps; uniform t: neither by 8000, DPM++-16 stray points
    # in the letters' corners (benchmarks/NOTES.md, section 0:
    # `python benchmarks/time_to_quality.py --targets text --ladder 12000 --threads 1`).
    recipe = {"steps": 12000, "t_lognormal": 0.8}

    def __init__(self, text: str = "LAB", width: float = 4.4):
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextPath

        letters = [ch for ch in text if not ch.isspace()]
        if not letters:
            raise ValueError("text must contain at least one visible character")
        super().__init__(f"text:{text}" if text != "LAB" else "text", letters)
        prop = FontProperties(family="DejaVu Sans", weight="bold")
        # Lay the glyphs side by side with a fixed gap, then scale the line to ``width``.
        glyphs, x_offset = [], 0.0
        for ch in letters:
            glyph = TextPath((0, 0), ch, size=1.0, prop=prop)
            left, right = glyph.vertices[:, 0].min(), glyph.vertices[:, 0].max()
            glyphs.append(glyph.transformed(_affine(1.0, (x_offset - left, 0.0))))
            x_offset += right - left + 0.12
        lo = np.min([g.vertices.min(0) for g in glyphs], axis=0)
        hi = np.max([g.vertices.max(0) for g in glyphs], axis=0)
        scale = width / (hi[0] - lo[0])
        to_center = _affine(scale, -(lo + hi) / 2 * scale)
        self._paths = [g.transformed(to_center) for g in glyphs]
        self._boxes = [torch.from_numpy(np.stack([p.vertices.min(0), p.vertices.max(0)])) for p in self._paths]

    def _sample_given(self, c, generator):
        out = torch.empty(len(c), 2, dtype=torch.float64)
        for k, (path, box) in enumerate(zip(self._paths, self._boxes, strict=True)):
            idx = (c == k).nonzero()[:, 0]
            out[idx] = _inside(path, box, len(idx), generator)
        return out


def _affine(scale, shift):
    from matplotlib.transforms import Affine2D

    return Affine2D().scale(scale).translate(float(shift[0]), float(shift[1]))


def _inside(path, box, n, generator):
    """n points uniform inside ``path`` by rejection from its bounding box."""
    got = [torch.empty(0, 2, dtype=torch.float64)]
    have = 0
    while have < n:
        u = torch.rand(max(2 * (n - have), 64), 2, generator=generator, dtype=torch.float64)
        pts = box[0] + u * (box[1] - box[0])
        keep = torch.from_numpy(path.contains_points(pts.numpy()))
        got.append(pts[keep])
        have += int(keep.sum())
    return torch.cat(got)[:n]


class Digits(Target):
    """scikit-learn's 1,797 handwritten 8 x 8 digits as points of [-1, 1]^64: x = pixel / 8 - 1
    (pixels 0..16, rows of the image one after the other), class = the digit.

    A fixed split (the same on every machine: a seeded permutation within each class) holds out
    a quarter of each class. ``sample`` draws rows of the training split only, uniformly (so the
    classes come in the data's proportions); ``train_x``/``train_c`` are those rows and
    ``held_out_x``/``held_out_c`` the others, for classifiers and memorisation checks that must
    not see what the model trained on.
    """

    dim = 64
    image_shape = (8, 8)
    # Measured: 2000 steps of a 3 x 512 MLP take 41 s of CPU on one thread (3000 steps: 39 s wall on
    # 2 threads, lightly loaded); DPM-Solver++(2M), 10 steps from sigma_max = 5, w = 1: 99.0% of the
    # samples classified correctly by the held-out classifier, 85.0% at w = 0 (notebooks/10_digits.py).
    recipe = {"steps": 2000, "batch_size": 256, "lr": 2e-3, "p_uncond": 0.1, "width": 512, "depth": 3}
    # Sampling: start the ODE samplers at sigma_max = 5, not 80 (chapter 10: an eps-network's error
    # enters x0_hat multiplied by sigma, and in 64-D the start at 80 leaves visible noise); w = 1.
    sampling = {"sigma_max": 5.0, "w": 1.0}

    def __init__(self, held_out: float = 0.25, split_seed: int = 0):
        from sklearn.datasets import load_digits

        held_out = check_float("held_out", held_out, 0.0, 0.9, low_open=True)
        data = load_digits()
        x = torch.from_numpy(data.data).to(torch.float64) / 8.0 - 1.0
        c = torch.from_numpy(data.target).long()
        g = torch.Generator().manual_seed(check_int("split_seed", split_seed, 0, SEED_MAX))
        keep, out = [], []
        for k in range(10):
            rows = (c == k).nonzero()[:, 0]
            rows = rows[torch.randperm(len(rows), generator=g)]
            n_out = round(held_out * len(rows))
            out.append(rows[:n_out])
            keep.append(rows[n_out:].sort().values)
        keep, out = torch.cat(keep), torch.cat(out).sort().values
        self.train_x, self.train_c = x[keep], c[keep]          # grouped by class, for _sample_given
        self.held_out_x, self.held_out_c = x[out], c[out]
        counts = torch.bincount(self.train_c, minlength=10)
        self._first = torch.cumsum(counts, 0) - counts        # index of each class's first training row
        self._count = counts
        super().__init__("digits", [str(k) for k in range(10)], counts.to(torch.float64))

    def _sample_given(self, c, generator):
        # A uniform training row of class c: first row of the class + floor(u * its count).
        u = torch.rand(len(c), generator=generator, dtype=torch.float64)
        row = self._first[c] + (u * self._count[c]).long().clamp_max(self._count[c] - 1)
        return self.train_x[row]


_BUILDERS: dict[str, Callable[[], Target]] = {
    "ring8": lambda: ring(8, 2.0, 0.1),
    "moons": lambda: _Curves("moons", ["upper", "lower"], _moons, 0.08),
    "swiss_roll": lambda: _Curves("swiss_roll", ["inner", "middle", "outer"], _swiss_roll, 0.05),
    "checkerboard": Checkerboard,
    # 16 random Fourier features of x (model.FourierFeatures): without them the net extends each arm a little past
    # its inner end, and DDPM left a few points in 1000 there after every training tried up to 12000 steps; with
    # them DDPM's samples are at the level of fresh target samples after 4000 (benchmarks/NOTES.md, section 0:
    # `SAMPLERS=ddpm python benchmarks/target_recipes.py heldout spirals steps=4000,fourier=0 steps=4000`).
    "spirals": lambda: _Curves("spirals", ["arm 0", "arm 1", "arm 2"], _spirals, 0.06, recipe={"fourier": 16}),
    "text": Text,
    "digits": Digits,
}
_CACHE: dict[str, Target] = {}


def names(dim: int | None = None) -> list[str]:
    """Names accepted by :func:`get`; with ``dim``, only the targets of that dimension (2: the 2-D ones)."""
    if dim is None:
        return list(_BUILDERS)
    dim = check_int("dim", dim, 1, 1_000_000)
    return [name for name in _BUILDERS if get(name).dim == dim]


def get(name: str) -> Target:
    """The target called ``name`` (see :func:`names`)."""
    if not isinstance(name, str):
        raise TypeError(f"target must be a name (str) among {names()}, got {type(name).__name__}")
    if name not in _BUILDERS:
        raise ValueError(f"target must be one of {names()}, got {name!r}")
    if name not in _CACHE:
        _CACHE[name] = _BUILDERS[name]()
    return _CACHE[name]
