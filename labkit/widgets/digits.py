"""Widgets of chapter 10 (the 64-D digits target): noise on images, and guided samples as images.

- :class:`NoisedDigitsApp`: a t slider over a row of digits noised in closed form,
  x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, with one fixed eps per digit.
- :class:`GuidedDigitsApp`: a w slider and a class picker re-rendering a grid of samples of
  p(x | c) guided by CFG, with the classifier's accuracy and the samples' diversity in the title.
"""

from __future__ import annotations

import time

import ipywidgets as W
import torch

from .. import digits as _digits
from .._checks import check_float, check_int, check_seed
from ..guidance import cfg
from ..plotting import grid_array, image_grid
from ..samplers import SAMPLERS, run
from .base import App


class NoisedDigitsApp(App):
    """t slider over ``n`` training digits noised to timestep t of ``schedule``."""

    def __init__(self, target, schedule, *, n: int = 8, t: int = 0, seed: int = 0):
        self.target, self.schedule = target, schedule
        n = check_int("n", n, 1, 64)
        g = torch.Generator().manual_seed(check_seed(seed))
        self.x0, _ = target.sample(n, g, classes=torch.arange(n) % target.num_classes)
        self.eps = torch.randn(self.x0.shape, generator=g)
        self.t = check_int("t", t, 0, schedule.T - 1)
        super().__init__(figsize=(1.0 * n, 1.5))
        self.ax = self.axes[0]
        # Noised pixels leave [-1, 1]; the grey scale stays that of the data (values beyond are clipped).
        self.image = image_grid(self.ax, self.x0, shape=target.image_shape)
        self.t_slider = W.IntSlider(value=self.t, min=0, max=schedule.T - 1, description="t",
                                    continuous_update=False)
        self.on_change(self.t_slider, lambda: self.set_t(self.t_slider.value))
        self.guarded(self.update)

    def controls(self):
        return [self.t_slider]

    def set_t(self, t: int) -> None:
        """Timestep t in [0, T - 1]: noise the row to t and redraw."""
        t = check_int("t", t, 0, self.schedule.T - 1)
        if t != self.t or not hasattr(self, "x_t"):
            self.t = t
            self.t_slider.value = t   # its callback calls set_t again with the same t: a no-op
            self.update()

    def update(self) -> None:
        abar = float(self.schedule.alphas_cumprod[self.t])
        self.x_t = abar**0.5 * self.x0 + (1 - abar) ** 0.5 * self.eps
        self.image.set_data(grid_array(self.x_t, shape=self.target.image_shape))
        sigma = float(self.schedule.sigmas[self.t])
        self.ax.set_title(f"t = {self.t}: sqrt(abar_t) = {abar**0.5:.3f}, sigma_t = {sigma:.3g}", fontsize=9)
        self.redraw()


class GuidedDigitsApp(App):
    """w slider and class picker over a grid of CFG samples of one digit class.

    ``classifier`` is :func:`labkit.digits.classifier` (trained on held-out digits); the title
    prints its accuracy on the samples and their diversity (:func:`labkit.digits.diversity`).
    """

    def __init__(self, model, target, schedule, classifier, *, w: float = 1.0, w_max: float = 8.0, cls: int = 0,
                 n: int = 40, ncols: int = 10, sampler: str = "dpmpp_2m", steps: int = 10,
                 sigma_max: float = 5.0, seed: int = 0):
        if model.num_classes != target.num_classes:
            raise ValueError(f"model has {model.num_classes} classes but target {target.name!r} has "
                             f"{target.num_classes}")
        if sampler not in SAMPLERS or not SAMPLERS[sampler].takes_steps:
            raise ValueError(f"sampler must be one of {[k for k, s in SAMPLERS.items() if s.takes_steps]}, "
                             f"got {sampler!r}")
        self.model, self.target, self.schedule, self.classifier = model, target, schedule, classifier
        self.w_max = check_float("w_max", w_max, 0.0, 1000.0, low_open=True)
        self.w = check_float("w", w, 0.0, self.w_max)
        self.cls = check_int("cls", cls, 0, target.num_classes - 1)
        self.sampler, self.steps = sampler, check_int("steps", steps, 1, 1000)
        self.sigma_max = check_float("sigma_max", sigma_max, 0.0, low_open=True)
        self.ncols = check_int("ncols", ncols, 1, 100)
        g = torch.Generator().manual_seed(check_seed(seed))
        self.noise = torch.randn(check_int("n", n, 2, 10_000), target.dim, generator=g)
        self.timings_ms: list[float] = []
        super().__init__(figsize=(0.6 * self.ncols, 0.6 * -(-n // self.ncols) + 0.5))
        self.ax = self.axes[0]
        self.image = image_grid(self.ax, self.noise, ncols=self.ncols, shape=target.image_shape)
        self.w_slider = W.FloatSlider(value=self.w, min=0.0, max=self.w_max, step=0.25, description="w",
                                      readout_format=".2f", continuous_update=False)
        self.class_picker = W.Dropdown(options=[(name, k) for k, name in enumerate(target.class_names)],
                                       value=self.cls, description="class")
        self.on_change(self.w_slider, lambda: self.set_w(self.w_slider.value))
        self.on_change(self.class_picker, lambda: self.set_class(self.class_picker.value))
        self.guarded(self.update)

    def controls(self):
        return [W.HBox([self.w_slider, self.class_picker])]

    def set_w(self, w: float) -> None:
        """Guidance weight w in [0, w_max]: resample and redraw."""
        w = check_float("w", w, 0.0, self.w_max)
        if w != self.w or not hasattr(self, "samples"):
            self.w = w
            self.w_slider.value = w
            self.update()

    def set_class(self, cls: int) -> None:
        """Class c in [0, num_classes - 1]: resample and redraw."""
        cls = check_int("cls", cls, 0, self.target.num_classes - 1)
        if cls != self.cls or not hasattr(self, "samples"):
            self.cls = cls
            self.class_picker.value = cls
            self.update()

    def update(self) -> None:
        """The same noise taken to data with the guided eps of the current class and w."""
        start = time.perf_counter()
        eps_fn = cfg(self.model, self.cls, self.w)
        self.samples = run(self.sampler, eps_fn, self.schedule, self.noise, self.steps, sigma_max=self.sigma_max,
                           keep_trajectory=False).x
        labels = torch.full((len(self.samples),), self.cls)
        self.accuracy = _digits.accuracy(self.classifier, self.samples, labels)
        self.diversity = _digits.diversity(self.samples, labels)
        self.image.set_data(grid_array(self.samples, ncols=self.ncols, shape=self.target.image_shape))
        self.ax.set_title(f"class {self.target.class_names[self.cls]}, w = {self.w:g} (s = {1 + self.w:g}): "
                          f"classified correctly {self.accuracy:.0%}, diversity {self.diversity:.2f}", fontsize=9)
        self.redraw()
        self.timings_ms.append(1000 * (time.perf_counter() - start))
