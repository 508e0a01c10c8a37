"""The Binder configuration, checked offline: repo2docker accepts it, and its pins fit pyproject.

``repo2docker --no-build`` writes the Dockerfile it would build without talking to Docker, so it
runs here without a daemon or a network.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _binder_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in _binder_lines():
        if line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one specifier: a pin
        assert spec.operator == "==", f"{line}: Binder versions must be pinned with =="
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def _ranges(group: str | None = None) -> dict[str, SpecifierSet]:
    project = _pyproject()["project"]
    reqs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {canonicalize_name(Requirement(r).name): Requirement(r).specifier for r in reqs}


@pytest.fixture(scope="module")
def dockerfile() -> str:
    out = subprocess.run([sys.executable, "-m", "repo2docker", "--no-build", "--no-run", "--debug", str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_repo2docker_accepts_the_repository_and_uses_binder_files(dockerfile):
    assert "FROM " in dockerfile
    assert re.search(r"pip install --no-cache-dir -r \"binder/requirements.txt\"", dockerfile)
    # "-e ." needs the repository in the image before pip runs: the full copy comes first.
    assert dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/") < dockerfile.index('-r "binder/requirements.txt"')
    version = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    assert f"python={version}" in dockerfile


def test_every_runtime_dependency_is_pinned_inside_its_pyproject_range():
    pins, ranges = _pins(), _ranges()
    missing = sorted(set(ranges) - set(pins))
    assert not missing, f"binder/requirements.txt does not pin {missing}"
    for name, spec in ranges.items():
        assert spec.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside pyproject's {spec}"


def test_binder_pins_of_dev_tools_fit_the_dev_extra():
    pins, dev = _pins(), _ranges("dev")
    shared = set(pins) & set(dev)
    assert "voila" in shared  # the lab's Voila badge needs it
    for name in shared:
        assert dev[name].contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {dev[name]}"


def test_torch_is_the_cpu_build_from_the_cpu_index_and_labkit_is_installed():
    lines = _binder_lines()
    assert f"--extra-index-url {CPU_INDEX}" in lines
    assert _pins()["torch"].local == "cpu"  # "+cpu": not the multi-GB CUDA wheel
    assert "-e ." in lines


def test_runtime_python_satisfies_requires_python():
    version = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", version), version
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert requires.contains(version.removeprefix("python-") + ".0")


def test_readme_links_open_chapter_1_in_jupyterlab_and_the_lab_in_voila():
    text = (BINDER / "README.md").read_text()
    chapter1 = sorted((ROOT / "notebooks").glob("01_*.ipynb"))
    assert chapter1, "no chapter 1 notebook"
    assert f"urlpath=lab/tree/notebooks/{chapter1[0].name}" in text
    assert "urlpath=voila/render/notebooks/08_diffusion_lab.ipynb" in text
    assert (ROOT / "notebooks" / "08_diffusion_lab.ipynb").exists()
