"""The Diffusion Lab as a standalone Voila app, driven in Chromium: sliders and Sample work."""

import time

import pytest
from pagekit import FIELD, SAMPLES, PageLog, crop, drag_slider, image, settled, unexpected_external, wait_for_change


@pytest.fixture(scope="module")
def app_page(browser, voila_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    log = PageLog(page)
    start = time.monotonic()
    page.goto(f"{voila_server.base}/?token={voila_server.token}", timeout=300_000)
    # Voila runs the whole notebook (with its scripted session) before the app is live.
    page.wait_for_selector(".lab-canvas canvas", timeout=300_000)
    page.wait_for_function("() => { const s = document.querySelector('.lab-status'); "
                           "return s && s.innerText.includes('(done)'); }", timeout=300_000)
    page.wait_for_load_state("networkidle", timeout=120_000)
    print(f"Voila: lab live after {time.monotonic() - start:.1f} s")
    yield page, log
    page.close()


def panel(page, box):
    canvas = page.locator(".lab-canvas").first

    def take():
        return crop(image(canvas), box)

    take.page = page  # for the failure report
    return take


def test_voila_renders_the_lab_without_errors(app_page):
    page, log = app_page
    assert page.locator(".lab-app").count() == 1
    assert page.locator(".jupyter-widgets-error-widget").count() == 0
    assert unexpected_external(log) == []
    assert log.errors == [], log.errors


def test_t_slider_redraws_the_score_field_in_voila(app_page):
    page, log = app_page
    field = panel(page, FIELD)
    before = field()
    drag_slider(page, ".lab-t", 90)
    wait_for_change(field, before, what="score field after dragging t (Voila)")
    assert log.errors == []


def test_steps_and_sample_redraw_the_samples_in_voila(app_page):
    page, log = app_page
    samples = panel(page, SAMPLES)
    page.locator(".lab-class select").first.select_option(index=0)  # all classes
    page.locator("button.lab-sample").first.click()
    before = settled(samples)  # the kernel's last render (it may come before or after this line)
    drag_slider(page, ".lab-steps", -25)
    page.locator("button.lab-sample").first.click()
    wait_for_change(samples, before, what="samples after changing N and pressing Sample (Voila)")
    assert log.errors == []
