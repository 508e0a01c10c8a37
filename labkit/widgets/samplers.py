"""Samples and trajectories of a reverse sampler, re-rendered as the step count or sampler changes.

The noise is drawn once (``seed``), so moving the step slider shows the same starting points
carried to the data by a coarser or finer sampler. Left panel: the final samples over the
target in light grey, with the number of network evaluations (NFE) in the title and both
statistics of :mod:`labkit.metrics` (the seed's MMD^2 and detail_miss) against a fixed target
batch, each beside its noise floor at the app's n (``metrics.noise_floor``, cached). The verdict
of ``metrics.floor_report`` (at the floor or not) is shown only when n >= ``metrics.MIN_N``
(500), the smallest n at_floor decides on; below it the title says there is no verdict. Right panel: the
paths of a few of those points through the sampler's trajectory (VP coordinates, first point =
start). Every update sets the data of the existing
artists (``set_offsets``, ``set_data``); the figure is never rebuilt.
"""

from __future__ import annotations

import ipywidgets as W
import torch

from .. import metrics
from .. import samplers as _samplers
from .. import schedules as _schedules
from .. import targets as _targets
from .._checks import check_float, check_int
from ..train import one_torch_thread
from .base import App


class SamplerApp(App):
    """A step-count slider, a sampler picker (every sampler of :data:`labkit.samplers.SAMPLERS`) and
    a grid picker (:data:`labkit.samplers.GRIDS`) over one eps function.

    ``eps_fn(x, t)`` is an eps function (a model's ``eps_fn()`` or :func:`labkit.oracle.eps_fn`);
    ``schedule`` and ``target`` are objects or names. ``n`` samples start from fixed noise;
    ``n_paths`` of them are drawn as trajectories. A sampler that takes no step count (DDPM) runs
    every timestep below sigma_max (the slider and grid are disabled); ``eta`` (DDIM only) moves
    DDIM from deterministic (0) toward DDPM's variance (1).
    """

    def __init__(self, eps_fn, schedule, target, *, sampler: str = "heun", grid: str = "karras", steps: int = 16,
                 eta: float = 0.0,
                 n: int = 300, n_paths: int = 12, max_steps: int = 128, sigma_max: float = 80.0,
                 seed: int = 0, lim: float = 3.5):
        if not callable(eps_fn):
            raise TypeError("eps_fn must be callable as eps_fn(x, t)")
        self.schedule = _schedules.get(schedule) if isinstance(schedule, str) else schedule
        if not isinstance(self.schedule, _schedules.Schedule):
            raise TypeError(f"schedule must be a labkit Schedule or a name, got {type(schedule).__name__}")
        self.target = _targets.get(target) if isinstance(target, str) else target
        if not isinstance(self.target, _targets.Target):
            raise TypeError(f"target must be a labkit Target or a name, got {type(target).__name__}")
        self.eps_fn = eps_fn
        self.sigma_max = check_float("sigma_max", sigma_max, low=self.schedule.sigma_min)
        max_t = self.schedule.last_t_below(self.sigma_max) + 1       # DDIM needs steps <= t_max + 1
        self.max_steps = check_int("max_steps", max_steps, 1, min(max_t, _samplers.MAX_STEPS))
        n = check_int("n", n, metrics.DETAIL_K + 1, metrics.MAX_N)
        n_paths = check_int("n_paths", n_paths, 0, n)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)
        self.lim = check_float("lim", lim, 0.0, 1e3, low_open=True)
        _samplers.check_sampler(sampler)
        _samplers.check_grid(grid)
        steps = check_int("steps", steps, 1, self.max_steps)
        eta = check_float("eta", eta, 0.0, 1.0)

        g = torch.Generator().manual_seed(self.seed)
        self.noise = torch.randn(n, 2, generator=g)
        self.reference = self.target.sample(n, g)[0]      # the fixed batch both statistics are measured against
        # The library's floors at this n (cached; shipped for n = 500 and 1000): one rule, Floor.threshold.
        with one_torch_thread():  # a first call at an n without a shipped floor computes it (about 2 s at n = 300)
            self.floors = {s: metrics.noise_floor(self.target, n, statistic=s) for s in metrics.STATISTICS}
        background = self.target.sample(800, g)[0]
        self.n_paths = n_paths
        self.result: _samplers.SampleResult | None = None
        self.report: dict | None = None  # the statistics of the samples shown, and the verdict (None below MIN_N)

        super().__init__(figsize=(8.4, 4.4), ncols=2)
        ax_s, ax_p = self.axes
        for ax in self.axes:
            ax.scatter(background[:, 0], background[:, 1], s=2, color="0.85", linewidths=0, zorder=0)
            ax.set_xlim(-self.lim, self.lim)
            ax.set_ylim(-self.lim, self.lim)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
        self.samples = ax_s.scatter(self.noise[:, 0], self.noise[:, 1], s=4, linewidths=0, zorder=2)
        self.paths = [ax_p.plot([], [], lw=0.8, alpha=0.8, zorder=1)[0] for _ in range(n_paths)]
        self.starts = ax_p.scatter(self.noise[:n_paths, 0], self.noise[:n_paths, 1], s=10, marker="x",
                                   color="0.4", linewidths=0.8, zorder=2)
        self.ends = ax_p.scatter(self.noise[:n_paths, 0], self.noise[:n_paths, 1], s=14, color="k", zorder=3)
        ax_p.set_title(f"{n_paths} trajectories (x: start, dot: end)", fontsize=9)
        self._title = ax_s.set_title("", fontsize=9)

        self.sampler_picker = W.ToggleButtons(options=[(info.label, s) for s, info in _samplers.SAMPLERS.items()],
                                              value=sampler, description="sampler",
                                              style={"button_width": "auto"})  # whole labels, not "DPM-Solver++(2..."
        self.grid_picker = W.ToggleButtons(options=list(_samplers.GRIDS), value=grid, description="grid")
        self.steps_slider = W.IntSlider(value=steps, min=1, max=self.max_steps, description="steps N",
                                        continuous_update=False, layout=W.Layout(width="60%"))
        self.eta_slider = W.FloatSlider(value=eta, min=0.0, max=1.0, step=0.05, description="DDIM eta",
                                        continuous_update=False)
        for control in (self.sampler_picker, self.grid_picker, self.steps_slider, self.eta_slider):
            self.on_change(control, self.update)
        with one_torch_thread():
            self.update()
        # Lay out once, then keep the axes fixed: re-running the layout engine per update costs time.
        self.fig.draw_without_rendering()
        self.fig.set_layout_engine("none")

    @property
    def floor(self) -> metrics.Floor:
        """The seed's MMD^2 floor at the app's n."""
        return self.floors["mmd2"]

    @property
    def mmd2(self) -> float:
        return self.report["mmd2"]

    @property
    def detail_miss(self) -> float:
        return self.report["detail_miss"]

    @property
    def verdict(self) -> bool | None:
        """at_floor of the samples shown (False with non-finite points), None when n < metrics.MIN_N."""
        return self.report["at_floor"]

    # ---- state, read from the controls ----
    @property
    def sampler(self) -> str:
        return self.sampler_picker.value

    @property
    def grid(self) -> str:
        return self.grid_picker.value

    @property
    def steps(self) -> int:
        return self.steps_slider.value

    @property
    def eta(self) -> float:
        return self.eta_slider.value

    def controls(self) -> list[W.Widget]:
        return [self.sampler_picker, self.grid_picker, W.HBox([self.steps_slider, self.eta_slider])]

    # ---- plain methods (tests call them without a browser) ----
    def set_steps(self, steps: int) -> None:
        """Set the step count N (1..max_steps) and redraw (DDPM ignores it)."""
        self.steps_slider.value = check_int("steps", steps, 1, self.max_steps)

    def set_sampler(self, name: str) -> None:
        """Switch to a sampler of the registry (``ddpm``, ``ddim``, ``heun``, ...) and redraw."""
        self.sampler_picker.value = _samplers.check_sampler(name)

    def set_grid(self, name: str) -> None:
        """Switch the sigma grid of the samplers that take steps (``trailing`` or ``karras``) and redraw."""
        self.grid_picker.value = _samplers.check_grid(name)

    def set_eta(self, eta: float) -> None:
        """Set DDIM's eta in [0, 1] and redraw (other samplers ignore it)."""
        self.eta_slider.value = check_float("eta", eta, 0.0, 1.0)

    def sample(self) -> _samplers.SampleResult:
        """Run the chosen sampler from the app's fixed noise (and a fixed seed for the noise it draws)."""
        g = torch.Generator().manual_seed(self.seed + 1)
        kwargs = {"sigma_max": self.sigma_max}
        if _samplers.SAMPLERS[self.sampler].takes_steps:
            kwargs["grid"] = self.grid
        if self.sampler == "ddim":
            kwargs["eta"] = self.eta
        return _samplers.run(self.sampler, self.eps_fn, self.schedule, self.noise, self.steps, generator=g, **kwargs)

    def measure(self, x: torch.Tensor) -> dict:
        """Both statistics of the samples ``x`` against the app's reference batch and, when n >= MIN_N,
        ``floor_report``'s verdict; non-finite points are left out of the statistics and fail the verdict."""
        finite = torch.isfinite(x).all(dim=1)
        lost = len(x) - int(finite.sum())
        if lost == 0 and len(x) >= metrics.MIN_N:
            return {**metrics.floor_report(x, self.target, reference=self.reference), "lost": 0}
        x = x[finite]
        ok = len(x) > metrics.DETAIL_K
        report = {s: fn(x, self.reference) if ok else float("nan") for s, (_, fn) in metrics.STATISTICS.items()}
        return {**report, "n": len(finite), "lost": lost, "at_floor": False if lost else None}

    def update(self) -> None:
        """Sample, then move the existing artists to the new samples and paths and redraw."""
        info = _samplers.SAMPLERS[self.sampler]
        self.steps_slider.disabled = self.grid_picker.disabled = not info.takes_steps
        self.eta_slider.disabled = self.sampler != "ddim"
        result = self.sample()
        x = result.x.detach().float()
        self.report = self.measure(x)
        self.result = result
        self.samples.set_offsets(torch.nan_to_num(x).numpy())
        self.samples.set_color(info.colour)
        if self.n_paths:
            path = torch.stack([p[: self.n_paths] for p in result.trajectory]).detach().float()  # (steps+1, k, 2)
            path = torch.nan_to_num(path).numpy()
            for k, line in enumerate(self.paths):
                line.set_data(path[:, k, 0], path[:, k, 1])
            self.ends.set_offsets(path[-1])
        steps = f"N = {self.steps}, {self.grid} grid" if info.takes_steps else f"N = {result.nfe}"
        eta = f", eta = {self.eta:g}" if self.sampler == "ddim" else ""
        self._title.set_text(f"{info.label} {steps}{eta}: NFE = {result.nfe}\n{self._measure_text()}")
        self.redraw()

    def _measure_text(self) -> str:
        """Two lines of statistics beside their floors (mean ± sd at the app's n), then the verdict."""
        r, m, d = self.report, self.floors["mmd2"], self.floors["detail_miss"]
        lines = [f"MMD² = {r['mmd2']:.4f} (floor {m.mean:.4f} ± {m.sd:.4f})",
                 f"detail miss = {r['detail_miss']:.3f} (floor {d.mean:.3f} ± {d.sd:.3f})"]
        if r["lost"]:
            lines.append(f"{r['lost']} of {r['n']} points non-finite: not at the floor")
        elif r["at_floor"] is None:
            lines.append(f"n = {r['n']}: no at-floor verdict below n = {metrics.MIN_N}")
        else:
            lines.append(f"at the floor (both ≤ mean + {metrics.FLOOR_Z:g} sd): {'yes' if r['at_floor'] else 'no'}")
        return "\n".join(lines)
