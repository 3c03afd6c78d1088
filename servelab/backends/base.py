"""The one interface every lab talks to: a `Cluster`, whether embedded (local) or real (kube).

Both backends return the same plain dataclasses, so a lab never branches on which one it got,
and they record the same timeline of events, so plots and cost work on either.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Event kinds of the timeline (Event.kind). Both backends emit these names and no others.
POD_CREATED = "pod-created"  # a pod object exists (Pending)
POD_UNSCHEDULABLE = "pod-unschedulable"  # no node has room for its requests: it stays Pending (message: why)
POD_RUNNING = "pod-running"  # its container started (Running, not yet Ready)
POD_READY = "pod-ready"  # readiness probe passed: the Service routes to it
POD_NOT_READY = "pod-not-ready"  # readiness lost while running: the Service stops routing to it
POD_EXITED = "pod-exited"  # the container exited or was killed (data: exit_code, signal)
POD_RESTARTED = "pod-restarted"  # the container was started again (data: restarts, backoff_s)
POD_TERMINATING = "pod-terminating"  # deleted: out of the Service, preStop then SIGTERM
POD_GONE = "pod-gone"  # the pod no longer exists
SCALED = "scaled"  # a deployment's desired replicas changed (data: old, new, by)
HPA_DECISION = "hpa-decision"  # one HPA sync (data: utilization_pct, target_pct, current, desired, ...)
EVENT_KINDS = (
    POD_CREATED, POD_UNSCHEDULABLE, POD_RUNNING, POD_READY, POD_NOT_READY, POD_EXITED, POD_RESTARTED,
    POD_TERMINATING, POD_GONE, SCALED, HPA_DECISION,
)


@dataclass
class PodInfo:
    """One pod as `kubectl get pods` sees it, plus what a lab needs to reach and cost it."""

    name: str
    ready: bool
    status: str  # Pending, Running, Terminating, Error, Completed, CrashLoopBackOff
    restarts: int
    age_s: float
    url: str | None  # base URL of the pod itself, bypassing the Service (http://IP:PORT)
    ip: str | None = None
    port: int | None = None
    deployment: str | None = None
    cpu_request_cores: float = 0.0
    cpu_limit_cores: float | None = None
    memory_request_gib: float = 0.0
    memory_limit_gib: float | None = None
    cpu_usage_cores: float | None = None  # as metrics-server reports it (rate over a window)
    cpu_used_core_s: float | None = None  # CPU seconds used since the pod was created, if known
    last_restart_age_s: float | None = None  # for kubectl's "RESTARTS  1 (5s ago)"
    labels: dict[str, str] = field(default_factory=dict)
    pid: int | None = None  # local backend only
    pending_reason: str | None = None  # why it is not scheduled, in the scheduler's words ("0/1 nodes are ...")


@dataclass
class DeploymentInfo:
    """`kubectl get deployment`: NAME READY UP-TO-DATE AVAILABLE AGE."""

    name: str
    replicas: int  # desired
    ready: int
    up_to_date: int
    available: int
    age_s: float
    selector: dict[str, str] = field(default_factory=dict)


@dataclass
class ServiceInfo:
    """`kubectl get svc`: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE, plus the URL a lab uses."""

    name: str
    type: str
    cluster_ip: str
    external_ip: str | None
    ports: str  # as kubectl prints it, e.g. "8501:30501/TCP"
    age_s: float
    url: str  # where this machine reaches it, e.g. http://127.0.0.1:8501
    endpoints: list[str] = field(default_factory=list)  # ready pod addresses behind it


@dataclass
class HPAInfo:
    """`kubectl get hpa`: NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE."""

    name: str
    reference: str  # "Deployment/model-serving-deployment"
    utilization_pct: float | None  # current average CPU utilization; None = <unknown>
    target_pct: float
    min_replicas: int
    max_replicas: int
    replicas: int
    age_s: float


@dataclass
class Event:
    """One thing that happened, at `t_s` seconds since the cluster object was created."""

    t_s: float
    kind: str  # one of EVENT_KINDS
    object: str  # e.g. "pod/model-serving-deployment-6b9f7c8d4-x7k2p"
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    unix_s: float = 0.0  # wall clock, to align with a load run's timestamps


@dataclass
class RunMetadata:
    """What a measurement ran on, written by either backend and kept in a load result's `meta` as `to_dict()`.

    `pods` are dicts shaped like servelab.core.cost.PodUsage (name, start_s, end_s, cpu_request_cores,
    memory_request_gib, cpu_used_core_s), times in unix seconds. The last four fields are known to one
    backend only (context: kube; service_mode, services, cpu_scale: local); left None by the other, they
    are left out of the dict, so a result never claims what its backend did not measure (a load run
    looks for "services" to label a run by the Service's round trip).
    """

    backend: str
    replicas: int
    ready_replicas: int
    cpu_request_cores: float | None
    cpu_limit_cores: float | None
    memory_request_gib: float | None
    memory_limit_gib: float | None
    limits_enforced: str | bool  # the limits' rung ("cgroup-v2", ...), True on a kubelet, False when not held
    limits_note: str
    cpu_count: int | None
    pods: list[dict[str, Any]] = field(default_factory=list)
    context: str | None = None
    service_mode: str | None = None
    services: list[dict[str, Any]] | None = None
    cpu_scale: float | None = None

    _ONE_BACKEND = ("context", "service_mode", "services", "cpu_scale")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k not in self._ONE_BACKEND}

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> RunMetadata:
        """The record back from a result's `meta`, which also holds the load run's own keys (ignored here)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in meta.items() if k in names})


