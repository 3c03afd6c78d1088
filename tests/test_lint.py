"""Lint that keeps the code's shape: ruff's checks (pyproject's [tool.ruff]) and the package's one-way
layers (pyproject's [tool.importlinter]). Either failing prints what to change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing():
    found = run("ruff", "check", "--no-cache", "servelab", "tests", "bench")
    assert found.returncode == 0, found.stdout + found.stderr


def test_no_module_imports_a_layer_above_its_own():
    checked = run("lint-imports", "--no-cache")
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr
    assert "1 kept, 0 broken" in checked.stdout
