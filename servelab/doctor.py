"""`servelab doctor` (make doctor): can this machine run the labs on a real cluster (kind)?

Checks the Docker daemon, kind and kubectl (with versions), the CPU architecture images are
built for, free memory and that 127.0.0.1:8501 is free for kind's port mapping. Prints one line
per check; a failing line says what is wrong and the next step. Exits non-zero when a check the
requested target needs fails, so `make cluster`, `make deploy` and `make teardown` stop early with
the same lines. Nothing here is needed for the local backend, and every failure says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass

from servelab.backends import kube_problem
from servelab.core.processes import port_is_free
from servelab.core.tools import find_tool, kubectl_install_hint

SERVICE_PORT = 8501
KIND_CLUSTER = "servelab"
MIN_MEMORY_GIB = 3.0  # kind's control plane (~1.5 GiB) + metrics-server + four 512Mi-limit pods
LOCAL_HINT = "The labs run the same without Docker on the local backend: make lab"

# Which checks each make target needs; the others are still printed, for information.
NEEDS = {
    "doctor": ("docker", "kind", "kubectl", "arch", "memory", "port"),
    "cluster": ("docker", "kind", "kubectl", "arch", "memory", "port"),
    "deploy": ("kubectl", "context"),
    "teardown": ("docker", "kind"),
}


@dataclass
class Check:
    """One line of the report: `detail` says what was found, `fix` the next step when not ok."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        text = f"  {mark}  {self.name:<8} {self.detail}"
        return text if self.ok or not self.fix else f"{text}. Fix: {self.fix}"


def _run(args: list[str], timeout: float = 15) -> tuple[int, str]:
    """Exit code and combined output of a command; 127 when it is not installed."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, f"{args[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(args)} did not answer within {timeout:.0f} s"
    return done.returncode, (done.stdout + done.stderr).strip()


def _is_mac() -> bool:
    return platform.system() == "Darwin"


def docker_info() -> dict | None:
    """The daemon's version, architecture and memory, or None when no daemon answers."""
    docker = find_tool("docker")
    if not docker:
        return None
    code, out = _run([docker, "info", "--format", "{{json .}}"])
    if code != 0:
        return None
    try:
        return json.loads(out.splitlines()[0])
    except (json.JSONDecodeError, IndexError):
        return None


def check_docker(info: dict | None) -> Check:
    docker = find_tool("docker")
    if not docker:
        fix = ("install Docker Desktop, OrbStack or colima (brew install colima docker && colima start)"
               if _is_mac() else "install Docker Engine (https://docs.docker.com/engine/install/)")
        return Check("docker", False, "not installed", fix)
    _, client = _run([docker, "--version"])
    if info is None:
        _, why = _run([docker, "info", "--format", "{{.ServerVersion}}"])
        reason = why.splitlines()[-1] if why else "no answer"
        if "permission denied" in reason:
            fix = "add yourself to the docker group (sudo usermod -aG docker $USER), then log in again"
        elif _is_mac():
            fix = "start Docker Desktop (or: colima start)"
        else:
            fix = "start the daemon (sudo systemctl start docker)"
        return Check("docker", False, f"{client}, but no daemon answers ({reason})", fix)
    return Check("docker", True, f"{client}; daemon {info.get('ServerVersion', '?')}")


def check_kind() -> Check:
    kind = find_tool("kind")
    if not kind:
        fix = ("brew install kind" if _is_mac() else
               "go install sigs.k8s.io/kind@v0.31.0, or a release binary from "
               "https://kind.sigs.k8s.io/docs/user/quick-start/#installation")
        return Check("kind", False, "not installed", fix)
    code, out = _run([kind, "version"])
    return Check("kind", code == 0, out or "no output", "" if code == 0 else "reinstall kind")


def check_kubectl() -> Check:
    kubectl = find_tool("kubectl")
    if not kubectl:
        return Check("kubectl", False, "not installed", kubectl_install_hint())
    code, out = _run([kubectl, "version", "--client", "--output", "json"])
    try:
        version = json.loads(out)["clientVersion"]["gitVersion"]
    except (json.JSONDecodeError, KeyError):
        return Check("kubectl", False, f"{kubectl} did not report a version ({out[:80]})", "reinstall kubectl")
    return Check("kubectl", code == 0, f"{version} at {kubectl}")


def _arch(name: str) -> str:
    """Docker's architecture name for a machine name: x86_64 -> amd64, aarch64 -> arm64."""
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(name.lower(), name.lower())