def events_frame(events: list[Event]) -> pd.DataFrame:
    """Events as a tidy DataFrame: t_s, unix_s, kind, object, message, then one column per data key."""
    import pandas as pd

    rows = [{**{k: v for k, v in asdict(e).items() if k != "data"}, **e.data} for e in events]
    columns = ["t_s", "unix_s", "kind", "object", "message"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return frame[columns + [c for c in frame.columns if c not in columns]]


class Cluster(abc.ABC):
    """A place that runs the manifests in `cluster/`: apply, observe, scale, measure, clean up.

    `backend` is "local" or "kube". Every method that prints (kubectl) also returns the text.
    """

    backend: str = ""

    @abc.abstractmethod
    def apply(self, source: str | Path | dict | list) -> list[str]:
        """Create or update objects from a YAML file (multi-document), YAML text, a dict or a list.

        Returns kubectl's confirmation lines, e.g. "deployment.apps/model-serving-deployment created".
        """

    @abc.abstractmethod
    def delete(self, source_or_kind: str | Path | dict | list, name: str | None = None) -> list[str]:
        """Delete what a manifest describes, or `delete("deployment", "NAME")`. Returns confirmations."""

    @abc.abstractmethod
    def pods(self, selector: dict[str, str] | None = None) -> list[PodInfo]:
        """Pods (including terminating ones), optionally only those matching label `selector`."""

    @abc.abstractmethod
    def deployments(self) -> list[DeploymentInfo]: ...

    @abc.abstractmethod
    def services(self) -> list[ServiceInfo]: ...

    @abc.abstractmethod
    def hpas(self) -> list[HPAInfo]: ...

    @abc.abstractmethod
    def scale(self, deployment: str, replicas: int) -> str:
        """Set desired replicas; returns "deployment.apps/NAME scaled". Does not wait."""

    @abc.abstractmethod
    def wait_ready(self, deployment: str, replicas: int | None = None, timeout: float = 60) -> float:
        """Block until `replicas` (default: desired) pods of the current template are Ready and
        no other pod of the deployment is still running (terminating ones may linger, as in
        `kubectl rollout status`).

        Returns the seconds it took; raises TimeoutError saying what was still missing.
        """

    @abc.abstractmethod
    def service_url(self, name: str = "model-serving") -> str:
        """Base URL of a Service as reached from this machine (http://127.0.0.1:8501 by default)."""

    @abc.abstractmethod
    def events(self) -> list[Event]:
        """Everything recorded so far, oldest first."""

    def timeline(self) -> pd.DataFrame:
        """The events as a pandas DataFrame (t_s, unix_s, kind, object, message, data columns)."""
        return events_frame(self.events())

    @abc.abstractmethod
    def kubectl(self, command: str) -> str:
        """Run a kubectl command line (without the word kubectl); print and return its output."""

    @abc.abstractmethod
    def run_metadata(self, start_unix_s: float | None = None, end_unix_s: float | None = None) -> dict:
        """What a measurement ran on: a `RunMetadata` as its `to_dict()`.

        When a window is given, each pod's life is clipped to it (pods outside it are left out).
        """

    def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Poll `condition` until it holds; a cluster changes on its own clock, so there is no event to await.

        The condition's docstring, if it has one, names what was awaited in the timeout's message.
        """
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"still not true after {timeout_s:g} s: {condition.__doc__ or 'see the cell'}")
            time.sleep(0.2)

    def wait_idle(self, timeout_s: float = 60, busy_cores: float = 0.05, every_s: float = 0.5) -> None:
        """Wait until no pod burns more than `busy_cores` of CPU, so one run's backlog never leaks into the next.

        A pod overloaded by a run keeps working through the requests queued in it after the load
        generator has given up on them; the next run would find it busy, and measure that. Where
        pods' CPU counters are not known (a real cluster's metrics arrive every 15 s), this waits
        one metrics window instead.
        """
        def used() -> dict[str, float | None]:
            return {pod.name: pod.cpu_used_core_s for pod in self.pods()}

        before, deadline = used(), time.monotonic() + timeout_s
        if any(v is None for v in before.values()):
            time.sleep(min(timeout_s, 15.0))
            return
        while time.monotonic() < deadline:
            time.sleep(every_s)
            now = used()
            if all(now[name] - before.get(name, now[name]) <= busy_cores * every_s for name in now):
                return
            before = now
        raise TimeoutError(f"pods still busy after {timeout_s:g} s: {sorted(before)}")

    def roll_out(self, manifest: dict, timeout_s: float = 120) -> list[str]:
        """Apply a changed Deployment and wait until only its new pods are left, all Ready.

        Waiting for the old pods to be gone, not just for a new one to be Ready, keeps a
        terminating pod from being billed to (and competing for CPU with) the next measurement.
        """
        old = {pod.name for pod in self.pods()}
        lines = self.apply(manifest)
        replicas = manifest["spec"].get("replicas", 1)

        def rolled_out() -> bool:
            """only the new pods are left, all Ready"""
            pods = self.pods()
            return len(pods) == replicas and all(pod.ready and pod.name not in old for pod in pods)

        if not all(line.endswith("unchanged") for line in lines):
            self.wait_until(rolled_out, timeout_s)
        return lines

    def service_cpu_s(self) -> float | None:
        """CPU seconds the Services' forwarding has used on this machine so far, where it runs here.

        None on a real cluster: kube-proxy forwards inside each node's kernel, not on this machine.
        """
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Stop everything this object started. Safe to call twice."""

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
