"""Helpers for the limits tests: fake /proc + cgroup trees, a fake systemd-run, a spinning process tree.

A fake tree is a temporary directory holding proc/self/mountinfo and proc/self/cgroup that point
at cgroup "mounts" inside it, so the ladder's decisions and file writes can be checked for
hierarchies this machine does not have (cgroup v2, a user's systemd manager).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from servelab.limits.cgroupfs import Host

# What a fake `systemd-run --user --scope` does: what the real one asks the user's manager for
# (a scope whose group has the limits), then exec the command (keeping its pid, as the real one does).
FAKE_SYSTEMD_RUN = textwrap.dedent(f"""\
    #!{sys.executable}
    import os, sys
    if os.environ.get("FAKE_SYSTEMD_FAIL"):
        sys.exit(print(os.environ["FAKE_SYSTEMD_FAIL"], file=sys.stderr) or 1)
    args = sys.argv[1:]
    command = args[args.index("--") + 1:]
    unit = next(a.split("=", 1)[1] for a in args if a.startswith("--unit="))
    props = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-p")
    path = "/user.slice/user@0.service/app.slice/" + unit
    group = os.environ["FAKE_CGROUP2"] + path
    os.makedirs(group)
    quota = props.get("CPUQuota")
    if os.environ.get("FAKE_SYSTEMD_IGNORES_CPU"):
        quota = None
    cpu = "max" if quota is None else str(int(float(quota.rstrip("%")) * 1000))
    if not os.environ.get("FAKE_SYSTEMD_NO_CPU"):
        open(group + "/cpu.max", "w").write(cpu + " 100000\\n")
    open(group + "/memory.max", "w").write(props.get("MemoryMax", "max") + "\\n")
    open(group + "/cpu.stat", "w").write("usage_usec 0\\n")
    pid_dir = os.environ["FAKE_PROC"] + "/" + str(os.getpid())
    os.makedirs(pid_dir, exist_ok=True)
    open(pid_dir + "/cgroup", "w").write("0::" + path + "\\n")
    os.execvp(command[0], command)
""")


def fake_v1(root: Path, writable: bool = True) -> Host:
    """cgroup v1 with cpu, cpuacct and memory mounted (memory nested as in a container); unwritable:
    the cpu mount point is missing, so no group can be created there."""
    lines = []
    for n, controller in enumerate(("cpu", "cpuacct", "memory")):
        mount = root / "cg" / controller
        if writable or controller != "cpu":
            (mount / ("box" if controller == "memory" else "")).mkdir(parents=True, exist_ok=True)
        lines.append(f"{30 + n} 31 0:{29 + n} / {mount} rw,relatime - cgroup cgroup rw,{controller}")
    return _host(root, lines, "4:memory:/box\n2:cpuacct:/\n1:cpu:/\n")


def fake_v2(root: Path, own_controllers: str = "cpu memory pids", root_controllers: str = "cpu memory pids") -> Host:
    """A pure cgroup v2 machine; this process lives in a group that delegates `own_controllers`."""
    mount = root / "cg2"
    own = "/user.slice/user@0.service/app.slice/notebook.scope"
    (mount / own.lstrip("/")).mkdir(parents=True)
    (mount / "cgroup.controllers").write_text(root_controllers + "\n")
    (mount / own.lstrip("/") / "cgroup.controllers").write_text(own_controllers + "\n")
    return _host(root, [f"41 31 0:38 / {mount} rw,relatime - cgroup2 cgroup2 rw"], f"0::{own}\n")


def _host(root: Path, mountinfo: list[str], cgroup: str) -> Host:
    (root / "proc" / "self").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "self" / "mountinfo").write_text("\n".join(mountinfo) + "\n")
    (root / "proc" / "self" / "cgroup").write_text(cgroup)
    return Host(proc=root / "proc", platform="linux")


def install_fake_systemd_run(root: Path, monkeypatch) -> None:
    """Put the fake systemd-run first on PATH, writing into `root`'s fake cgroup v2 tree and /proc."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemd-run"
    script.write_text(FAKE_SYSTEMD_RUN)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CGROUP2", str(root / "cg2"))
    monkeypatch.setenv("FAKE_PROC", str(root / "proc"))


SPINNER = "import os\nos.fork()\nwhile True: pass\n"  # two busy processes: can use two cores


def start_spinner() -> subprocess.Popen:
    """A process tree of two spinning processes, in a session (process group) of its own."""
    return subprocess.Popen([sys.executable, "-c", SPINNER], start_new_session=True)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and its children as psutil reads them (independent of servelab.limits)."""
    return sum(t.user + t.system for t in (p.cpu_times() for p in tree(pid)))


def stop_spinner(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


LEARNER = "servelab-learner"  # the unprivileged user the tests run labs and pods as (created when we are root)


def ensure_user(user: str = LEARNER) -> str:
    """Create `user` (a home, no password) when we are root and it does not exist; "" or why it cannot be."""
    import pwd
    import shutil

    try:
        pwd.getpwnam(user)
        return ""
    except KeyError:
        pass
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        return f"no unprivileged user {user!r} here, and no root or useradd to create one"
    done = subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], capture_output=True, text=True)
    return "" if done.returncode == 0 else f"useradd {user} failed: {done.stderr.strip()}"


def learner_python(user: str = LEARNER) -> tuple[str, str]:
    """(a Python the unprivileged `user` may run with this checkout's packages, or "", and why not).

    The venv's own Python may sit where `user` cannot read (under /root); a system Python of the
    same version reads the same packages (same ABI) through PYTHONPATH (see `as_user`)."""
    import shutil

    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "", "needs root and runuser to run a command as another user"
    why_not = ensure_user(user)
    if why_not:
        return "", why_not
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, shutil.which(version), f"/usr/bin/{version}"):
        if python and subprocess.run(["runuser", "-u", user, "--", python, "-c", ""], capture_output=True).returncode == 0:
            return python, ""
    return "", f"no {version} that {user!r} may run (this venv's is {sys.executable})"


def as_user(user: str, python: str, args: list[str], env: dict[str, str]) -> list[str]:
    """argv running `python args` as `user`, with this checkout and its packages importable, `env`
    set and SERVELAB_LIMITS unset (the user gets the ladder the machine gives it). A PYTHONPATH in
    `env` comes after the checkout's and the packages'."""
    root = Path(__file__).resolve().parents[1]
    site = next(p for p in sys.path if p.endswith("site-packages"))
    paths = os.pathsep.join(filter(None, [str(root), site, env.get("PYTHONPATH")]))
    assignments = [f"{k}={v}" for k, v in {**env, "PYTHONPATH": paths}.items()]
    return ["runuser", "-u", user, "--", "env", "-u", "SERVELAB_LIMITS", *assignments, python, *args]
