"""The committed chapters: paired with their py:percent sources, executed top to bottom, no errors.

nbval (in the same pytest run) re-executes every notebook; these checks are about what is
committed, which nbval does not look at.
"""

import json
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code_sources(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


def _all_sources(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_paired_and_in_sync_with_its_script(path):
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no paired {script.name}"
    assert _all_sources(jupytext.read(path)) == _all_sources(jupytext.read(script)), (
        f"{path.name} and {script.name} differ: run `jupytext --sync {path}`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_in_order_without_errors(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    code = [c for c in cells if "".join(c["source"]).strip()]
    counts = [c["execution_count"] for c in code]
    assert None not in counts, f"{path.name}: {counts.count(None)} code cell(s) never executed"
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not run top to bottom in a fresh kernel"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: stored error output {errors[0].get('ename')}"


MAX_BYTES = 300_000  # COURSE.md section 5: each committed notebook <= 300 kB


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_light_with_one_image_per_figure(path):
    """scripts/execute_notebooks.sh stores each figure once (scripts/slim_notebooks.py)."""
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"{path.name} is {size / 1e3:.0f} kB (> {MAX_BYTES / 1e3:.0f} kB): " \
                              f"re-execute it with scripts/execute_notebooks.sh"
    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    doubled = [o for o in outputs if "image/png" in o.get("data", {}) and "text/html" in o["data"]]
    assert not doubled, f"{path.name}: {len(doubled)} figure(s) stored both as PNG and as HTML"
    assert "widgets" not in nb["metadata"], f"{path.name}: widget state stored (figures held a second time)"


def test_chapters_exist():
    assert NOTEBOOKS, "no chapter notebooks found in notebooks/"
