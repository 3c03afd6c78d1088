"""The two ways to install (pip from pyproject.toml, conda from environment.yml) stay in step,
and `make lab` really serves JupyterLab."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["test"]


def _conda_pip_requirements() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return [r for r in pip_sections[0] if not r.startswith("-e")]


def test_environment_yml_lists_the_same_requirements_as_pyproject():
    pyproject = _pyproject_requirements()
    conda = _conda_pip_requirements()
    assert sorted(conda) == sorted(pyproject), (
        "environment.yml's pip: section and pyproject.toml disagree; "
        f"only in pyproject: {sorted(set(pyproject) - set(conda))}, "
        f"only in environment.yml: {sorted(set(conda) - set(pyproject))}"
    )


def test_environment_yml_pins_the_tested_python_and_installs_the_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_jupyterlab_then_stops():
    port = _free_port()
    token = "servelab-test-token"
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"PORT={port}", "LAB_ARGS=--no-browser"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so make and jupyter stop together
        env={**os.environ, "JUPYTER_TOKEN": token},
    )
    try:
        deadline = time.monotonic() + 90
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=2) as response:
                    answer = (response.status, response.read().decode())
                break
            except OSError:
                time.sleep(0.5)
        assert answer is not None, f"JupyterLab did not answer on port {port}: {proc.stdout.read1().decode() if proc.poll() is not None else 'still starting'}"
        status, page = answer
        assert status == 200 and "<title>JupyterLab</title>" in page
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Nothing was left behind: no process of the group, nobody listening on the port.
    try:
        os.killpg(proc.pid, 0)
        raise AssertionError("make lab left processes running after SIGTERM")
    except ProcessLookupError:
        pass
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"


def test_cli_lists_its_commands():
    out = subprocess.run([sys.executable, "-m", "servelab.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "serve" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "servelab.cli", "srve"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown command 'srve'" in bad.stderr
