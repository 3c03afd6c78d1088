"""The ways to install stay in step and follow the layers: pip from pyproject.toml (the runtime,
then the [lab] and [test] extras), conda from environment.yml, the model server image from
cluster/requirements.lock; and `make lab` really serves JupyterLab."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from servelab.core import models
from servelab.server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LAB_PACKAGES = {"matplotlib", "ipywidgets", "jupyterlab", "IPython", "ipykernel", "nbformat", "jupyter_server"}


def _lock_tool():
    """cluster/lock-requirements.py, the script that writes the image's locks, as a module."""
    spec = importlib.util.spec_from_file_location("lock_requirements", ROOT / "cluster" / "lock-requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lock(name: str) -> dict[str, str]:
    lines = (ROOT / "cluster" / name).read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def _pyproject_requirements() -> list[str]:
    return PROJECT["dependencies"] + PROJECT["optional-dependencies"]["lab"] + PROJECT["optional-dependencies"]["test"]


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


def test_make_setup_installs_every_extra():
    (line,) = [line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install --quiet -e" in line]
    extras = re.search(r"\.\[([\w,]+)\]", line).group(1).split(",")
    assert sorted(extras) == sorted(PROJECT["optional-dependencies"]), line


def test_the_runtime_imports_without_the_labs_tools():
    """Every module but the lab layer's (plots, labgen) imports with no lab package installed."""
    blocked = f"""
import importlib, importlib.abc, pkgutil, sys
import servelab
class NoLab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {sorted(LAB_PACKAGES)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (servelab[lab] is not installed)", name=name)
sys.meta_path.insert(0, NoLab())
for module in pkgutil.walk_packages(servelab.__path__, "servelab."):
    if not module.name.startswith(("servelab.plots", "servelab.labgen")):
        importlib.import_module(module.name)
"""
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_lab_extra_holds_the_lab_tools_and_the_runtime_none():
    runtime = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    lab = {canonicalize_name(Requirement(r).name) for r in PROJECT["optional-dependencies"]["lab"]}
    assert {"jupyterlab", "ipywidgets", "matplotlib", "ipykernel", "nbformat"} <= lab
    assert not runtime & (lab | {"nbval", "pytest", "playwright"})


def test_the_image_set_is_part_of_the_runtime_and_locked_within_its_ranges():
    declared = {canonicalize_name(Requirement(r).name): Requirement(r) for r in PROJECT["dependencies"]}
    runtime, build = _lock_tool().image_names()
    pins = {**_lock("requirements.lock"), **_lock("build-requirements.lock")}
    for name in map(canonicalize_name, runtime + build):
        assert name in declared, f"[tool.servelab.image] names {name}, which is not in pyproject's dependencies"
        assert name in pins, f"{name} is not locked: run .venv/bin/python cluster/lock-requirements.py"
        assert declared[name].specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {declared[name]}"


def test_the_locks_hold_the_image_closure_and_nothing_of_the_lab_or_tests():
    tool = _lock_tool()
    runtime, build = tool.image_names()
    image = tool.closure(runtime)
    rerun = "run .venv/bin/python cluster/lock-requirements.py"
    assert set(_lock("requirements.lock")) == set(image), rerun
    assert set(_lock("build-requirements.lock")) == set(tool.closure(build)) - set(image), rerun
    extras = PROJECT["optional-dependencies"]
    only_lab_or_test = set(tool.closure(extras["lab"] + extras["test"])) - set(tool.closure(PROJECT["dependencies"]))
    assert {"jupyterlab", "matplotlib", "pytest"} <= only_lab_or_test
    assert not set(_lock("requirements.lock")) & only_lab_or_test
    assert not {"pandas", "kubernetes", "onnx"} & set(_lock("requirements.lock"))  # runtime, not the image's


IMAGE_ONLY = """
import importlib.abc, importlib.metadata, re, sys
ALLOWED = {allowed!r}
OWNERS = importlib.metadata.packages_distributions()

class OnlyTheImagesPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        owners = {{re.sub(r"[-_.]+", "-", d).lower() for d in OWNERS.get(name.split(".")[0], [])}}
        if owners and not owners & ALLOWED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in cluster/requirements.lock)", name=name)

sys.meta_path.insert(0, OnlyTheImagesPackages())
"""


@pytest.fixture
def image_env(tmp_path, monkeypatch) -> dict[str, str]:
    """This Python as the image has it: only the lock's packages importable, the model files built."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(IMAGE_ONLY.format(allowed=set(_lock("requirements.lock")) | {"servelab"}))
    monkeypatch.setenv("SERVELAB_CACHE", str(tmp_path / "models"))
    for name in models.MODEL_NAMES:
        models.path(name)  # built here, with onnx; serving them must not need it
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
            "SERVELAB_CACHE": str(tmp_path / "models")}


def test_serve_and_score_run_with_only_the_images_lock(image_env):
    env = {**os.environ, **image_env}
    blocked = subprocess.run([sys.executable, "-c", "import pandas"], env=env, capture_output=True, text=True)
    assert "not in cluster/requirements.lock" in blocked.stderr  # the stand-in for the image holds
    with ServerProcess(env=image_env) as server:
        request = urllib.request.Request(server.predict_url, json.dumps({"instances": [1.0, 2.0, 5.0]}).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["predictions"] == [pytest.approx(0.75)]
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            assert b"servelab" in response.read()
    job = yaml.safe_load((ROOT / "cluster" / "batch-scoring-job.yaml").read_text())
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    args[args.index("--rows") + 1] = "10000"  # the Job's command, on fewer rows
    score = subprocess.run([sys.executable, "-m", "servelab.cli", *args], env=env, capture_output=True, text=True,
                           timeout=60)
    assert score.returncode == 0 and "scored 10000 rows" in score.stdout, score.stderr[-2000:]


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
