"""Chapter 9's widgets: velocity fields at a t slider, and flow samples at a step slider and a w slider.

:class:`VelocityFieldApp` draws velocity functions v(x, t) (:mod:`labkit.flow`: t in [0, 1], t = 0 data)
side by side on one grid, e.g. a trained velocity model beside the exact mixture velocity, over the
target pushed along the linear path to t. :class:`FlowSamplerApp` integrates a velocity model from fixed
noise (Euler or Heun, N steps) with classifier-free guidance v = (1 + w) v_c - w v_null for one class,
and draws the samples and a few trajectories. Every update moves existing artists; no figure is rebuilt.
"""

from __future__ import annotations

import ipywidgets as W
import torch

from .. import fields
from .. import flow as _flow
from .._checks import check_float, check_int, check_seed
from ..guidance import class_spread
from ..metrics import mmd2
from .base import App


class VelocityFieldApp(App):
    """A t slider (0 = data, 1 = noise) over the arrows of each velocity function in ``velocity_fns``
    (a dict title -> v(x, t)), drawn over x_t = (1 - t) x_0 + t eps of a fixed target batch."""

    def __init__(self, velocity_fns: dict, target, *, t: float = 0.5, lim: float = 3.0, size: int = 17,
                 n_target: int = 1000, seed: int = 0):
        if not isinstance(velocity_fns, dict) or not velocity_fns or not all(map(callable, velocity_fns.values())):
            raise TypeError("velocity_fns must be a non-empty dict of title -> velocity_fn(x, t)")
        self.velocity_fns, self.target = velocity_fns, target
        self.lim = check_float("lim", lim, 0.0, 100.0, low_open=True)
        t = check_float("t", t, 0.0, 1.0)
        self.points = fields.grid(self.lim, check_int("size", size, 2, 100))
        self.cell = 2 * self.lim / (size - 1)
        g = torch.Generator().manual_seed(check_seed(seed))
        self.x0 = target.sample(check_int("n_target", n_target, 2, 100_000), g)[0]
        self.eps = torch.randn(self.x0.shape, generator=g)
        super().__init__(figsize=(4.2 * len(velocity_fns), 4.4), ncols=len(velocity_fns))
        self.clouds, self.arrows, self.titles = [], [], []
        zeros = torch.zeros(len(self.points))
        for ax, name in zip(self.axes, velocity_fns):
            self.clouds.append(ax.scatter(self.x0[:, 0], self.x0[:, 1], s=2, color="0.75", linewidths=0))
            self.arrows.append(ax.quiver(self.points[:, 0], self.points[:, 1], zeros, zeros, angles="xy",
                                         scale_units="xy", scale=1.0, width=0.004, color="tab:red"))
            self.titles.append(ax.set_title(name, fontsize=9))
            ax.set_xlim(-self.lim, self.lim)
            ax.set_ylim(-self.lim, self.lim)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
        self.t_slider = W.FloatSlider(value=t, min=0.0, max=1.0, step=0.01, description="t",
                                      continuous_update=False, layout=W.Layout(width="60%"))
        self.on_change(self.t_slider, self.update)
        self.update()
        self.fig.draw_without_rendering()
        self.fig.set_layout_engine("none")

    @property
    def t(self) -> float:
        return self.t_slider.value

    def controls(self) -> list[W.Widget]:
        return [self.t_slider]

    def set_t(self, t: float) -> None:
        """Set t in [0, 1] and redraw."""
        self.t_slider.value = check_float("t", t, 0.0, 1.0)

    @torch.inference_mode()
    def update(self) -> None:
        """Re-evaluate every field at the slider's t and move the arrows and the noised cloud."""
        x_t = (1 - self.t) * self.x0 + self.t * self.eps
        tt = torch.full((len(self.points),), self.t)
        for (name, v), cloud, arrows, title in zip(self.velocity_fns.items(), self.clouds, self.arrows, self.titles):
            vectors = v(self.points, tt)
            shown, factor = fields.display_arrows(vectors, self.cell)
            arrows.set_UVC(shown[:, 0].numpy(), shown[:, 1].numpy())
            cloud.set_offsets(x_t.numpy())
            title.set_text(f"{name}, t = {self.t:.2f}\n(arrows x {factor:.2g})")
        self.redraw()


