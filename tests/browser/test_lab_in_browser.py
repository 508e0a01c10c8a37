"""The Diffusion Lab (chapter 8) driven in a real browser: JupyterLab in Chromium.

Each check compares screenshots of one panel of the lab's live canvas (ipympl) before and after
an action, so it proves the round trip: browser event -> widget message -> kernel update ->
figure redrawn -> new image in the page.
"""

import re
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from pagekit import (
    FIELD,
    LOSS,
    SAMPLES,
    PageLog,
    crop,
    drag_slider,
    error_outputs,
    image,
    open_notebook,
    run_all_cells,
    run_in_kernel,
    settled,
    shutdown_kernels,
    wait_for_change,
    widget_report,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeout

LAB = "08_diffusion_lab.ipynb"


@pytest.fixture(scope="module")
def lab(browser, lab_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    log = PageLog(page)
    open_notebook(page, lab_server, LAB)
    start = time.monotonic()
    run_all_cells(page, timeout_s=300)
    print(f"{LAB}: all cells ran in the browser in {time.monotonic() - start:.1f} s")
    yield page, log
    page.close()
    shutdown_kernels(lab_server)


def panel(page, box):
    canvas = page.locator(".lab-canvas").first

    def take():
        return crop(image(canvas), box)

    take.page = page  # for the failure report
    return take


def step_count(page) -> int:
    match = re.search(r"step (\d+)", page.locator(".lab-status").first.inner_text())
    return int(match.group(1)) if match else 0


def press_stop_until_stopped(page, wait_s: float = 60.0) -> None:
    """Press Stop until the status says "(stopped)": at most twice, each followed by ``wait_s``.

    One CI run under load never showed "(stopped)" after a single press, with nothing to say why.
    A second press (Stop is idempotent) is allowed, and each miss records what the kernel's app
    held then; if the second press does not stop it either, the test fails with those records.
    """
    missed = []
    for _ in range(2):
        page.locator("button.lab-stop").first.click()
        try:
            page.wait_for_function("() => document.querySelector('.lab-status').innerText.includes('(stopped)')",
                                   timeout=wait_s * 1000)
        except PlaywrightTimeout:
            kernel = run_in_kernel(page, "print(app.training, app.trainer.stop_event.is_set(), repr(app.status.value), "
                                         "len(app.history), repr(app.last_error))")
            missed.append(f"page status {page.locator('.lab-status').first.inner_text()!r}; kernel (training, "
                          f"stop set, status, steps, last error): {kernel.strip()}")
            continue
        if missed:
            warnings.warn("Stop needed a second press: " + "; ".join(missed), stacklevel=2)
        return
    pytest.fail("Stop did not stop training: " + " | ".join(missed))


def test_lab_notebook_runs_with_live_widgets_and_no_errors(lab):
    page, log = lab
    assert error_outputs(page) == []
    report = widget_report(page)
    assert report["widgets"] >= 1 and report["broken"] == [], report
    assert page.locator(".lab-canvas canvas").count() >= 1
    assert log.errors == [], log.errors
    assert log.external == []


def test_t_and_w_sliders_redraw_the_score_field(lab):
    page, log = lab
    field = panel(page, FIELD)
    before = field()
    drag_slider(page, ".lab-t", -80)
    after_t = wait_for_change(field, before, what="score field after dragging t")
    page.locator(".lab-class select").first.select_option(index=4)  # a class, so that w guides
    after_class = wait_for_change(field, after_t, what="score field after picking a class")
    drag_slider(page, ".lab-w")  # toward the middle: the notebook leaves w at its end
    wait_for_change(field, after_class, what="score field after dragging w")
    assert log.errors == []


def samples_title(page, wanted: str, timeout_s: float = 60.0) -> str:
    """The samples panel's title in the kernel, polled (bounded) until it contains ``wanted``."""
    deadline, title = time.monotonic() + timeout_s, ""
    while wanted not in title and time.monotonic() < deadline:
        title = run_in_kernel(page, "print(app.ax['samples'].get_title())")
        time.sleep(0.5)
    return title


def test_dragging_n_and_w_and_picking_a_class_re_render_the_samples_without_pressing_sample(lab):
    page, log = lab
    samples = panel(page, SAMPLES)
    start = samples()  # before the first change: the kernel may re-render before the next screenshot
    page.locator(".lab-class select").first.select_option(index=0)  # all classes
    page.locator(".lab-sampler select").first.select_option(label="DDIM (Euler)")
    wait_for_change(samples, start, what="samples after switching to DDIM")
    assert "all classes" in samples_title(page, "DDIM (Euler)")
    before = settled(samples)  # the picture of the kernel's last render, not an intermediate one
    readout = drag_slider(page, ".lab-steps")  # toward the middle (N = 1 with w = 6 throws 299 of 300 points out)
    after_n = wait_for_change(samples, before, what=f"samples after dragging N to {readout}")
    assert f"N = {readout}," in samples_title(page, f"N = {readout},")
    page.locator(".lab-class select").first.select_option(index=3)  # a class, so that w guides
    try:
        after_class = wait_for_change(samples, after_n, what="samples after picking a class")
    except AssertionError as miss:  # say what the kernel's app holds (one CI run missed this once)
        state = run_in_kernel(page, "print(app.class_picker.value, app.chosen_class, repr(app.last_error), "
                                    "repr(app.ax['samples'].get_title()), app._pending_samples)")
        raise AssertionError(f"{miss}; kernel (class picker, chosen class, last error, title, pending): {state}") \
            from None
    assert "class 2, w = " in samples_title(page, "class 2, w = ")
    readout = drag_slider(page, ".lab-w")
    wanted = f"class 2, w = {float(readout):g}"
    title = samples_title(page, wanted)
    assert re.search(rf"{re.escape(wanted)}(,|$)", title), f"after dragging w to {readout} the samples say {title!r}"
    wait_for_change(samples, after_class, what=f"samples after dragging w to {readout}")
    page.locator("button.lab-sample").first.click()  # Sample still works (the same picture again)
    assert log.errors == []


def test_train_advances_loss_and_counter_while_sliders_stay_live_and_stop_stops(lab):
    page, log = lab
    loss, field = panel(page, LOSS), panel(page, FIELD)
    box = page.locator(".lab-train-steps input").first
    box.fill("100000")
    box.press("Enter")
    loss_before, start = loss(), step_count(page)
    page.locator("button.lab-train").first.click()
    page.wait_for_function("() => document.querySelector('.lab-status').innerText.includes('(training)')",
                           timeout=120_000)
    wait_for_change(loss, loss_before, what="loss curve while training")
    first = step_count(page)
    field_before = field()
    drag_slider(page, ".lab-t", 70)  # the UI stays live during training
    wait_for_change(field, field_before, what="score field dragged during training")
    deadline = time.monotonic() + 60
    while step_count(page) <= first and time.monotonic() < deadline:
        time.sleep(0.25)
    assert step_count(page) > first > start, "the step counter does not advance while training"
    press_stop_until_stopped(page)
    stopped = step_count(page)
    time.sleep(2.0)
    assert step_count(page) == stopped < start + 100_000
    # The button's state reaches the page in its own widget message, possibly after the status text.
    page.wait_for_function("() => !document.querySelector('button.lab-train').disabled", timeout=30_000)
    shot = Path(tempfile.mkdtemp(prefix="labkit-browser-")) / "lab_after_training.png"
    page.locator(".lab-app").first.screenshot(path=str(shot))
    print(f"screenshot of the lab after training ({stopped} steps): {shot}")
    assert log.errors == []


def test_lab_kernel_peak_memory_after_a_full_session(lab):
    page, _ = lab  # the notebook trained, sampled and ran the quality chart; the tests trained more
    out = run_in_kernel(page, "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    peak = float(out.strip().splitlines()[-1])
    print(f"lab kernel peak RSS after the browser session: {peak:.0f} MB")
    assert peak <= 1024
