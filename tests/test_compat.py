"""Pairs pip cannot keep apart (pyarrow 26 declares no numpy, yet needs numpy 2 at import):
``import finrpt_providers`` names the pair and the fix, read from the installed metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finrpt_providers import compat

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("pyarrow", "numpy", "broken"), [
    ("26.0.1", "1.26.4", True),
    ("26.0.0", "1.26.4", True),
    ("27.1.0", "1.24.0", True),
    ("25.0.0", "1.26.4", False),  # measured: 16 ... 25 import with numpy 1.26.4
    ("18.1.0", "1.26.4", False),  # FinRpt's pins
    ("26.0.1", "2.0.0", False),
    ("26.0.1", "2.0.0rc1", False),
    ("26.0.1", None, False),
    (None, "1.26.4", False),
    ("26.0.1", "not-a-version", False),
])
def test_the_pyarrow_numpy_pair(pyarrow, numpy, broken):
    found = compat.broken_pairs({"pyarrow": pyarrow, "numpy": numpy})
    assert bool(found) is broken
    if broken:
        (line,) = found
        assert f"pyarrow {pyarrow} cannot work with numpy {numpy}" in line
        assert "pip install 'pyarrow>=16,<26'" in line and "pip install 'numpy>=2'" in line


def test_the_installed_versions_are_a_working_pair():
    assert compat.broken_pairs() == []
    compat.check()


def _fake_dist(where: Path, name: str, version: str) -> None:
    info = where / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_import_fails_naming_the_pair_and_the_fix(tmp_path):
    """The metadata found first on sys.path says numpy 1.26.4 beside pyarrow 26.0.1."""
    _fake_dist(tmp_path, "numpy", "1.26.4")
    _fake_dist(tmp_path, "pyarrow", "26.0.1")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", "import finrpt_providers"], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: finrpt_providers: broken install: "
                           "pyarrow 26.0.1 cannot work with numpy 1.26.4")
    assert "pip install 'pyarrow>=16,<26'" in last and "pip install 'numpy>=2'" in last
