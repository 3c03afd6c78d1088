"""What this machine holds as one node, read as a scheduler would see it (issue 12, item 4).

The CPU quota and memory limit cases run a child process inside a cgroup made for the test (root
with a writable cgroup v1 or v2 hierarchy; skipped elsewhere), as a container or JupyterHub would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from servelab.backends.local.node import MAX_PODS, Allocatable, allocatable

GIB = 2**30
PRINT_NODE = ("from servelab.backends.local.node import allocatable; n = allocatable(); "
              "print(n.cpu_cores, n.memory_bytes, n.cpu_source, n.memory_source, sep='|')")


def test_this_machine_as_a_node():
    node = allocatable()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 0 < node.cpu_cores <= cores and 0 < node.memory_bytes <= psutil.virtual_memory().total
    assert node.pods == MAX_PODS == 110
    assert str(node).startswith(f"{node.cpu_cores:g} CPU (")


def test_requests_fit_as_a_scheduler_counts_them():
    node = Allocatable(2.0, 4 * GIB)
    assert node.fits(0.5, 256 * 2**20) == 4, "four pods of 0.5 CPU fill two cores exactly"
    assert node.unschedulable([(0.5, GIB // 2)] * 3, 0.5, GIB // 2) is None
    assert node.unschedulable([(0.5, GIB // 2)] * 4, 0.5, GIB // 2) == "0/1 nodes are available: 1 Insufficient cpu."
    assert node.unschedulable([(0.1, 4 * GIB)], 0.1, 1) == "0/1 nodes are available: 1 Insufficient memory."
    assert node.unschedulable([(2.0, 4 * GIB)], 1.0, GIB) == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.")
    assert node.unschedulable([(0.0, 0)] * 110, 0.0, 0) == "0/1 nodes are available: 1 Too many pods."
    assert node.fits(0.0, 0) == 110, "pods that request nothing are bounded by the pod count only"
    # Requests add up in millicores, as Kubernetes keeps them: three of 333m fit one core.
    assert Allocatable(1.0, GIB).fits(0.333, 0) == 3


def run_in(cgroup_procs: Path | None, code: str, affinity: set[int] | None = None) -> str:
    """Run `code` in a child Python placed in a cgroup (its cgroup.procs file) and/or on CPUs."""
    def place() -> None:
        if cgroup_procs is not None:
            cgroup_procs.write_text(str(os.getpid()))
        if affinity is not None:
            os.sched_setaffinity(0, affinity)

    return subprocess.run([sys.executable, "-c", code], preexec_fn=place, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and at least 2 CPUs")
def test_a_process_pinned_to_one_cpu_sees_one_core():
    cpu, *_ = run_in(None, PRINT_NODE, affinity={min(os.sched_getaffinity(0))}).split("|")
    assert float(cpu) == 1.0


def writable_group(controller: str) -> Path:
    """A new group for `controller` ("cpu" or "memory", v1; or the v2 hierarchy), or skip."""
    v1 = Path("/sys/fs/cgroup") / controller
    candidates = [v1] if (v1 / "cgroup.procs").exists() else []
    v2 = Path("/sys/fs/cgroup")
    if (v2 / "cgroup.subtree_control").exists() and controller in (v2 / "cgroup.subtree_control").read_text().split():
        candidates.append(v2)
    for root in candidates:
        group = root / f"servelab-test-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            return group
        except OSError:
            continue
    pytest.skip(f"no writable cgroup hierarchy with the {controller} controller (needs root)")


def remove_group(group: Path) -> None:
    for child in sorted(group.glob("*/"), reverse=True):
        child.rmdir()
    group.rmdir()


def set_cpu_quota(group: Path, cores: float) -> None:
    if (group / "cpu.max").exists():
        (group / "cpu.max").write_text(f"{int(cores * 100_000)} 100000")
    else:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(int(cores * 100_000)))


def test_a_cpu_quota_on_this_process_or_an_ancestor_group_is_what_a_node_can_promise():
    parent = writable_group("cpu")
    try:
        set_cpu_quota(parent, 1.5)
        child = parent / "leaf"
        child.mkdir()  # no quota of its own: the parent's holds, as a JupyterHub limit on a user's slice
        cpu, _, source, _ = run_in(child / "cgroup.procs", PRINT_NODE).split("|")
        assert float(cpu) == min(1.5, len(os.sched_getaffinity(0)))
        if float(cpu) == 1.5:
            assert source == f"the CPU quota of cgroup {parent}"
        set_cpu_quota(child, 0.5)
        cpu, _, source, _ = run_in(child / "cgroup.procs", PRINT_NODE).split("|")
        assert (float(cpu), source) == (0.5, f"the CPU quota of cgroup {child}")
    finally:
        remove_group(parent)


def test_a_memory_limit_on_this_process_group_caps_the_node():
    group = writable_group("memory")
    try:
        limit = group / ("memory.max" if (group / "memory.max").exists() else "memory.limit_in_bytes")
        limit.write_text(str(2 * GIB))
        _, memory, _, source = run_in(group / "cgroup.procs", PRINT_NODE).split("|")
        assert (int(memory), source) == (2 * GIB, f"the memory limit of cgroup {group}")
    finally:
        remove_group(group)
