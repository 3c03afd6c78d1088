"""The userspace rung: an enforcer process holds a busy process tree near its CPU limit with
SIGSTOP/SIGCONT, and however it ends (told to, its owner gone, killed) no process stays stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from limits_fixtures import start_spinner, stop_spinner, tree, tree_cpu_s
from local_fixtures import wait_for

from servelab import limits
from servelab.limits import userspace


def stopped(pid: int) -> bool:
    """Whether every process of the tree (both spinners, once forked) is stopped now."""
    members = tree(pid)
    return len(members) == 2 and all(p.status() == psutil.STATUS_STOPPED for p in members)


def running(pid: int) -> bool:
    return all(p.status() != psutil.STATUS_STOPPED for p in tree(pid))


def test_the_enforcer_holds_a_two_process_spinner_near_its_limit():
    ladder = limits.detect(prefer="userspace")
    held = ladder.hold("spinner", 0.5, None)
    spinner = start_spinner()
    try:
        assert held.add(spinner.pid) == "" and held.rung == "userspace" and held.held
        wait_for(lambda: len(tree(spinner.pid)) == 2, 5, "the spinner to fork")
        time.sleep(0.3)
        counted, independent, started = held.cpu_used_s(), tree_cpu_s(spinner.pid), time.monotonic()
        time.sleep(2.0)
        elapsed = time.monotonic() - started
        counted = (held.cpu_used_s() - counted) / elapsed
        independent = (tree_cpu_s(spinner.pid) - independent) / elapsed
    finally:
        stop_spinner(spinner)
        ladder.close()
    print(f"held to 0.5 CPU: {counted:.3f} cores by the enforcer's count, {independent:.3f} by psutil's")
    # Unheld, two spinners would take up to 2 cores; the bounds are wide so a loaded machine cannot flake them.
    assert 0.25 < counted < 0.75 and 0.25 < independent < 0.75
    assert abs(counted - independent) < 0.1, "the pod's CPU is the number the enforcer acts on, and it is right"


def _freeze_while_stopped(enforcer: int, spinner: int) -> None:
    """Stop the enforcer at a moment it has the spinner stopped, so it cannot continue it itself."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        os.kill(enforcer, signal.SIGSTOP)
        if stopped(spinner):
            return
        os.kill(enforcer, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the enforcer never had the spinner stopped")


def test_when_the_enforcer_is_killed_its_owner_continues_what_it_stopped():
    ladder = limits.detect(prefer="userspace")
    held = ladder.hold("spinner", 0.02, None)
    spinner = start_spinner()
    try:
        assert held.add(spinner.pid) == ""
        _freeze_while_stopped(ladder.enforcer_pid, spinner.pid)
        os.kill(ladder.enforcer_pid, signal.SIGKILL)
        wait_for(lambda: running(spinner.pid), 5, "the owner to continue the spinner")
        assert held.problem.endswith("exited with code -9: limits no longer held") and not held.held
        assert held.cpu_used_s() > 0, "still measured, by the owner's own count"
    finally:
        stop_spinner(spinner)
        ladder.close()


def test_an_enforcer_that_stops_answering_is_replaced_by_its_owner_continuing_the_pods(monkeypatch):
    monkeypatch.setattr(userspace, "ANSWER_TIMEOUT_S", 0.5)
    ladder = limits.detect(prefer="userspace")
    held = ladder.hold("spinner", 0.02, None)
    spinner = start_spinner()
    try:
        assert held.add(spinner.pid) == ""
        _freeze_while_stopped(ladder.enforcer_pid, spinner.pid)  # stuck, with the spinner stopped
        assert held.cpu_used_s() > 0, "measured by the owner's own count meanwhile"
        assert "did not answer within 0.5 s and was stopped" in held.problem
        wait_for(lambda: running(spinner.pid), 5, "the owner to continue the spinner")
    finally:
        stop_spinner(spinner)
        ladder.close()


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGHUP", "end of input"])
def test_the_enforcer_continues_what_it_stopped_before_it_exits(ending):
    enforcer = subprocess.Popen([sys.executable, "-m", "servelab.limits.enforcer"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, bufsize=1)
    spinner = start_spinner()
    try:
        for command in ("hold s 0.02 0.1", f"add s {spinner.pid}"):
            enforcer.stdin.write(command + "\n")
            assert enforcer.stdout.readline() == "ok\n"
        _freeze_while_stopped(enforcer.pid, spinner.pid)
        if ending == "end of input":
            enforcer.stdin.close()
        else:
            os.kill(enforcer.pid, getattr(signal, ending))
        os.kill(enforcer.pid, signal.SIGCONT)
        assert enforcer.wait(10) in (0, 128 + getattr(signal, ending, 0))
        assert running(spinner.pid)
    finally:
        stop_spinner(spinner)
        enforcer.kill()
        enforcer.wait()


def test_the_enforcer_answers_clearly_about_what_it_does_not_hold():
    ladder = limits.detect(prefer="userspace")
    held = ladder.hold("gone", 0.5, None)
    finished = subprocess.Popen(["true"], start_new_session=True)
    finished.wait()
    try:
        assert held.add(finished.pid) == "", "a process that is already over leaves nothing to hold"
        assert ladder._enforcer.call("usage nobody") == "error nothing held as 'nobody'"
        assert ladder._enforcer.call("stop x") == "error nothing held as 'x'"
    finally:
        ladder.close()
