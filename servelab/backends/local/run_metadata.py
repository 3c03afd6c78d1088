"""What a run on the local cluster ran on: its pods' lives and usage for cost, and how their limits were held.

A pod is costed from when it was scheduled (a Pending pod holds no node's resources) until it was gone,
clipped to the run's window; the first Deployment stands for the pods' size.
"""

from __future__ import annotations

import os

from servelab import limits
from servelab.backends import base
from servelab.backends.local.objects import Objects
from servelab.backends.local.pods import Pod


def run_metadata(objects: Objects, held: limits.Ladder, service_mode: str, cpu_scale: float,
                 start_unix_s: float | None, end_unix_s: float | None) -> base.RunMetadata:
    all_pods = objects.finished + [p for p in objects.pods() if p.status != "Gone"]
    enforced, note = held.summary({p.name: p.group for p in all_pods if p.group is not None})
    first = next(iter(objects.deployments.values()), None)
    spec = first.spec if first else None
    return base.RunMetadata(
        backend="local",
        replicas=first.replicas if first else 0,
        ready_replicas=sum(p.ready for p in first.live()) if first else 0,
        cpu_request_cores=spec.cpu_request if spec else None,
        cpu_limit_cores=spec.cpu_limit if spec else None,
        memory_request_gib=spec.memory_request / 2**30 if spec else None,
        memory_limit_gib=spec.memory_limit / 2**30 if spec and spec.memory_limit else None,
        limits_enforced=enforced,
        limits_note=note,
        service_mode=service_mode,
        services=[{"name": name, "url": f"http://127.0.0.1:{s.proxy.port}", **s.proxy.round_trip.metadata()}
                  for name, s in objects.services.items()],
        cpu_count=os.cpu_count(),
        cpu_scale=cpu_scale,
        pods=_usages(objects, all_pods, start_unix_s, end_unix_s),
    )


def _usages(objects: Objects, pods: list[Pod], start_unix_s: float | None, end_unix_s: float | None) -> list[dict]:
    """Each pod that ran within the window, as a dict shaped like servelab.core.cost.PodUsage, in unix seconds."""
    now = objects.now()
    lo = -float("inf") if start_unix_s is None else start_unix_s - objects.t0_unix
    hi = now if end_unix_s is None else min(now, end_unix_s - objects.t0_unix)
    usages = []
    for p in pods:
        if p.scheduled_s is None:
            continue  # never ran: a Pending pod holds no node's resources, so it costs nothing
        start, end = max(p.scheduled_s, lo), min(p.ended_s if p.ended_s is not None else now, hi)
        if end <= start:
            continue
        usages.append({
            "name": p.name, "start_s": round(objects.t0_unix + start, 3), "end_s": round(objects.t0_unix + end, 3),
            "cpu_request_cores": p.spec.cpu_request, "memory_request_gib": p.spec.memory_request / 2**30,
            "cpu_used_core_s": round(p.cpu_used_between(start, end), 3),
            "limits_enforced": p.group.rung if p.group.held else False,
        })
    return usages
