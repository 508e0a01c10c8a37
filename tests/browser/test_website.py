"""The course website: built by scripts/build_website.sh, every page opened in Chromium, offline.

The site is built once for this module into a temporary folder, from the committed chapters, and
served over HTTP on 127.0.0.1. Every page must load with no console error, no failed or
non-2xx request and no request to the internet (the test machines are offline, and a student's
page should not depend on a CDN), every image decoded, every formula typeset by the bundled
MathJax; each chapter shows all its committed figures and has a Binder button opening it in
JupyterLab.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from pagekit import PageLog, chapters
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["index", *(f"notebooks/{path.stem}" for path in chapters()), "references"]
BUILD_S = 600
MATH_S = 180  # MathJax 2 typesets a few hundred formulas in seconds; far slower on a loaded machine
BUILT: dict[str, str] = {}  # notebook name -> its text when the site was built (others may commit meanwhile)
ARXIV = re.compile(r"arXiv:\s*(\d{4}\.\d{4,5})")
# Every formula typeset (MathJax 2 puts a .MathJax or .MathJax_Display element in each of Sphinx's
# .math.notranslate elements), none with a TeX error (merror: a parse error; noErrors: the source shown).
MATH_DONE = """() => !window.MathJax || (MathJax.isReady && MathJax.Hub.queue.pending === 0
    && [...document.querySelectorAll('.math.notranslate')].every(e => e.querySelector('.MathJax, .MathJax_Display')))"""
MATH_REPORT = """() => ({
    untypeset: [...document.querySelectorAll('.math.notranslate')]
        .filter(e => !e.querySelector('.MathJax, .MathJax_Display')).map(e => e.textContent),
    errors: [...document.querySelectorAll('.merror, .MathJax_Error, .noError')].map(e => e.textContent)})"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("website")
    BUILT.update({path.name: path.read_text() for path in chapters()})  # what the site is built from
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    start = time.monotonic()
    build = subprocess.run(["bash", str(ROOT / "scripts" / "build_website.sh"), str(out)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=BUILD_S)
    assert build.returncode == 0, f"build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    html = out / "_build" / "html"
    size = sum(p.stat().st_size for p in html.rglob("*") if p.is_file())
    print(f"website built in {time.monotonic() - start:.1f} s, {size / 1e6:.1f} MB")
    return html


@pytest.fixture(scope="module")
def server(site):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def opened(browser, server):
    """Open a page of the site (path without .html); returns the page and its log after it has loaded."""
    pages = []

    def open_page(path):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        pages.append(page)
        log = PageLog(page)
        bad = []
        page.on("response", lambda r: bad.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        response = page.goto(f"{server}/{path}.html", wait_until="load", timeout=60_000)
        assert response.status == 200, f"{path}: HTTP {response.status}"
        page.wait_for_load_state("networkidle", timeout=60_000)
        log.bad = bad
        return page, log

    yield open_page
    for page in pages:
        page.close()


def figures(path: Path) -> int:
    """The images the chapter's outputs show: a PNG each, or the <img> tags of an HTML output (a static player)."""
    outputs = [o.get("data", {}) for c in json.loads(BUILT[path.name])["cells"] for o in c.get("outputs", [])]
    return sum(1 if "image/png" in d else "".join(d.get("text/html", "")).count("<img") for d in outputs)


def cited(path: Path) -> set[str]:
    """The arXiv ids in the chapter's References section."""
    cells = json.loads(BUILT[path.name])["cells"]
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    section = re.search(r"^#+\s*References\s*$(.*?)(?=^#|\Z)", text, re.M | re.S)
    return set(ARXIV.findall(section.group(1))) if section else set()


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_offline_with_every_image_and_formula(opened, path):
    page, log = opened(path)
    assert log.errors == [], log.errors
    assert log.failed == [] and log.bad == [], (log.failed, log.bad)
    assert log.external == [], f"requests to the internet: {log.external}"
    images = page.evaluate("() => [...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0])")
    assert [src for src, ok in images if not ok] == []
    with contextlib.suppress(PlaywrightTimeout):  # (then the report says what is left)
        page.wait_for_function(MATH_DONE, timeout=MATH_S * 1000, polling=500)
    math = page.evaluate(MATH_REPORT)
    assert math["untypeset"] == [] and math["errors"] == [], math


@pytest.mark.parametrize("notebook", chapters(), ids=lambda p: p.stem)
def test_chapter_page_shows_its_figures_and_launches_on_binder(opened, notebook):
    page, log = opened(f"notebooks/{notebook.stem}")
    shown, expected = page.locator("article img").count(), figures(notebook)
    assert shown == expected, f"{shown} figures on the page, {expected} in the notebook"
    assert page.locator("article h1").count() >= 1
    config = yaml.safe_load((ROOT / "website" / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    binder = page.locator(f'a[href^="https://mybinder.org/v2/gh/{repo}/"]')
    assert binder.count() == 1
    assert binder.get_attribute("href").endswith(f"?urlpath=lab/tree/notebooks/{notebook.name}")


def test_landing_page_lists_every_chapter_and_the_readme_commands(opened):
    page, log = opened("index")
    nav = page.eval_on_selector_all("nav a[href]", "links => links.map(a => a.getAttribute('href'))")
    for notebook in chapters():
        assert f"notebooks/{notebook.stem}.html" in nav, f"{notebook.stem} missing from the navigation"
    shown = "\n".join(page.locator("pre").all_inner_texts())
    readme = (ROOT / "README.md").read_text()
    commands = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for line in block.splitlines()]
    assert commands and [c for c in commands if c not in shown] == []


def test_references_page_lists_every_cited_paper_with_a_link(opened):
    page, log = opened("references")
    links = page.eval_on_selector_all("a[href^='https://arxiv.org/abs/']",
                                      "links => links.map(a => a.getAttribute('href'))")
    expected = set().union(*(cited(path) for path in chapters()))
    assert expected and {link.rsplit("/", 1)[1] for link in links} == expected
