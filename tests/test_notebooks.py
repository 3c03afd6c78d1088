"""The labs run: every solution notebook top to bottom in quick mode, a student lab up to its first
exercise, and the labs that offer load on a matrix of machines, with their central findings asserted.

Solutions run under nbval in lax mode: a cell fails the test when it raises (the notebooks assert
their own invariants: p99 >= p50, cost > 0), and its output is compared only where the cell is
tagged `nbval-check-output` (deterministic replies such as the lesson's curl). Each notebook gets
its own gradebook and results folder, so a test run never touches the learner's own; the labs
record every finding they print in that results folder, where these tests read the verdicts.

The machine matrix (labs 03-06, quick mode): (a) root, with cgroups; (b) an unprivileged user, whose
pods are held by a non-root rung of the CPU-limit ladder; (c) a machine three times faster and three
times slower per pod (SERVELAB_CPU_SCALE scales every pod's CPU limit; each lab's calibration must
follow, and on 2 cores a lab must shrink its pods to what the machine can load). To keep `make test`
well under 20 minutes the cells share runs, two per lab: root runs every lab three times faster
((a) and (c, faster)), the learner a third as fast ((b) and (c, slower)); in both its central findings
hold. The machine as it is, between the two, is where the committed solutions were executed in full mode;
a quick run of labs 03-06 there would cost CI about four more minutes, so it is not a cell of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from limits_fixtures import LEARNER, ensure_user
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tools import require_tool

from servelab.analysis import findings

pytestmark = pytest.mark.notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
NEEDS_CURL = {"01-server.ipynb", "02-deploy.ipynb"}
NOTEBOOK_TIMEOUT_S = 240  # quick mode aims at under a minute; this only stops a hung kernel
NON_ROOT_RUNGS = {"user-scope", "userspace"}  # how a pod's CPU limit can be held without root
# What each lab that offers load must show on every machine of the matrix.
CENTRAL = {
    "03-load": ["03-saturates-near-capacity", "03-open-loop-sees-stalls"],
    "04-scale": ["04-one-pod-heavy-load", "04-many-pods-low-traffic"],
    "05-autoscale": ["05-hpa-scales-up", "05-hpa-waits-to-scale-down", "05-one-pod-late"],
    "06-online-batch-edge": ["06-edge-fastest", "06-batch-cheapest", "06-batching-raises-capacity",
                             "06-batching-slows-lone-requests", "06-model-too-big-for-device", "06-big-pod-low-traffic"],
}


def quick_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Quick mode, with a private gradebook and results folder."""
    return {
        **os.environ,
        "SERVELAB_QUICK": "1",
        "SERVELAB_GRADEBOOK": str(tmp_path / "gradebook.sqlite"),
        "SERVELAB_RESULTS": str(tmp_path / "results"),
        "SERVELAB_STUDENT": "nbval",
        **extra,
    }


