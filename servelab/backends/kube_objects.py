"""Reading Kubernetes API objects (as JSON) into what the labs show: kubectl's pod columns,
HPA status, and the timeline events a pod's successive states imply.

Pure functions of the objects and a clock, so they are tested without a cluster; kube.py
feeds them from the API and its watches.
"""

from __future__ import annotations

from datetime import datetime

from servelab.backends import base
from servelab.core.manifests import quantity


def age_s(timestamp: str | None, now: float) -> float:
    """Seconds since an API timestamp (0 when the object has none yet)."""
    return now - unix_time(timestamp) if timestamp else 0.0


def unix_time(timestamp: str) -> float:
    """An API timestamp (RFC 3339, Z for UTC) as Unix seconds."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _cores(value: str | None, field: str) -> float | None:
    return None if value is None else float(quantity(value, field))


def _gib(value: str | None, field: str) -> float | None:
    return None if value is None else float(quantity(value, field)) / 2**30


def pod_status(pod: dict) -> str:
    """The STATUS column as kubectl computes it for a pod (the common cases)."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status", {})
    reason = status.get("reason") or status.get("phase", "Unknown")
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state", {})
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            done = state["terminated"]
            reason = done.get("reason") or (f"Signal:{done['signal']}" if done.get("signal")
                                            else f"ExitCode:{done.get('exitCode', 0)}")
    return reason


def _container_ready(pod: dict) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all(c.get("ready") for c in statuses)


def pod_info(pod: dict, now: float, usage: dict[str, float] | None = None) -> base.PodInfo:
    """A pod object (as JSON) -> PodInfo with kubectl's columns and its first container's resources."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    container = (spec.get("containers") or [{}])[0]
    resources = container.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    port = next((p["containerPort"] for p in container.get("ports", [])), None)
    ip = status.get("podIP")
    statuses = status.get("containerStatuses") or []
    finished = [c["lastState"]["terminated"].get("finishedAt") for c in statuses
                if c.get("lastState", {}).get("terminated", {}).get("finishedAt")]
    owner = next((o["name"] for o in meta.get("ownerReferences", []) if o.get("kind") == "ReplicaSet"), None)
    return base.PodInfo(
        name=meta["name"],
        ready=_container_ready(pod) and not meta.get("deletionTimestamp"),
        status=pod_status(pod),
        restarts=sum(c.get("restartCount", 0) for c in statuses),
        age_s=age_s(meta.get("creationTimestamp"), now),
        url=f"http://{ip}:{port}" if ip and port else None,
        ip=ip,
        port=port,
        deployment=owner.rsplit("-", 1)[0] if owner else None,
        cpu_request_cores=_cores(requests.get("cpu"), "resources.requests.cpu") or 0.0,
        cpu_limit_cores=_cores(limits.get("cpu"), "resources.limits.cpu"),
        memory_request_gib=_gib(requests.get("memory"), "resources.requests.memory") or 0.0,
        memory_limit_gib=_gib(limits.get("memory"), "resources.limits.memory"),
        cpu_usage_cores=(usage or {}).get(meta["name"]),
        last_restart_age_s=age_s(max(finished), now) if finished else None,
        labels=meta.get("labels") or {},
    )


def hpa_info(hpa: dict, now: float) -> base.HPAInfo:
    """An autoscaling/v2 HPA -> HPAInfo; utilization None is kubectl's <unknown>."""
    spec, status = hpa["spec"], hpa.get("status", {})
    target = next((m["resource"]["target"].get("averageUtilization") for m in spec.get("metrics", [])
                   if m["type"] == "Resource" and m["resource"]["name"] == "cpu"), None)
    current = next((m["resource"]["current"].get("averageUtilization") for m in status.get("currentMetrics") or []
                    if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"), None)
    ref = spec["scaleTargetRef"]
    return base.HPAInfo(
        name=hpa["metadata"]["name"],
        reference=f"{ref['kind']}/{ref['name']}",
        utilization_pct=None if current is None else float(current),
        target_pct=float(target or 0),
        min_replicas=spec.get("minReplicas", 1),
        max_replicas=spec["maxReplicas"],
        replicas=status.get("currentReplicas", 0),
        age_s=age_s(hpa["metadata"].get("creationTimestamp"), now),
    )


class PodTracker:
    """Turns successive states of pods (from a watch) into timeline events."""

    def __init__(self) -> None:
        self.seen: dict[str, dict] = {}

    def observe(self, kind: str, pod: dict) -> list[tuple[str, str, dict]]:
        """(event kind, message, data) for what changed in this pod since the last state seen."""
        name = pod["metadata"]["name"]
        before = self.seen.get(name)
        if kind == "DELETED":
            self.seen.pop(name, None)
            return [(base.POD_GONE, "deleted", {})]
        self.seen[name] = pod
        out = []
        if before is None:
            out.append((base.POD_CREATED, "scheduled" if pod.get("spec", {}).get("nodeName") else "created", {}))
            before = {"metadata": {}, "status": {}}
        was_running = before["status"].get("phase") == "Running"
        if pod.get("status", {}).get("phase") == "Running" and not was_running:
            out.append((base.POD_RUNNING, "container started", {}))
        restarts = sum(c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses") or [])
        restarts_before = sum(c.get("restartCount", 0) for c in before["status"].get("containerStatuses") or [])
        if restarts > restarts_before:
            last = next((c["lastState"]["terminated"] for c in pod["status"]["containerStatuses"]
                         if c.get("lastState", {}).get("terminated")), {})
            out.append((base.POD_EXITED, f"container exited ({last.get('reason', 'unknown')})",
                        {"exit_code": last.get("exitCode"), "signal": last.get("signal")}))
            out.append((base.POD_RESTARTED, f"restart {restarts}", {"restarts": restarts}))
        ready, was_ready = _container_ready(pod), _container_ready(before)
        if ready and not was_ready:
            out.append((base.POD_READY, "readiness probe passed", {}))
        elif was_ready and not ready:
            out.append((base.POD_NOT_READY, "readiness lost", {}))
        if pod["metadata"].get("deletionTimestamp") and not before["metadata"].get("deletionTimestamp"):
            out.append((base.POD_TERMINATING, "deleted: preStop, then SIGTERM", {}))
        return out