def check_arch(info: dict | None) -> Check:
    """Images are built for the daemon's architecture; a forced other platform breaks the pods."""
    host = _arch(platform.machine())
    daemon = _arch(info["Architecture"]) if info and info.get("Architecture") else host
    forced = os.environ.get("DOCKER_DEFAULT_PLATFORM", "")
    if forced and not forced.endswith(f"/{daemon}"):
        return Check("arch", False, f"DOCKER_DEFAULT_PLATFORM={forced} but the kind node runs linux/{daemon}",
                     "unset DOCKER_DEFAULT_PLATFORM, so the image matches the node (exec format error otherwise)")
    note = " (Apple Silicon: native arm64 image, no emulation)" if _is_mac() and daemon == "arm64" else ""
    return Check("arch", True, f"host {host}, images build as linux/{daemon}{note}")


def check_memory(info: dict | None) -> Check:
    """Docker Desktop and colima run a VM: its memory, not the host's, is what kind gets."""
    if info and info.get("MemTotal"):
        gib, where = info["MemTotal"] / 2**30, "for Docker"
    else:
        import psutil

        gib, where = psutil.virtual_memory().available / 2**30, "available"
    ok = gib >= MIN_MEMORY_GIB
    fix = "" if ok else (f"give Docker at least {MIN_MEMORY_GIB:.0f} GiB (Docker Desktop: Settings > Resources; "
                         "colima start --memory 4), or close programs")
    return Check("memory", ok, f"{gib:.1f} GiB {where}", fix)


def kind_cluster_exists(name: str = KIND_CLUSTER) -> bool:
    kind = find_tool("kind")
    if not kind:
        return False
    code, out = _run([kind, "get", "clusters"])
    return code == 0 and name in out.split()


def check_port(port: int = SERVICE_PORT) -> Check:
    if port_is_free(port):
        return Check("port", True, f"127.0.0.1:{port} is free for kind's port mapping")
    if kind_cluster_exists():
        return Check("port", True, f"127.0.0.1:{port} is held by the kind cluster {KIND_CLUSTER!r} (expected)")
    finder = f"lsof -nP -iTCP:{port} -sTCP:LISTEN" if _is_mac() else f"ss -ltnp 'sport = :{port}'"
    return Check("port", False, f"127.0.0.1:{port} is in use by another program",
                 f"find it with `{finder}` and stop it (a local-backend lab: cluster.close(); "
                 f"a `servelab serve --port {port}`: Ctrl-C)")


def check_context(context: str) -> Check:
    problem = kube_problem(context)
    if problem:
        return Check("context", False, problem, "make cluster")
    return Check("context", True, f"kubeconfig context {context!r} answers")


def run_checks(target: str = "doctor", context: str = f"kind-{KIND_CLUSTER}", port: int = SERVICE_PORT) -> list[Check]:
    info = docker_info()
    checks = [check_docker(info), check_kind(), check_kubectl(), check_arch(info), check_memory(info),
              check_port(port)]
    if "context" in NEEDS[target]:
        checks.append(check_context(context))
    return checks


def report(checks: list[Check], target: str = "doctor") -> tuple[str, bool]:
    """The printed report and whether every check `target` needs passed."""
    needed = NEEDS[target]
    failed = [c for c in checks if not c.ok and c.name in needed]
    lines = ["servelab doctor: can this machine run the labs on a real cluster (kind)?"]
    lines += [c.line() for c in checks]
    if failed:
        names = ", ".join(c.name for c in failed)
        what = "the kube path" if target == "doctor" else f"make {target}"
        lines.append(f"Not ready for {what} ({names}): fix the FAIL lines above, then run make {target} again. "
                     + LOCAL_HINT)
    else:
        lines.append("Ready: make cluster creates (or reuses) the kind cluster, then make deploy.")
    return "\n".join(lines), not failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--for", dest="target", choices=sorted(NEEDS), default="doctor",
                        help="the make target about to run: only the checks it needs decide the exit code")
    parser.add_argument("--context", default=f"kind-{KIND_CLUSTER}", help="kubeconfig context (for deploy)")
    parser.add_argument("--port", type=int, default=SERVICE_PORT,
                        help=f"host port kind maps the Service to (cluster/kind-config.yaml: {SERVICE_PORT})")


def main(args: argparse.Namespace) -> int:
    text, ok = report(run_checks(args.target, args.context, args.port), args.target)
    print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m servelab.doctor", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
