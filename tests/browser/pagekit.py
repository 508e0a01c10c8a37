"""Helpers of the browser tests: page logs, screenshots, slider drags, JupyterLab notebook control."""

from __future__ import annotations

import io
import json
import re
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def chapters() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


# The one console error tolerated: ipympl's canvas occasionally draws a frame whose image was
# already replaced by the next one when a figure is redrawn twice in quick succession (seen once
# in 02_scores); the next frame draws normally. Every other console error fails the tests.
TOLERATED = re.compile(r"^Error setting state: Failed to execute 'drawImage' on 'CanvasRenderingContext2D': "
                       r"The HTMLImageElement provided is in the 'broken' state\.$")


class PageLog:
    """Console errors, uncaught exceptions and requests to the internet of a page.

    The test machines are offline, so a request leaving 127.0.0.1 is answered here with an empty
    body (and listed in ``external``) instead of failing with a console error. Voila's template
    asks a CDN for the Font Awesome style sheets (button icons); nothing else may go out.
    """

    def __init__(self, page):
        self.external: list[str] = []

        def answer_empty(route):
            self.external.append(route.request.url)
            route.fulfill(status=200, body="", content_type="text/css")

        page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), answer_empty)
        self.errors: list[str] = []
        self.failed: list[str] = []  # requests that failed (the console reports them without their address)
        self.tolerated: list[str] = []

        def on_console(message):
            if message.type == "error":
                text = f"console.{message.type}: {message.text} ({message.location.get('url')})"
                (self.tolerated if TOLERATED.search(message.text) else self.errors).append(text)

        page.on("console", on_console)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def image(locator) -> np.ndarray:
    """A screenshot of ``locator`` as an (h, w, 3) float array."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"), dtype=np.float32)


def crop(img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part (x0, y0, x1, y1), in fractions of width and height from the top left, of ``img``."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    return img[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)]


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape != b.shape or float(np.abs(a - b).mean()) > 0.05


def wait_for_change(take, before, timeout_s: float = 120.0, what: str = "image"):
    """Take images with ``take()`` until one differs from ``before``; return it (bounded wait)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = take()
        if differs(before, now):
            return now
        time.sleep(0.25)
    raise AssertionError(f"{what} did not change within {timeout_s} s{_diagnose(take)}")


def settled(take, timeout_s: float = 30.0):
    """The first of two screenshots 0.5 s apart that agree (bounded): the page has caught up."""
    deadline, last = time.monotonic() + timeout_s, take()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = take()
        if not differs(last, now):
            return now
        last = now
    return last


def _diagnose(take) -> str:
    """A screenshot of the whole page and the app's status and error text, for the failure message."""
    page = getattr(take, "page", None)
    if page is None:
        return ""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="labkit-browser-failure-")) / "page.png"
    page.screenshot(path=str(path), full_page=True)
    status = page.locator(".lab-status").first.inner_text() if page.locator(".lab-status").count() else ""
    return f"; status {status!r}; page screenshot: {path}"


def drag_slider(page, slider, dx: float | None = None, tries: int = 3) -> str:
    """Drag the handle of the ipywidgets slider ``slider`` (a CSS selector or a locator) by ``dx`` pixels
    (default: a quarter of its track toward the middle, so it moves wherever it starts); returns the new readout.

    The page can still shift (outputs above it loading) between reading the handle's place and the drag, so
    a drag that leaves the readout unchanged is tried again from the handle's new place, ``tries`` times."""
    slider = page.locator(slider).first if isinstance(slider, str) else slider
    handle = slider.locator(".noUi-handle").first
    readout = slider.locator(".widget-readout").first
    before = readout.inner_text()
    for attempt in range(tries):
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        step = dx
        if step is None:
            track = slider.locator(".noUi-target").first.bounding_box()
            step = track["width"] / 4 * (1 if box["x"] + box["width"] / 2 < track["x"] + track["width"] / 2 else -1)
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + step, y, steps=10)
        page.mouse.up()
        try:
            page.wait_for_function("([el, before]) => el.innerText !== before",
                                   arg=[readout.element_handle(), before], timeout=10_000)
            return readout.inner_text()
        except Exception:
            if attempt == tries - 1:
                raise
    return readout.inner_text()


# ----- JupyterLab: open a notebook, run it, inspect it ------------------------------------------
_NOTEBOOK = "window.jupyterapp.shell.currentWidget"
_KERNEL_IDLE = (f"() => {{ const nb = window.jupyterapp && {_NOTEBOOK}; const s = nb && nb.sessionContext; "
                "return !!(s && s.session && s.session.kernel && s.session.kernel.status === 'idle'); }")