class FlowSamplerApp(App):
    """Step slider, solver picker, class picker and w slider over the samples of a velocity model.

    ``model`` is a trained velocity :class:`~labkit.model.EpsMLP` (:func:`labkit.flow.trained_model`);
    class -1 means unconditional (w is then ignored)."""

    def __init__(self, model, target, *, steps: int = 8, solver: str = "euler", cls: int = -1, w: float = 0.0,
                 w_max: float = 8.0, max_steps: int = 64, n: int = 300, n_paths: int = 12, seed: int = 0,
                 lim: float = 3.0):
        if model.num_classes != target.num_classes:
            raise ValueError(f"model has {model.num_classes} classes but target {target.name!r} has "
                             f"{target.num_classes}")
        self.model, self.target = model, target
        self.max_steps = check_int("max_steps", max_steps, 1, 10_000)
        self.w_max = check_float("w_max", w_max, 0.0, 1000.0, low_open=True)
        self.n_paths = check_int("n_paths", n_paths, 0, n)
        if solver not in _flow.SOLVERS:
            raise ValueError(f"solver must be one of {list(_flow.SOLVERS)}, got {solver!r}")
        g = torch.Generator().manual_seed(check_seed(seed))
        self.noise = torch.randn(check_int("n", n, 2, 100_000), target.dim, generator=g)
        self.reference = target.sample(n, g)[0]
        background = target.sample(1000, g)[0]
        self.result, self.mmd2 = None, None
        super().__init__(figsize=(8.4, 4.4), ncols=2)
        for ax in self.axes:
            ax.scatter(background[:, 0], background[:, 1], s=2, color="0.85", linewidths=0, zorder=0)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
        self.samples = self.axes[0].scatter(self.noise[:, 0], self.noise[:, 1], s=4, linewidths=0, zorder=2)
        self.paths = [self.axes[1].plot([], [], lw=0.8, alpha=0.8)[0] for _ in range(self.n_paths)]
        self.ends = self.axes[1].scatter(self.noise[:self.n_paths, 0], self.noise[:self.n_paths, 1], s=14,
                                         color="k", zorder=3)
        self.axes[1].set_title(f"{self.n_paths} trajectories (dot: end)", fontsize=9)
        self._title = self.axes[0].set_title("", fontsize=9)
        self.steps_slider = W.IntSlider(value=check_int("steps", steps, 1, self.max_steps), min=1,
                                        max=self.max_steps, description="steps N", continuous_update=False)
        self.solver_picker = W.ToggleButtons(options=list(_flow.SOLVERS), value=solver, description="solver")
        self.class_picker = W.Dropdown(options=[("all (unconditional)", -1)] +
                                       [(name, k) for k, name in enumerate(target.class_names)],
                                       value=check_int("cls", cls, -1, target.num_classes - 1), description="class")
        self.w_slider = W.FloatSlider(value=check_float("w", w, 0.0, self.w_max), min=0.0, max=self.w_max,
                                      step=0.25, description="w", continuous_update=False)
        for control in (self.steps_slider, self.solver_picker, self.class_picker, self.w_slider):
            self.on_change(control, self.update)
        self.update()
        self.fig.draw_without_rendering()
        self.fig.set_layout_engine("none")

    def controls(self) -> list[W.Widget]:
        return [W.HBox([self.solver_picker, self.class_picker]), W.HBox([self.steps_slider, self.w_slider])]

    def set_steps(self, steps: int) -> None:
        self.steps_slider.value = check_int("steps", steps, 1, self.max_steps)

    def set_solver(self, solver: str) -> None:
        if solver not in _flow.SOLVERS:
            raise ValueError(f"solver must be one of {list(_flow.SOLVERS)}, got {solver!r}")
        self.solver_picker.value = solver

    def set_class(self, cls: int) -> None:
        self.class_picker.value = check_int("cls", cls, -1, self.target.num_classes - 1)

    def set_w(self, w: float) -> None:
        self.w_slider.value = check_float("w", w, 0.0, self.w_max)

    def velocity_fn(self):
        """The (guided) velocity function the controls select."""
        cls = self.class_picker.value
        return _flow.velocity_fn(self.model) if cls < 0 else _flow.velocity_fn(self.model, cls, self.w_slider.value)

    def update(self) -> None:
        """Sample from the fixed noise with the chosen solver, N, class and w; move the artists."""
        self.w_slider.disabled = self.class_picker.value < 0
        result = _flow.sample(self.velocity_fn(), self.noise, self.steps_slider.value, solver=self.solver_picker.value)
        x = torch.nan_to_num(result.x.detach().float())
        cls = self.class_picker.value
        self.result, self.mmd2 = result, mmd2(x, self.reference) if cls < 0 else None
        self.samples.set_offsets(x.numpy())
        if self.n_paths:
            path = torch.nan_to_num(torch.stack([p[: self.n_paths] for p in result.trajectory]).float()).numpy()
            for k, line in enumerate(self.paths):
                line.set_data(path[:, k, 0], path[:, k, 1])
            self.ends.set_offsets(path[-1])
        measure = f"unconditional: MMD² to the target {self.mmd2:.4f}" if cls < 0 else \
            f"class {self.target.class_names[cls]}, w = {self.w_slider.value:g}: spread {class_spread(x):.3f}"
        self._title.set_text(f"{self.solver_picker.value} N = {self.steps_slider.value}: NFE = {result.nfe}\n"
                             f"{measure}")
        self.redraw()