def run_solution(notebook: Path, env: dict[str, str], user: str | None = None) -> None:
    """Run one solution notebook under nbval (as `user` if given); fail with its output if a cell raised."""
    command = [
        sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
        f"--nbval-cell-timeout={NOTEBOOK_TIMEOUT_S}", "-q", "-o", "addopts=", str(notebook),
    ]
    if user is not None:
        command = ["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in env.items()), *command]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=NOTEBOOK_TIMEOUT_S + 60)
    assert done.returncode == 0, f"{notebook.name} failed in quick mode:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


def assert_central_findings(lab: str, results: Path, cell: str) -> None:
    """Every central finding of `lab` was reported in this run, and holds."""
    verdicts = findings.read(results / "findings.jsonl")
    missing = [f for f in CENTRAL[lab] if f not in verdicts]
    assert not missing, f"{lab} ({cell}) never reported {missing}; it reported {sorted(verdicts)}"
    failed = [str(verdicts[f]) for f in CENTRAL[lab] if not verdicts[f].holds]
    assert not failed, f"{lab} ({cell}) did not show its central findings:\n" + "\n".join(failed)


@pytest.fixture(scope="session")
def calibrations() -> Iterator[Path]:
    """Where each matrix cell's labs share one calibration ($SERVELAB_CALIBRATION_FILE, a file per cell):
    the labs of a cell run one after another on the same machine setting, so the first measures and the
    rest reuse it, as a learner's kernel reuses its own. Writable by the learner."""
    folder = Path(tempfile.mkdtemp(prefix="servelab-calibrations-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# The learner runs the labs at a third of the CPU, root three times faster.
LEARNER_SCALE, FASTER = "0.333", "3"


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs_in_quick_mode(notebook: Path, tmp_path: Path, calibrations: Path):
    """Every lab runs as root; the labs that offer load are matrix cells (a) and (c, faster): every pod's
    CPU limit times 3 (the calibration must follow, and on 2 cores the lab shrinks its pods to what the
    machine can load), and their central findings hold."""
    if notebook.name in NEEDS_CURL:
        require_tool("curl")
    if notebook.stem not in CENTRAL:
        run_solution(notebook, quick_env(tmp_path, SERVELAB_CALIBRATION_FILE=str(calibrations / "this-machine.json")))
        return
    env = quick_env(tmp_path, SERVELAB_CPU_SCALE=FASTER, SERVELAB_CALIBRATION_FILE=str(calibrations / "3x-faster.json"))
    run_solution(notebook, env)
    assert_central_findings(notebook.stem, tmp_path / "results", f"root, SERVELAB_CPU_SCALE={FASTER}")


@dataclass(frozen=True)
class Learner:
    """An unprivileged user, and their home."""

    name: str
    home: Path


@pytest.fixture(scope="session")
def learner() -> Iterator[Learner]:
    """An unprivileged user to run labs as: created when we are root, skipped (with why) when we cannot."""
    if os.geteuid() != 0:
        pytest.skip(f"these tests already run unprivileged (uid {os.geteuid()}): matrix cell (a) is that cell")
    if not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("no useradd/runuser here to create and become a second user")
    why_not = ensure_user(LEARNER)
    if why_not:
        pytest.fail(why_not)
    home = Path(pwd.getpwnam(LEARNER).pw_dir)
    python = str(Path(sys.executable).resolve())
    with traversable([ROOT, Path(sys.executable).parent, Path(python).parent]):
        probe = subprocess.run(["runuser", "-u", LEARNER, "--", sys.executable, "-c", "import servelab, nbval"],
                               capture_output=True, text=True, cwd="/")
        if probe.returncode != 0:
            message = f"{LEARNER} cannot run {sys.executable} with this project: {probe.stderr.strip()[-300:]}"
            if os.environ.get("SERVELAB_REQUIRE_TOOLS") == "1":
                pytest.fail(message)
            pytest.skip(message)
        yield Learner(LEARNER, home)


@contextlib.contextmanager
def traversable(paths: list[Path]) -> Iterator[None]:
    """Let other users pass through (not list) the folders above `paths` for a while: a checkout or a
    Python under /root (mode 700, as pyenv and CI machines have it) is otherwise out of a learner's reach.
    The modes are put back afterwards."""
    changed: dict[Path, int] = {}
    for path in paths:
        for folder in [path, *path.parents]:
            mode = folder.stat().st_mode
            if folder not in changed and not mode & stat.S_IXOTH:
                changed[folder] = stat.S_IMODE(mode)
                folder.chmod(changed[folder] | stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, mode in changed.items():
            folder.chmod(mode)


@pytest.fixture
def learner_tmp(learner: Learner):
    """A folder the learner may write (pytest's own tmp_path sits under a folder only root may enter)."""
    path = Path(tempfile.mkdtemp(prefix="servelab-learner-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("lab", sorted(CENTRAL))
def test_lab_holds_for_an_unprivileged_learner_on_a_slower_machine(lab: str, learner: Learner, learner_tmp: Path,
                                                                   calibrations: Path):
    """Matrix cells (b) and (c, slower): a user who cannot write cgroups (the CPU limits fall to a non-root
    rung), on a machine three times slower per pod; the calibration must follow."""
    tmp_path, scale = learner_tmp, LEARNER_SCALE
    env = quick_env(tmp_path, HOME=str(learner.home), USER=learner.name, LOGNAME=learner.name,
                    SERVELAB_CACHE=str(learner.home / ".cache" / "servelab" / "models"), SERVELAB_CPU_SCALE=scale,
                    SERVELAB_CALIBRATION_FILE=str(calibrations / "learner.json"))
    run_solution(ROOT / "solutions" / f"{lab}.ipynb", env, user=learner.name)
    cell = f"unprivileged user {learner.name}, SERVELAB_CPU_SCALE={scale}"
    assert_central_findings(lab, tmp_path / "results", cell)
    runs = [json.loads(meta.read_text()) for meta in (tmp_path / "results").rglob("meta.json")]
    held = {run["limits_enforced"] for run in runs if run.get("backend")}  # a bare server (no pod) has no limit
    assert held and held <= NON_ROOT_RUNGS, f"{cell}: the saved runs say their CPU limits were held by {held}"


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
