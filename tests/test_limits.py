"""The ladder's decisions: which rung holds a pod, checked against fake /proc + cgroup trees, and
what a run records when pods are held by one rung, by several, or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from limits_fixtures import fake_v1, fake_v2, install_fake_systemd_run

from servelab import limits
from servelab.limits import cgroup, ladder, user_scope
from servelab.limits.cgroupfs import Host
from servelab.limits.cpuclock import descendants
from servelab.limits.slower_cpu import SlowerCpu

MiB = 2**20


def test_cgroup_v1_writes_the_limits_and_counts_a_process_in_only_when_the_kernel_shows_it(tmp_path):
    host = fake_v1(tmp_path)
    support = cgroup.detect(host)
    assert support.version == 1 and not support.reason
    held = cgroup.CgroupHeld(support, "pod-a", 0.5, 256 * MiB)
    assert held.rung == "cgroup-v1" and not held.problem
    cpu = support.dirs["cpu"] / "pod-a"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000" and (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (tmp_path / "cg/memory/box" / f"servelab-{os.getpid()}" / "pod-a" / "memory.limit_in_bytes").read_text() \
        == str(256 * MiB)
    pid = os.getpid()  # only fake files are written: any live pid will do
    (host.proc / str(pid)).mkdir()
    (host.proc / str(pid) / "cgroup").write_text("4:memory:/box\n2:cpuacct:/\n1:cpu:/\n")  # the kernel did not move it
    assert "not in its cpu/cpuacct/memory cgroup" in held.add(pid)
    assert (cpu / "cgroup.procs").read_text() == str(pid)

    moved = cgroup.CgroupHeld(support, "pod-b", 1.0, None)
    group = f"/servelab-{pid}/pod-b"
    (host.proc / str(pid) / "cgroup").write_text(f"4:memory:/box{group}\n2:cpuacct:{group}\n1:cpu:{group}\n")
    assert moved.add(pid) == "" and moved.held
    (support.dirs["cpuacct"] / "pod-b" / "cpuacct.usage").write_text("1500000000")
    assert moved.cpu_used_s() == 1.5, "a pod's CPU is the group's own counter"


def test_cgroup_v2_needs_cpu_and_memory_delegated_to_our_group(tmp_path):
    support = cgroup.detect(fake_v2(tmp_path / "ok"))
    assert support.version == 2
    assert (support.dirs["unified"] / "cgroup.subtree_control").read_text() == "+cpu +memory"
    held = cgroup.CgroupHeld(support, "pod", 0.25, 128 * MiB)
    assert held.rung == "cgroup-v2" and not held.problem
    assert (support.dirs["unified"] / "pod" / "cpu.max").read_text() == "25000 100000"
    (support.dirs["unified"] / "pod" / "cpu.stat").write_text("usage_usec 250000\nuser_usec 1\n")
    assert held.add(os.getpid()) == "" and held.cpu_used_s() == 0.25

    refused = cgroup.detect(fake_v2(tmp_path / "no", own_controllers="memory pids"))
    assert refused.version is None and "does not delegate cpu and memory (has: memory pids)" in refused.reason


def test_a_limit_the_kernel_does_not_keep_is_not_counted_as_held(tmp_path, monkeypatch):
    support = cgroup.detect(fake_v2(tmp_path))
    monkeypatch.setattr(limits.cgroupfs, "write", lambda path, value: "")  # the write "succeeds" but changes nothing
    (support.dirs["unified"] / "pod").mkdir()
    (support.dirs["unified"] / "pod" / "cpu.max").write_text("max 100000\n")
    held = cgroup.CgroupHeld(support, "pod", 0.5, None)
    assert "reads back 'max 100000', not '50000 100000'" in held.problem and not held.held


def test_the_ladder_takes_the_best_rung_and_says_why_better_ones_were_passed(tmp_path, monkeypatch):
    monkeypatch.delenv("SERVELAB_LIMITS", raising=False)
    best = limits.detect(host=fake_v1(tmp_path / "root"))
    assert best.rung == "cgroup-v1" and best.available == ["cgroup", "userspace"]
    assert "user-scope" not in best.tried, "no manager is asked when a cgroup can be written"

    unprivileged = limits.detect(host=fake_v1(tmp_path / "user", writable=False))
    assert unprivileged.rung == "userspace"
    assert "cannot create cgroup" in unprivileged.tried["cgroup"]
    assert unprivileged.tried["user-scope"] == "cgroup v2 is not mounted"
    assert "stops and continues each pod" in unprivileged.note() and "cannot create cgroup" in unprivileged.note()
    assert "memory limits are not held" in unprivileged.note()


def test_a_forced_rung_is_the_only_one_tried_and_its_absence_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVELAB_LIMITS", "userspace")
    forced = limits.detect(host=fake_v1(tmp_path / "a"))
    assert forced.available == ["userspace"] and forced.rung == "userspace"

    missing = limits.detect(prefer="cgroup", host=fake_v1(tmp_path / "b", writable=False))
    assert missing.rung is None and missing.available == []
    assert missing.reason.startswith("SERVELAB_LIMITS=cgroup asked for the cgroup rung, which is not available here: "
                                     "cannot create cgroup")
    held = missing.hold("pod", 0.5, None)
    assert held.rung is None and not held.held and held.problem == missing.reason
    assert missing.summary({"pod": held}) == (False, "CPU/memory limits NOT enforced for 1 of 1 pods "
                                                     f"(pod: {missing.reason})")

    none = limits.detect(prefer="none")
    assert none.rung is None and none.summary({}) == (False, "CPU/memory limits are NOT enforced "
                                                             "(SERVELAB_LIMITS=none: no rung was tried)")
    monkeypatch.setenv("SERVELAB_LIMITS", "cgroups")
    with pytest.raises(ValueError, match="one of cgroup, user-scope, userspace, none, not 'cgroups'"):
        limits.detect()


def test_with_no_rung_at_all_limits_are_false_with_every_reason(monkeypatch):
    monkeypatch.delenv("SERVELAB_LIMITS", raising=False)
    monkeypatch.setattr(ladder, "_userspace_problem", lambda: "this system (win32) has no SIGSTOP/SIGCONT")
    nothing = limits.detect(host=Host(platform="win32"))
    assert nothing.rung is None
    assert nothing.reason == ("cgroup: cgroups exist only on Linux (this is win32); "
                              "user-scope: systemd scopes exist only on Linux (this is win32); "
                              "userspace: this system (win32) has no SIGSTOP/SIGCONT")
    enforced, note = nothing.summary({})
    assert enforced is False and nothing.reason in note


def test_a_pod_no_rung_holds_is_still_measured_by_its_process_trees_cpu():
    held = limits.detect(prefer="none").hold("pod", 0.5, None)
    busy = subprocess.Popen(["python3", "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
                                              "time.sleep(30)"])
    try:
        held.add(busy.pid)
        deadline = time.monotonic() + 20
        while held.cpu_used_s() < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.cpu_used_s() >= 0.3
    finally:
        busy.kill()
        busy.wait()
    assert held.cpu_used_s() >= 0.3, "an exited process keeps the CPU it was last seen with"


def test_run_summary_names_the_shared_rung_mixed_rungs_and_unheld_pods(tmp_path):
    ladder_ = limits.detect(prefer="cgroup", host=fake_v1(tmp_path))
    on_cgroup = [ladder_.hold(name, 0.5, None) for name in ("a", "b")]
    assert ladder_.summary(dict(zip("ab", on_cgroup)))[0] == "cgroup-v1"
    on_userspace = limits.Held()
    on_userspace.rung = "userspace"
    enforced, note = ladder_.summary({"a": on_cgroup[0], "c": on_userspace})
    assert enforced == "cgroup-v1+userspace" and note == "pods were held by different rungs: a by cgroup-v1, c by userspace"
    enforced, note = ladder_.summary({"a": on_cgroup[0], "d": limits.Held("no room")})
    assert enforced is False and note == "CPU/memory limits NOT enforced for 1 of 2 pods (d: no room)"


def test_user_scope_starts_the_pod_in_a_limited_scope_and_checks_what_the_kernel_holds(tmp_path, monkeypatch):
    monkeypatch.delenv("SERVELAB_LIMITS", raising=False)
    host = fake_v2(tmp_path, own_controllers="memory pids")  # a user session: no cpu delegated to its own group
    install_fake_systemd_run(tmp_path, monkeypatch)
    ladder_ = limits.detect(host=host)
    assert ladder_.rung == "user-scope" and "does not delegate cpu" in ladder_.tried["cgroup"], ladder_.tried
    held = ladder_.hold("pod-a", 0.25, 128 * MiB)
    argv = held.command(["sleep", "30"])
    unit = next(a for a in argv if a.startswith("--unit=")).removeprefix("--unit=")
    assert unit.startswith(f"servelab-{os.getpid()}-pod-a-") and unit.endswith(".scope")
    assert argv[:5] == [argv[0], "--user", "--scope", "--quiet", "--collect"] and argv[-3:] == ["--", "sleep", "30"]
    assert ["-p", "CPUQuota=25%", "-p", f"MemoryMax={128 * MiB}"] == argv[argv.index("--") - 4:argv.index("--")]
    process = subprocess.Popen(argv)
    try:
        assert held.add(process.pid) == "" and held.held
        scope = tmp_path / "cg2/user.slice/user@0.service/app.slice" / unit
        (scope / "cpu.stat").write_text("usage_usec 750000\n")
        assert held.cpu_used_s() == 0.75, "a pod's CPU is its scope's own counter"
    finally:
        process.kill()
        process.wait()
    late = ladder_.hold("pod-b", 0.25, None)
    assert "was not started with this pod's command(): it cannot join a scope afterwards" in late.add(os.getpid())
    ladder_.close()


def test_user_scope_is_passed_when_the_manager_does_not_answer_or_ignores_the_cpu_limit(tmp_path, monkeypatch):
    install_fake_systemd_run(tmp_path, monkeypatch)
    host = fake_v2(tmp_path, own_controllers="memory pids")
    monkeypatch.setenv("FAKE_SYSTEMD_FAIL", "Failed to connect to bus: No medium found")
    problem = user_scope.probe(host)
    assert problem.startswith("the user's systemd manager did not give a limited scope: process")
    assert problem.endswith("(Failed to connect to bus: No medium found)")
    monkeypatch.delenv("FAKE_SYSTEMD_FAIL")
    monkeypatch.setenv("FAKE_SYSTEMD_IGNORES_CPU", "1")
    assert "cpu.max reads back 'max 100000', not '50000 100000'" in user_scope.probe(host)
    monkeypatch.setenv("FAKE_SYSTEMD_NO_CPU", "1")
    assert user_scope.probe(host).endswith("(the cpu controller is not delegated to the user's manager "
                                           "(see Delegate= of user@.service))")
    assert user_scope.unavailable(fake_v2(tmp_path / "hybrid", root_controllers="hugetlb")).startswith(
        "cgroup v2 is mounted without the cpu controller")


def test_a_slower_cpu_makes_each_call_last_its_back_to_back_cpu_time_over_the_share():
    def spin(seconds: float = 0.004) -> None:
        started = time.process_time()
        while time.process_time() - started < seconds:
            pass

    device = SlowerCpu(0.25)
    with pytest.raises(RuntimeError, match=r"calibrate\(call\) first"):
        device.__enter__()
    assert device.calibrate(spin) >= 0.004
    started = time.perf_counter()
    with device:
        spin()
    assert time.perf_counter() - started >= device.call_cpu_s / 0.25, "the call lasted its CPU time over the share"
    started = time.perf_counter()
    with device:
        spin(0.05)  # longer than the slower CPU's time for a call: not made longer still
    assert time.perf_counter() - started < 0.05 + device.call_cpu_s / 0.25
    assert "4x slower" in device.describe() and f"so {device.call_cpu_s / 0.25 * 1000:.3g} ms each" in device.describe()
    with pytest.raises(ValueError, match=r"must be in \(0, 1\], not 2"):
        SlowerCpu(2)


def test_a_shorter_period_is_written_where_each_rung_keeps_it(tmp_path):
    """The local backend holds an emulated slower pod over a shorter period; each rung must keep it."""
    v1 = cgroup.detect(fake_v1(tmp_path / "v1"))
    cgroup.CgroupHeld(v1, "pod", 0.1665, None, period_s=0.06)
    assert (v1.dirs["cpu"] / "pod" / "cpu.cfs_period_us").read_text() == "60000"
    assert (v1.dirs["cpu"] / "pod" / "cpu.cfs_quota_us").read_text() == "9990"
    v2 = cgroup.detect(fake_v2(tmp_path / "v2"))
    cgroup.CgroupHeld(v2, "pod", 0.5, None, period_s=0.02)
    assert (v2.dirs["unified"] / "pod" / "cpu.max").read_text() == "10000 20000"
    scoped = user_scope.scope_command("systemd-run", "u.scope", 0.5, None, ["true"], period_s=0.02)
    assert "CPUQuotaPeriodSec=20ms" in scoped and "CPUQuota=50%" in scoped
    assert not any("CPUQuotaPeriodSec" in a for a in user_scope.scope_command("systemd-run", "u.scope", 0.5, None, ["true"]))


def test_a_process_that_forked_before_it_was_added_joins_its_group_with_its_child():
    """The kernel moves only the pid written to cgroup.procs: a child forked earlier must be moved too,
    or it runs outside the limit (the quota bench once saw 1.99 cores held at 1.0)."""
    support = cgroup.detect()
    if support.version is None:
        pytest.skip(f"no writable cgroup on this machine: {support.reason}")
    held = cgroup.CgroupHeld(support, "forked-early", 0.5, None)
    parent = subprocess.Popen([sys.executable, "-c", "import os, time\nos.fork()\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while not descendants(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        (child,) = descendants(parent.pid)
        assert held.add(parent.pid) == ""
        for pid in (parent.pid, child):
            paths = support.host.cgroup_paths(pid)
            assert all(str(d).endswith(paths[c]) for c, d in held.dirs.items()), (pid, paths)
    finally:
        for pid in descendants(parent.pid):
            os.kill(pid, 9)
        parent.kill()
        parent.wait()
        time.sleep(0.1)  # the reaped child leaves its group before the group is removed
        held.remove()
        cgroup.remove_parent(support)
