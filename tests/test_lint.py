"""Lint that keeps the code's shape: ruff's checks (pyproject's [tool.ruff]) and the package's one-way
layers (pyproject's [tool.importlinter]). Either failing prints what to change."""

from __future__ import annotations

import ast
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


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# What may stay over the limits for now, with why. The test fails when an entry is no longer needed.
OVERSIZED: dict[str, str] = {}


def sizes() -> dict[str, int]:
    """Lines of every module in servelab/ ("path") and of every function in it, nested ones too ("path:name")."""
    found = {}
    for path in sorted((ROOT / "servelab").rglob("*.py")):
        name, source = path.relative_to(ROOT).as_posix(), path.read_text()
        found[name] = len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{name}:{node.name}"
                found[key] = max(found.get(key, 0), node.end_lineno - node.lineno + 1)
    return found


def test_no_module_or_function_is_too_long():
    over = {key: lines for key, lines in sizes().items()
            if lines > (MAX_FUNCTION_LINES if ":" in key else MAX_MODULE_LINES)}
    new = {key: lines for key, lines in over.items() if key not in OVERSIZED}
    assert not new, f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function: {new}; split it"
    stale = sorted(set(OVERSIZED) - set(over))
    assert not stale, f"within the limits now, so take them out of OVERSIZED: {stale}"
