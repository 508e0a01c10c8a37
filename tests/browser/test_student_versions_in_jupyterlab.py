"""The student set (``python -m labkit exercises --student DIR``), every chapter opened in JupyterLab in
Chromium and run top to bottom, as a student first runs it before writing anything.

Each exercise is a stub that raises NotImplementedError; its check must print "not yet" (never a
traceback), and the rest of the chapter must run as in the committed version: no error output, every
widget rendered, no error in the browser console. tests/course/test_student_versions.py checks how the
set is made and runs it through nbval.
"""

import re

import pytest
from pagekit import chapter_run, chapters, printed

from labkit import exercises

CHECK = re.compile(r"""exercises\.check\(["'](\w+)["']""")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The served folder holds the student set instead of the committed chapters."""
    root = tmp_path_factory.mktemp("student-browser")
    exercises.write_student_versions(chapters()[0].parent, root / "notebooks")
    return root


@pytest.mark.parametrize("name", [p.name for p in chapters()])
def test_student_chapter_runs_in_jupyterlab_with_every_check_not_yet(browser, lab_server, name):
    with chapter_run(browser, lab_server, name) as (page, _):
        checked = 0
        for source, text in printed(page):
            for check in CHECK.findall(source):
                assert any(line.startswith(f"{check}: not yet") for line in text.splitlines()), (check, text)
                checked += 1
        assert checked >= 2, f"student {name}: {checked} exercise checks"
