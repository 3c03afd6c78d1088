"""The labs run: every solution notebook top to bottom in quick mode, and a student lab up to its
first exercise.

Solutions run under nbval in lax mode: a cell fails the test when it raises (the notebooks assert
their own invariants: p99 >= p50, no errors, cost > 0), and its output is compared only where the
cell is tagged `nbval-check-output` (deterministic replies such as the lesson's curl).
Each notebook gets its own gradebook and results folder, so a test run never touches the
learner's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tools import require_tool

pytestmark = pytest.mark.notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
NEEDS_CURL = {"01-server.ipynb", "02-deploy.ipynb"}
NOTEBOOK_TIMEOUT_S = 240  # quick mode aims at ~90 s; this only stops a hung kernel


def quick_env(tmp_path: Path) -> dict[str, str]:
    """Quick mode, with a private gradebook and results folder."""
    return {
        **os.environ,
        "SERVELAB_QUICK": "1",
        "SERVELAB_GRADEBOOK": str(tmp_path / "gradebook.sqlite"),
        "SERVELAB_RESULTS": str(tmp_path / "results"),
        "SERVELAB_STUDENT": "nbval",
    }


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs_in_quick_mode(notebook: Path, tmp_path: Path):
    if notebook.name in NEEDS_CURL:
        require_tool("curl")
    command = [
        sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
        f"--nbval-cell-timeout={NOTEBOOK_TIMEOUT_S}", "-q", "-o", "addopts=", str(notebook),
    ]
    done = subprocess.run(command, cwd=ROOT, env=quick_env(tmp_path), capture_output=True, text=True,
                          timeout=NOTEBOOK_TIMEOUT_S + 60)
    assert done.returncode == 0, f"{notebook.name} failed in quick mode:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


def first_exercise(notebook: nbformat.NotebookNode) -> int:
    return next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and "raise NotImplementedError()" in c.source)


def test_student_lab_stops_at_its_first_exercise(tmp_path: Path, monkeypatch):
    """Everything before the first exercise works as given; the exercise itself is left to do."""
    path = ROOT / "labs" / "00-orientation.ipynb"
    notebook = nbformat.read(path, as_version=4)
    stub = first_exercise(notebook)
    for key, value in quick_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    client = NotebookClient(notebook, timeout=NOTEBOOK_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with pytest.raises(CellExecutionError) as raised:
        client.execute()
    assert raised.value.ename == "NotImplementedError", f"stopped on {raised.value.ename}, not at an exercise"
    ran = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.execution_count is not None]
    assert ran[-1] == stub, f"stopped at cell {ran[-1]}, but the first exercise is cell {stub}"
