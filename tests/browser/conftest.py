"""Fixtures for the real-browser tests: Debian's Chromium driven by Playwright, and Jupyter servers.

The servers (``jupyter lab``, ``voila``) listen on 127.0.0.1 only, on a free port, with a random
token, serve a temporary copy of the notebooks, and are stopped when their test module ends.
Every wait is bounded. A missing browser fails the tests: a skipped browser suite would hide
exactly the breakage it exists to catch.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pagekit import chapters

CHROMIUM = os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
BIN = Path(sys.executable).parent  # jupyter and voila of the environment running the tests
SERVER_START_S = 90
# JupyterLab settings for the test server: render every cell (no virtual scrolling, so every
# output is in the page) and no news/update pop-up over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_with_parent():
    """Linux: the server gets SIGTERM if the test process dies without its teardown (killed, crashed)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    """A Jupyter server subprocess (own process group, log in a file), stopped by :meth:`stop`."""

    def __init__(self, args: list[str], workdir: Path, name: str):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        # One torch/OpenMP thread per kernel: the browser, the server and a kernel share 2 cores, and
        # torch's default (a thread per core) then oversubscribes them and runs many times slower.
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(workdir / "runtime"), JUPYTER_CONFIG_DIR=str(workdir / "config"),
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        args = [a.format(port=self.port, token=self.token) for a in args]
        self.process = subprocess.Popen(args, cwd=workdir, env=env, stdout=self.log_path.open("w"),
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_stop_with_parent)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=5):
                    return
            except urllib.error.HTTPError:  # it answers (Voila redirects API calls without a cookie)
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server not ready within {SERVER_START_S} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture(scope="module")
def browser():
    # Module scope: Playwright's sync API keeps an asyncio loop marked as running in this thread
    # while it is open, which would break later tests that run their own loop (asyncio.run).
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install -y chromium) or set "
                    "LABKIT_CHROMIUM; the browser tests must not be skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder with a copy of the chapter notebooks (the servers never see the repository)."""
    root = tmp_path_factory.mktemp("browser")
    (root / "notebooks").mkdir()
    for path in chapters():
        shutil.copy(path, root / "notebooks" / path.name)
    return root


@pytest.fixture(scope="module")
def lab_server(workdir):
    for name, value in LAB_SETTINGS.items():
        path = workdir / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    server = Server([str(BIN / "jupyter"), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", "--port={port}",
                     "--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir / 'notebooks'}",
                     f"--LabApp.user_settings_dir={workdir / 'settings'}",
                     f"--LabApp.workspaces_dir={workdir / 'workspaces'}", "--LabApp.expose_app_in_browser=True"],
                    workdir, "jupyterlab")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def voila_server(workdir):
    server = Server([str(BIN / "voila"), "--no-browser", "--Voila.ip=127.0.0.1", "--port={port}", "--token={token}",
                     # jupytext's JupyterLab extension needs JupyterLab's document manager, absent in Voila
                     "--VoilaConfiguration.extension_denylist=jupyterlab-jupytext",
                     str(workdir / "notebooks" / "08_diffusion_lab.ipynb")], workdir, "voila")
    yield server
    server.stop()
