"""Every chapter notebook, opened in JupyterLab in Chromium and run top to bottom, then every slider dragged.

nbval executes the notebooks but never renders a widget; here the page must show every widget
output, with no error output and no error in the browser console, and dragging each enabled slider
must change the picture of the output it sits in (browser -> kernel -> redrawn figure -> page, or a
static player's frame). The lab notebook (chapter 8) is opened and checked the same way by
tests/browser/test_lab_in_browser.py.
"""

import pytest
from pagekit import chapter_run, chapters, drag_slider, error_outputs, image, wait_for_change

OTHER_CHAPTERS = [p.name for p in chapters() if p.name != "08_diffusion_lab.ipynb"]


def drag_every_slider(page) -> list[str]:
    """Drag each enabled ipywidgets slider a quarter of its track (toward its middle) and wait (bounded)
    until the output it sits in looks different; returns "description -> new readout" per slider."""
    dragged = []
    sliders = page.locator(".jp-OutputArea-output .widget-slider:has(.noUi-target:not([disabled]))")
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        output = slider.locator("xpath=ancestor::div[contains(@class, 'jp-OutputArea-output')][1]")
        label = slider.locator(".widget-label").first.inner_text()
        slider.scroll_into_view_if_needed()
        before = image(output)
        readout = drag_slider(page, slider)
        wait_for_change(lambda output=output: image(output), before, timeout_s=90,
                        what=f"the output of slider {label!r} dragged to {readout}")
        dragged.append(f"{label} -> {readout}")
    return dragged


@pytest.mark.parametrize("name", OTHER_CHAPTERS)
def test_chapter_runs_in_jupyterlab_with_live_widgets_and_no_errors(browser, lab_server, name):
    with chapter_run(browser, lab_server, name) as (page, log):
        dragged = drag_every_slider(page)
        print(f"{name}: dragged {dragged}")
        assert dragged, f"{name} has no slider to drag"
        assert log.errors == [], f"{name}: browser console errors after dragging: {log.errors}"
        assert error_outputs(page) == []
