"""Every pytest run starts from an empty model cache (labkit.cache), removed at the end.

Set here, at the top of the tree, so that it holds for tests/ and for the notebook kernels nbval
starts (they inherit this process's environment): each chapter run by the test suite trains its
models itself instead of loading the user's ~/.cache/labkit.
"""

import os
import shutil
import tempfile

from labkit.cache import ENV

_made: list[str] = []


def pytest_configure(config):
    _made.append(tempfile.mkdtemp(prefix="labkit-cache-"))
    os.environ[ENV] = _made[-1]


def pytest_unconfigure(config):
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)
