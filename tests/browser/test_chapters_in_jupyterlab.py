"""Every chapter notebook, opened in JupyterLab in Chromium and run top to bottom.

nbval executes the notebooks but never renders a widget; here the page must show every widget
output, with no error output and no error in the browser console. The lab notebook (chapter 8)
is opened and checked the same way by tests/browser/test_lab_in_browser.py.
"""

import time

import pytest
from pagekit import PageLog, chapters, error_outputs, open_notebook, run_all_cells, shutdown_kernels, widget_report

OTHER_CHAPTERS = [p.name for p in chapters() if p.name != "08_diffusion_lab.ipynb"]


def wait_for_widgets(page, timeout_s: float = 30.0) -> dict:
    """Widget outputs may still be loading right after the last cell; wait (bounded) for them."""
    deadline = time.monotonic() + timeout_s
    report = widget_report(page)
    while report["broken"] and time.monotonic() < deadline:
        time.sleep(0.5)
        report = widget_report(page)
    return report


@pytest.mark.parametrize("name", OTHER_CHAPTERS)
def test_chapter_runs_in_jupyterlab_with_live_widgets_and_no_errors(browser, lab_server, name):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log = PageLog(page)
    try:
        open_notebook(page, lab_server, name)
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
    finally:
        page.close()
        shutdown_kernels(lab_server)