_ALL_RUN = f"""() => {{
    const nb = {_NOTEBOOK}; const cells = nb.content.model.cells;
    const session = nb && nb.sessionContext && nb.sessionContext.session;
    if (!session || !session.kernel || session.kernel.status !== 'idle') return false;
    for (let i = 0; i < cells.length; i++) {{
        const c = cells.get(i);
        if (c.type === 'code' && c.sharedModel.source.trim() && !c.executionCount) return false;
    }}
    return true;
}}"""
_ERROR_OUTPUTS = f"""() => {{
    const cells = {_NOTEBOOK}.content.model.cells; const errors = [];
    for (let i = 0; i < cells.length; i++) {{
        const c = cells.get(i);
        if (c.type !== 'code') continue;
        for (const o of c.sharedModel.outputs) if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }}
    return errors;
}}"""
# Widget outputs that did not render: ipywidgets shows an error view (or stays at its loading
# placeholder) when a model or view cannot be created in the page.
_BROKEN_WIDGETS = f"""() => {{
    const cells = {_NOTEBOOK}.content.model.cells; let expected = 0;
    for (let i = 0; i < cells.length; i++) {{
        const c = cells.get(i);
        if (c.type !== 'code') continue;
        for (const o of c.sharedModel.outputs)
            if (o.data && o.data['application/vnd.jupyter.widget-view+json']) expected++;
    }}
    const top = [...document.querySelectorAll('.jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output')]
        .filter(o => !o.classList.contains('jp-RenderedText'));
    const rendered = top.filter(o => o.querySelector('.jupyter-widgets'));
    const broken = [...document.querySelectorAll('.jp-Notebook .jupyter-widgets-error-widget')].map(e => e.innerText)
        .concat(top.filter(o => /Error displaying widget|Loading widget|Failed to load|model not found/i
                                .test(o.innerText)).map(o => o.innerText.slice(0, 200)));
    if (rendered.length < expected) broken.push(`${{expected - rendered.length}} of ${{expected}} not rendered`);
    return {{widgets: expected, broken}};
}}"""
_PRINTED = f"""() => {{
    const cells = {_NOTEBOOK}.content.model.cells; const out = [];
    for (let i = 0; i < cells.length; i++) {{
        const c = cells.get(i);
        if (c.type !== 'code') continue;
        const text = c.sharedModel.outputs.filter(o => o.output_type === 'stream')
            .map(o => Array.isArray(o.text) ? o.text.join('') : o.text).join('');
        out.push([c.sharedModel.source, text]);
    }}
    return out;
}}"""


@contextmanager
def chapter_run(browser, server, name: str):
    """Open chapter ``name`` on ``server`` in a new page, run every cell (bounded) and check what every run
    must show: no error output, every widget rendered, no console error, no request leaving the machine.
    Yields (page, log) for more checks; the page is closed and the server's kernels shut down after."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log = PageLog(page)
    try:
        open_notebook(page, server, name)
        start = time.monotonic()
        run_all_cells(page, timeout_s=300)
        print(f"{name}: all cells ran in the browser in {time.monotonic() - start:.1f} s")
        assert error_outputs(page) == []
        report = wait_for_widgets(page)
        assert report["widgets"] >= 1, f"{name} shows no widget"
        assert report["broken"] == [], f"{name}: widgets that did not render: {report['broken']}"
        assert log.errors == [], f"{name}: browser console errors: {log.errors}"
        if log.tolerated:
            print(f"{name}: tolerated console errors: {log.tolerated}")
        assert log.external == [], f"{name}: requests left the machine: {log.external}"
        yield page, log
    finally:
        page.close()
        shutdown_kernels(server)


def open_notebook(page, server, name: str, timeout_s: float = 120):
    # A fresh workspace per page: JupyterLab would otherwise reopen the notebooks of earlier tests,
    # whose kernels are shut down, and report them dead.
    workspace = f"test-{uuid.uuid4().hex[:12]}"
    page.goto(f"{server.base}/lab/workspaces/{workspace}/tree/{name}?token={server.token}", timeout=timeout_s * 1000)
    page.wait_for_function(_KERNEL_IDLE, timeout=timeout_s * 1000)


def run_all_cells(page, timeout_s: float = 300):
    """Run every cell of the open notebook and wait (bounded) until all have run and the kernel is idle."""
    # Start the command without awaiting its promise (it resolves only when every cell has run).
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function(_ALL_RUN, timeout=timeout_s * 1000, polling=500)


def error_outputs(page) -> list[str]:
    return page.evaluate(_ERROR_OUTPUTS)


def widget_report(page) -> dict:
    return page.evaluate(_BROKEN_WIDGETS)


def wait_for_widgets(page, timeout_s: float = 30.0) -> dict:
    """Widget outputs may still be loading right after the last cell; wait (bounded) for them."""
    deadline = time.monotonic() + timeout_s
    report = widget_report(page)
    while report["broken"] and time.monotonic() < deadline:
        time.sleep(0.5)
        report = widget_report(page)
    return report


def printed(page) -> list[tuple[str, str]]:
    """(source, printed text) of each code cell of the open notebook, as the page holds them."""
    return [tuple(pair) for pair in page.evaluate(_PRINTED)]


def run_in_kernel(page, code: str, timeout_s: float = 60) -> str:
    """Execute ``code`` in the open notebook's kernel (no new cell); return its stdout."""
    return page.evaluate("""async (code) => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        const future = kernel.requestExecute({code, store_history: false});
        let out = '';
        future.onIOPub = msg => { if (msg.header.msg_type === 'stream') out += msg.content.text;
                                  if (msg.header.msg_type === 'error') out += 'ERROR ' + msg.content.evalue; };
        await future.done;
        return out;
    }""", code)


def shutdown_kernels(server):
    """Shut down every kernel of ``server`` (frees the memory of finished notebooks)."""
    request = urllib.request.Request(f"{server.base}/api/kernels?token={server.token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        kernels = json.load(response)
    for kernel in kernels:
        delete = urllib.request.Request(f"{server.base}/api/kernels/{kernel['id']}?token={server.token}",
                                        method="DELETE")
        urllib.request.urlopen(delete, timeout=30).close()


# Panels of the lab's figure (2 x 3 grid; the quality chart spans the last two bottom cells), as
# (x0, y0, x1, y1) fractions of the canvas, below the titles.
TARGET = (0.0, 0.08, 0.33, 0.5)
SAMPLES = (0.35, 0.08, 0.66, 0.5)
FIELD = (0.68, 0.1, 1.0, 0.5)
LOSS = (0.0, 0.56, 0.33, 1.0)


def unexpected_external(log: PageLog) -> list[str]:
    return [url for url in log.external if "fontawesome" not in url]
