"""Tables printed exactly as kubectl prints them, so a lab's output reads the same on both backends.

Column layout follows kubectl's tabwriter (minimum cell width 6, padding 3, left aligned) and AGE
follows k8s.io/apimachinery/pkg/util/duration.HumanDuration (30s, 119s, 2m5s, 10m, 5h30m, 2d3h).
"""

from __future__ import annotations

from collections.abc import Sequence

from servelab.backends import base
from servelab.backends.base import DeploymentInfo, HPAInfo, PodInfo, ServiceInfo

_MIN_WIDTH = 6
_PADDING = 3


def format_age(seconds: float) -> str:
    """kubectl's AGE: a short human duration that loses precision as it grows."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded like kubectl's tabwriter; the last column is not padded."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(_MIN_WIDTH, max(len(row[i]) for row in cells) + _PADDING) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(padded) + row[-1])
    return "\n".join(lines)


def restarts(pod: PodInfo) -> str:
    """RESTARTS as kubectl >= 1.22 prints it: "0", or "1 (5s ago)"."""
    if pod.restarts and pod.last_restart_age_s is not None:
        return f"{pod.restarts} ({format_age(pod.last_restart_age_s)} ago)"
    return str(pod.restarts)


def pods_table(pods: Sequence[PodInfo]) -> str:
    if not pods:
        return "No resources found in default namespace."
    rows = [(p.name, f"{int(p.ready)}/1", p.status, restarts(p), format_age(p.age_s)) for p in pods]
    return table(("NAME", "READY", "STATUS", "RESTARTS", "AGE"), rows)


def deployments_table(deployments: Sequence[DeploymentInfo]) -> str:
    if not deployments:
        return "No resources found in default namespace."
    rows = [
        (d.name, f"{d.ready}/{d.replicas}", d.up_to_date, d.available, format_age(d.age_s))
        for d in deployments
    ]
    return table(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), rows)


def services_table(services: Sequence[ServiceInfo]) -> str:
    if not services:
        return "No resources found in default namespace."
    rows = [
        (s.name, s.type, s.cluster_ip, s.external_ip or "<none>", s.ports, format_age(s.age_s))
        for s in services
    ]
    return table(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), rows)


def hpa_targets(h: HPAInfo) -> str:
    """TARGETS as kubectl 1.30+ prints a CPU utilization target: "cpu: 35%/50%"."""
    current = "<unknown>" if h.utilization_pct is None else f"{int(round(h.utilization_pct))}%"
    return f"cpu: {current}/{int(round(h.target_pct))}%"


def hpas_table(hpas: Sequence[HPAInfo]) -> str:
    if not hpas:
        return "No resources found in default namespace."
    rows = [
        (h.name, h.reference, hpa_targets(h), h.min_replicas, h.max_replicas, h.replicas, format_age(h.age_s))
        for h in hpas
    ]
    return table(("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"), rows)


# Timeline events as `kubectl describe` lists them: (type, reason, from) per kind; other kinds are not shown.
_DESCRIBED = {
    base.POD_UNSCHEDULABLE: ("Warning", "FailedScheduling", "default-scheduler"),
    base.POD_RUNNING: ("Normal", "Started", "kubelet"),
    base.POD_NOT_READY: ("Warning", "Unhealthy", "kubelet"),
    base.POD_EXITED: ("Warning", "Failed", "kubelet"),
    base.POD_RESTARTED: ("Normal", "Restarted", "kubelet"),
    base.POD_TERMINATING: ("Normal", "Killing", "kubelet"),
}


def cpu_quantity(cores: float) -> str:
    """0.5 -> "500m", 2.0 -> "2", as kubectl prints a CPU quantity."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(gib: float) -> str:
    """0.25 -> "256Mi": the largest binary unit that divides the amount."""
    amount = round(gib * 2**30)
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount and amount % size == 0:
            return f"{amount // size}{unit}"
    return str(amount)


def _fields(rows: Sequence[tuple[str, object]], indent: int = 0) -> list[str]:
    """"Key:  value" lines with the values aligned, as kubectl describe lays out one section.

    A value that is a list continues on the next lines, aligned under its first item (Labels).
    """
    width = max(len(key) for key, _ in rows) + 3
    lines = []
    for key, value in rows:
        items = value if isinstance(value, list) else [value]
        lines.append((" " * indent + f"{key}:".ljust(width) + str(items[0])).rstrip())
        lines += [" " * (indent + width) + str(item) for item in items[1:]]
    return lines


def describe_pod(pod: PodInfo, container: str, image: str | None, events: Sequence[base.Event], now_unix: float) -> str:
    """`kubectl describe pod`: what the pod is, where it runs, its requests, and what happened to it.

    A Pending pod shows Node <none>, PodScheduled False and the scheduler's FailedScheduling
    event saying why (e.g. "0/1 nodes are available: 1 Insufficient cpu.").
    """
    scheduled = pod.pending_reason is None and pod.port is not None
    template_hash = pod.labels.get("pod-template-hash")
    lines = _fields([
        ("Name", pod.name), ("Namespace", "default"), ("Node", "local/127.0.0.1" if scheduled else "<none>"),
        ("Labels", [f"{k}={v}" for k, v in sorted(pod.labels.items())] or "<none>"),
        ("Status", pod.status), ("IP", pod.ip or ""),
        ("Controlled By", f"ReplicaSet/{pod.deployment}-{template_hash}" if template_hash else "<none>"),
        ("Containers", ""),
    ])
    state = [("Port", f"{pod.port}/TCP")] if pod.port else []
    if scheduled:
        state += [("Ready", str(pod.ready).lower()), ("Restart Count", pod.restarts)]
    lines += [f"  {container}:"] + _fields([("Image", image or "<none>"), *state], indent=4)
    for title, cpu, memory in (("Limits", pod.cpu_limit_cores, pod.memory_limit_gib),
                               ("Requests", pod.cpu_request_cores, pod.memory_request_gib)):
        values = [(name, text) for name, amount, text in (("cpu", cpu, cpu and cpu_quantity(cpu)),
                                                            ("memory", memory, memory and memory_quantity(memory)))
                  if amount]
        if values:
            lines += [f"    {title}:"] + _fields(values, indent=6)
    conditions = [("PodScheduled", str(scheduled))] + ([("Ready", str(pod.ready))] if scheduled else [])
    lines += ["Conditions:"] + _indented(table(("Type", "Status"), conditions))
    rows = [(kind, reason, format_age(now_unix - e.unix_s), source, e.message)
            for e in events if e.object == f"pod/{pod.name}" and e.kind in _DESCRIBED
            for kind, reason, source in [_DESCRIBED[e.kind]]]
    if not rows:
        return "\n".join(lines + ["Events:  <none>"])
    header = ("Type", "Reason", "Age", "From", "Message")
    return "\n".join(lines + ["Events:"] + _indented(table(header, [tuple("-" * len(h) for h in header), *rows])))


def _indented(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]
