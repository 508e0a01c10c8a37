"""The student set generated from the committed chapters (``labkit.exercises.write_student_versions``).

Every solution block becomes a stub and nothing else changes; the committed (executed) chapters show every
exercise check "passed"; nbval executes the student notebooks top to bottom without an error (executing the
student set costs as much as the course: one test, run once). In the browser, every check prints "not yet":
tests/browser/test_student_versions_in_jupyterlab.py.
"""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit import exercises

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
CHECK = re.compile(r"""exercises\.check\(["'](\w+)["']""")


def _checks(cell) -> list[str]:
    return CHECK.findall(cell.source) if cell.cell_type == "code" else []


def _outside_solutions(source: str) -> list[str]:
    """The lines of ``source`` outside the solution blocks, markers excluded."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip() == exercises.BEGIN:
            inside = True
        elif line.strip() == exercises.END:
            inside = False
        elif not inside:
            lines.append(line)
    return lines


def _printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    written = exercises.write_student_versions(NOTEBOOKS, out)
    assert [p.name for p in written] == [p.name for p in CHAPTERS]
    return out


def test_every_chapter_has_exercises_with_stubs():
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        names = [name for cell in nb.cells for name in _checks(cell)]
        assert names, f"{path.name} has no exercises.check cell"
        assert set(names) <= set(exercises.CHECKS), f"{path.name} checks unknown exercises"
        for cell in nb.cells:
            if _checks(cell):
                assert cell.source.count(exercises.BEGIN) >= 1, f"{path.name}: a check cell without a solution block"


def test_student_versions_stub_every_solution_and_keep_everything_else(student):
    for path in CHAPTERS:
        original, stubbed = nbformat.read(path, as_version=4), nbformat.read(student / path.name, as_version=4)
        assert [c.cell_type for c in stubbed.cells] == [c.cell_type for c in original.cells], path.name
        for before, after in zip(original.cells, stubbed.cells, strict=True):
            stub = exercises.STUB if before.cell_type == "code" else "_Your answer here._"
            blocks = before.source.count(exercises.BEGIN)
            assert exercises.BEGIN not in after.source and exercises.END not in after.source
            assert after.source.count(stub) == blocks + before.source.count(stub), path.name
            kept = [line for line in after.source.splitlines() if line.strip() != stub]
            assert kept == [line for line in _outside_solutions(before.source) if line.strip() != stub], path.name
            if after.cell_type == "code":
                assert after.outputs == [] and after.execution_count is None


def test_committed_chapters_show_every_check_passed():
    for path in CHAPTERS:
        for cell in nbformat.read(path, as_version=4).cells:
            printed = _printed(cell)
            for name in _checks(cell):
                assert f"{name}: passed" in printed.splitlines(), f"{path.name}: {name} printed {printed!r}"


def test_student_versions_pass_nbval(student):
    """nbval (lax, as for the committed chapters) on the student set: every chapter executes top to bottom
    with no error, with the session's model cache (the root conftest.py's, empty at the session's start;
    the kernels inherit it). Costs one run of the course (COURSE.md: <= 4 min on 2 idle cores). That every
    check prints "not yet" is read off the page by tests/browser/test_student_versions_in_jupyterlab.py."""
    nbval = ["--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-q", "-o", "addopts="]
    run = subprocess.run([sys.executable, "-m", "pytest", *nbval, "--rootdir", str(student), str(student)],
                         cwd=student, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", run.stdout.splitlines()[-1]), run.stdout[-2000:]
