"""One pod: a model-server process with the kubelet's life cycle around it.

Pending (until the scheduler finds it room: no process, no port) -> Running (process started)
-> Ready (readinessProbe passed) ... and on delete:
out of the Service first, then the preStop hook, SIGTERM, and SIGKILL when
terminationGracePeriodSeconds run out. A container that exits is restarted with kubelet's
back-off (at once, then 10 s, 20 s, ... up to 300 s) and its RESTARTS count grows.
All methods run on the cluster's controller event loop.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from pathlib import Path
from typing import Protocol

from servelab.backends import base
from servelab.backends.local.pod_template import ContainerSpec, Probe
from servelab.backends.local.watchdog import Watchdog
from servelab.core.processes import kill_group, spawn
from servelab.limits import Held
from servelab.load import http

BACKOFF_FIRST_S, BACKOFF_MAX_S, BACKOFF_RESET_S = 10.0, 300.0, 600.0


class Owner(Protocol):
    """What a pod needs from its cluster."""

    watchdog: Watchdog

    def now(self) -> float: ...
    def record(self, kind: str, obj: str, message: str, **data) -> None: ...
    async def endpoints_changed(self) -> None: ...


async def http_ok(port: int, path: str, timeout: float) -> bool:
    """One httpGet probe: True for a 2xx/3xx answer within `timeout`, as the kubelet counts it."""
    try:
        response = await http.get(f"http://127.0.0.1:{port}{path}", timeout)
    except (OSError, asyncio.TimeoutError, ValueError):  # refused, reset, not HTTP, timed out; a path no URL takes
        return False
    return 200 <= response.status < 400


class Pod:
    def __init__(self, owner: Owner, name: str, deployment: str, template_hash: str,
                 spec: ContainerSpec, log_dir: Path):
        self.owner, self.name, self.deployment, self.template_hash = owner, name, deployment, template_hash
        self.spec = spec
        self.port: int | None = None  # given when scheduled, as a pod gets its IP
        self.group: Held | None = None
        self.labels = {**spec.labels, "pod-template-hash": template_hash}
        self.log_path = log_dir / f"{name}.log"
        self.created_s = owner.now()
        self.created_unix = time.time()
        self.scheduled_s: float | None = None
        self.pending_reason: str | None = None  # the scheduler's message while it does not fit
        self.ended_s: float | None = None
        self.ready = False
        self.ready_since_s: float | None = None
        self.status = "Pending"
        self.restarts = 0
        self.last_restart_s: float | None = None
        self.deleting = False
        self.process: asyncio.subprocess.Process | None = None
        self.cpu_samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=4 * 3600)
        self._cpu_last_s = 0.0
        self._task: asyncio.Task | None = None
        self._termination: asyncio.Task | None = None

    @property
    def obj(self) -> str:
        return f"pod/{self.name}"

    def created(self) -> None:
        self.owner.record(base.POD_CREATED, self.obj, "Pending", deployment=self.deployment)

    def unschedulable(self, reason: str) -> None:
        """The scheduler found no room: stay Pending, saying why (once per new reason, as kubectl's events)."""
        if reason != self.pending_reason:
            self.pending_reason = reason
            self.owner.record(base.POD_UNSCHEDULABLE, self.obj, reason, deployment=self.deployment)

    def start(self, port: int, group: Held) -> None:
        """Scheduled: the pod gets its port and its CPU/memory limit, and its container starts."""
        self.port, self.group, self.pending_reason = port, group, None
        self.status = "ContainerCreating"  # as kubectl shows a scheduled pod whose container is not up yet
        self.scheduled_s = self.owner.now()
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- the container loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.0
        while not self.deleting:
            started = self.owner.now()
            exit_code = await self._run_container()
            if self.deleting:
                return
            ran_s = self.owner.now() - started
            if ran_s > BACKOFF_RESET_S:
                backoff = 0.0
            self.status = "Completed" if exit_code == 0 else "Error"
            self.owner.record(base.POD_EXITED, self.obj, f"container exited with code {exit_code}",
                              exit_code=exit_code, restarts=self.restarts)
            if backoff:
                self.status = "CrashLoopBackOff"
                await self._sleep_unless_deleted(backoff)
                if self.deleting:
                    return
            self.restarts += 1
            self.last_restart_s = self.owner.now()
            self.owner.record(base.POD_RESTARTED, self.obj, f"restart {self.restarts} after {backoff:.0f} s back-off",
                              restarts=self.restarts, backoff_s=backoff)
            backoff = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, 2 * backoff))

    async def _run_container(self) -> int:
        """Start the process, probe it while it runs, return its exit code (-N: killed by signal N)."""
        with open(self.log_path, "ab") as log:
            self.process = await spawn(
                self.group.command(self.spec.argv(self.port)),
                env=self._environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        self.owner.watchdog.watch(self.process.pid)
        if self.deleting:  # deleted while it was starting
            kill_group(self.process.pid)
        await asyncio.get_running_loop().run_in_executor(None, self.group.add, self.process.pid)
        held_by = self.group.rung if self.group.held else False
        self.status = "Running"
        self.owner.record(base.POD_RUNNING, self.obj, f"started pid {self.process.pid}; limits held by {held_by or 'nothing'}",
                          pid=self.process.pid, limits_enforced=held_by)
        probes = [asyncio.create_task(self._readiness()), asyncio.create_task(self._liveness())]
        exit_code = await self.process.wait()
        for probe in probes:
            probe.cancel()
        self.owner.watchdog.forget(self.process.pid)
        kill_group(self.process.pid)  # anything the server left behind in its group
        if self.ready:
            await self._set_ready(False, f"container exited with code {exit_code}")
        return exit_code

    def _environment(self) -> dict[str, str]:
        return {**os.environ, **self.spec.environment(self.name)}

    async def _readiness(self) -> None:
        probe = self.spec.readiness
        if probe is None:
            await self._set_ready(True, "no readinessProbe: Ready once started")
            return
        failures = successes = 0
        await asyncio.sleep(probe.initial_delay_s)
        while True:
            if await http_ok(self.port, probe.path, probe.timeout_s):
                successes, failures = successes + 1, 0
                if not self.ready and successes >= probe.success_threshold:
                    await self._set_ready(True, f"readinessProbe GET {probe.path} passed")
            else:
                failures, successes = failures + 1, 0
                if self.ready and failures >= probe.failure_threshold:
                    await self._set_ready(False, f"readinessProbe GET {probe.path} failed {failures} times")
            await asyncio.sleep(probe.period_s)

    async def _liveness(self) -> None:
        probe: Probe | None = self.spec.liveness
        if probe is None:
            return
        failures = 0
        await asyncio.sleep(probe.initial_delay_s)
        while True:
            await asyncio.sleep(probe.period_s)
            failures = 0 if await http_ok(self.port, probe.path, probe.timeout_s) else failures + 1
            if failures >= probe.failure_threshold:
                self.owner.record(base.POD_NOT_READY, self.obj, f"livenessProbe GET {probe.path} failed "
                                  f"{failures} times: killing the container", liveness_failures=failures)
                await self._stop_process(self.spec.grace_period_s)
                return

    async def _set_ready(self, ready: bool, why: str) -> None:
        if self.deleting:
            return  # a terminating pod stays out of the Service whatever its probe says
        self.ready = ready
        self.ready_since_s = self.owner.now() if ready else None
        self.owner.record(base.POD_READY if ready else base.POD_NOT_READY, self.obj, why)
        await self.owner.endpoints_changed()

    async def _sleep_unless_deleted(self, seconds: float) -> None:
        deadline = self.owner.now() + seconds
        while not self.deleting and self.owner.now() < deadline:
            await asyncio.sleep(min(0.2, deadline - self.owner.now()))

    # -- deletion ---------------------------------------------------------------------------------

    def terminate(self, *, closing: bool = False) -> asyncio.Task:
        """Delete the pod (once; later calls return the same task, which the caller may await).

        `closing`: the whole cluster is closing and nothing routes to the pod any more, so its server
        is stopped as Ctrl-C stops it (SIGINT), without the drain delay it keeps for load balancers.
        """
        if self._termination is None:
            self._termination = asyncio.get_running_loop().create_task(self._terminate(closing))
        elif closing and self._alive():
            kill_group(self.process.pid, signal.SIGINT)  # terminating already: skip what is left of its drain
        return self._termination

    async def _terminate(self, closing: bool = False) -> None:
        """As the kubelet does: out of the Service, preStop, SIGTERM, SIGKILL at the deadline."""
        self.deleting = True
        self.ready = False
        if self.scheduled_s is None:  # never ran: nothing to stop, no Service to leave
            self.ended_s, self.status = self.owner.now(), "Gone"
            self.owner.record(base.POD_GONE, self.obj, "deleted while Pending", cpu_used_core_s=0.0)
            return
        self.status = "Terminating"
        grace = self.spec.grace_period_s
        self.owner.record(base.POD_TERMINATING, self.obj, f"removed from Service; grace period {grace:g} s",
                          grace_period_s=grace)
        await self.owner.endpoints_changed()
        deadline = self.owner.now() + grace
        if self.spec.pre_stop and self._alive():
            await self._pre_stop(grace)
        await self._stop_process(max(deadline - self.owner.now(), 2.0 if self.spec.pre_stop else 0.0),
                                 signal.SIGINT if closing else signal.SIGTERM)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample_cpu()
        self.ended_s = self.owner.now()
        self.group.remove()
        self.status = "Gone"
        self.owner.record(base.POD_GONE, self.obj, "deleted", cpu_used_core_s=round(self.cpu_used_s(), 3))

    async def _pre_stop(self, timeout: float) -> None:
        hook = await spawn(self.group.command(self.spec.pre_stop), env=self._environment(), stdin=asyncio.subprocess.DEVNULL,
                           stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.get_running_loop().run_in_executor(None, self.group.add, hook.pid)
        try:
            await asyncio.wait_for(hook.wait(), timeout)
        except asyncio.TimeoutError:
            kill_group(hook.pid)

    async def _stop_process(self, grace: float, sig: signal.Signals = signal.SIGTERM) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        kill_group(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
        except asyncio.TimeoutError:
            self.owner.record(base.POD_EXITED, self.obj, f"still running {grace:g} s after {sig.name}: SIGKILL")
            kill_group(process.pid, signal.SIGKILL)
            await process.wait()

    def _alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    # -- CPU, as metrics-server would report it ----------------------------------------------------

    def sample_cpu(self) -> None:
        """Record cumulative CPU seconds now, from where the pod's limit is held (servelab.limits)."""
        if self.scheduled_s is None:
            return  # a Pending pod has no metrics, as metrics-server has none for it
        self._cpu_last_s = max(self.group.cpu_used_s(), self._cpu_last_s)
        self.cpu_samples.append((self.owner.now(), self._cpu_last_s))

    def cpu_used_s(self) -> float:
        return self._cpu_last_s

    def cpu_usage_cores(self, window_s: float) -> float | None:
        """Average cores used over the last `window_s`, or None until a window has been sampled.

        Like metrics-server, a pod has no CPU metric until two scrapes a window apart exist.
        """
        if len(self.cpu_samples) < 2:
            return None
        t_now, used_now = self.cpu_samples[-1]
        t_then, used_then = next((t, u) for t, u in self.cpu_samples if t >= t_now - window_s - 0.25)
        span = t_now - t_then
        return (used_now - used_then) / span if span >= 0.8 * window_s else None

    def cpu_used_between(self, start_s: float, end_s: float) -> float:
        """CPU seconds used between two times (cluster clock), from the recorded samples."""
        def used_at(t: float) -> float:
            before = [u for ts, u in self.cpu_samples if ts <= t]
            return before[-1] if before else 0.0

        return max(0.0, used_at(end_s) - used_at(start_s))

    def info(self) -> base.PodInfo:
        now = self.owner.now()
        return base.PodInfo(
            name=self.name, ready=self.ready, status=self.status, restarts=self.restarts,
            age_s=now - self.created_s, url=None if self.port is None else f"http://127.0.0.1:{self.port}",
            ip=None if self.port is None else "127.0.0.1", port=self.port, pending_reason=self.pending_reason,
            deployment=self.deployment, cpu_request_cores=self.spec.cpu_request, cpu_limit_cores=self.spec.cpu_limit,
            memory_request_gib=self.spec.memory_request / 2**30,
            memory_limit_gib=None if self.spec.memory_limit is None else self.spec.memory_limit / 2**30,
            cpu_usage_cores=None,
            last_restart_age_s=None if self.last_restart_s is None else now - self.last_restart_s,
            labels=dict(self.labels), pid=self.process.pid if self._alive() else None,
        )
