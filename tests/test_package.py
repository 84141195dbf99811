"""opmail as a host site gets it: the wheel built from this tree, installed into a fresh venv, and
the host site's tests (examples/host_site, tests/test_embedding.py) run against that install.

The venv takes the wheel's own dependency list, its versions held to the test lock's pins (a
dependency missing from pyproject.toml fails here; a version the lock never tested cannot slip
in). The tests run from a folder without the source tree, so ``import opmail`` finds the install.
Slow-ish (a build, a venv, an install): ``-m "not slow"`` leaves it out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the host site's tests import from tests/ (and nothing that imports Playwright or Hypothesis).
HOST_TESTS = ["conftest.py", "helpers.py", "browser.py", "mailserver.py", "test_csrf.py", "test_embedding.py"]
TEST_TOOLS = ["pytest", "pytest-timeout", "Flask-Login"]


def run(*command: str | Path, cwd: Path = ROOT, env: dict | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=420, check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def build_wheel(folder: Path) -> Path:
    """The wheel, built from a copy of what the package is made of (the tree stays clean)."""
    source = folder / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "opmail", source / "opmail", ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", folder / "dist", source)
    (wheel,) = (folder / "dist").glob("opmail-*.whl")
    return wheel


def lock_pins(folder: Path) -> Path:
    """requirements-test.txt's pins without their hashes, as a constraints file."""
    pins = re.findall(r"^([A-Za-z0-9._-]+==[^\s\\]+)", (ROOT / "requirements-test.txt").read_text(), re.M)
    constraints = folder / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    return constraints


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_installed_wheel_runs_the_host_sites_tests(tmp_path):
    wheel = build_wheel(tmp_path)
    files = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "opmail/templates/opmail/admin/base.html",
        "opmail/static/vendor/htmx-2.0.11.min.js",
        "opmail/migrations/env.py",
        "opmail/migrations/script.py.mako",
    } <= files
    assert any(name.startswith("opmail/migrations/versions/") for name in files)
    assert not [name for name in files if name.split("/")[0] in ("tests", "bench", "instance", "examples")]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--constraint", lock_pins(tmp_path),
        f"{wheel}[mysql]", *TEST_TOOLS)
    run(python, "-m", "pip", "check")

    site = tmp_path / "site"
    (site / "tests").mkdir(parents=True)
    for name in HOST_TESTS:
        shutil.copy(ROOT / "tests" / name, site / "tests" / name)
    shutil.copytree(ROOT / "examples", site / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", site / "pyproject.toml")  # pytest's settings
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    installed = run(python, "-c", "import opmail; print(opmail.__file__)", cwd=site, env=env)
    assert installed.startswith(str(venv)), installed

    # SQLite only (MariaDB is the storage tests' business) and no browser (no Playwright here).
    output = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not browser",
                 "-k", "not mysql", "tests/test_embedding.py", cwd=site, env=env)
    assert re.search(r"\b\d+ passed\b", output) and " failed" not in output, output
