"""The scaling algorithm: how many pods the CPU the pods use asks for (upstream's replica calculator)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from servelab.core.hpa.spec import CPU_INITIALIZATION_PERIOD_S, SYNC_PERIOD_S, TOLERANCE


@dataclass(frozen=True)
class PodSample:
    """One pod as the autoscaler sees it at a sync: readiness, CPU used and CPU requested (cores).

    `cpu_usage_cores` None means the metrics pipeline has no sample for it. `phase` is the pod
    phase ("Pending", "Running", "Failed"); `started_s` its start time on the caller's clock.
    """

    name: str
    ready: bool
    cpu_usage_cores: float | None
    cpu_request_cores: float
    started_s: float | None = None
    deleting: bool = False
    phase: str = "Running"


class MetricsUnavailable(ValueError):
    """No usable CPU metric: upstream records FailedGetResourceMetric and leaves the scale alone."""


def _milli(cores: float) -> int:
    return int(round(cores * 1000))


def replica_count(
    current: int,
    pods: Sequence[PodSample],
    target_pct: int,
    now_s: float,
    tolerance_down: float = TOLERANCE,
    tolerance_up: float = TOLERANCE,
    metric_window_s: float = SYNC_PERIOD_S,
) -> tuple[int, int]:
    """Upstream `GetResourceReplicas`: (proposed replicas, current utilization in integer percent)."""
    requests: dict[str, int] = {}
    usage: dict[str, int] = {}
    unready: list[str] = []
    missing: list[str] = []
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            continue
        if pod.cpu_request_cores <= 0:
            raise ValueError(f"pod {pod.name} has no CPU request: set resources.requests.cpu in the Deployment")
        requests[pod.name] = _milli(pod.cpu_request_cores)
        if pod.phase == "Pending":
            unready.append(pod.name)
        elif pod.cpu_usage_cores is None:
            missing.append(pod.name)
        elif not pod.ready or _hot_cpu(pod, now_s, metric_window_s):
            unready.append(pod.name)
        else:
            usage[pod.name] = _milli(pod.cpu_usage_cores)
    if not requests:
        raise MetricsUnavailable("no pods returned by selector while calculating replica count")
    if not usage:
        raise MetricsUnavailable("did not receive metrics for targeted pods (pods might be unready)")

    def within(ratio: float) -> bool:
        return 1.0 - tolerance_down <= ratio <= 1.0 + tolerance_up

    utilization = _utilization(usage, requests)
    ratio = utilization / target_pct
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if within(ratio):
            return current, utilization
        return math.ceil(ratio * len(usage)), utilization

    if missing and ratio < 1.0:
        fallback_pct = max(100, target_pct)  # upstream: 100% of request, or the target if above 100%
        usage.update({name: requests[name] * fallback_pct // 100 for name in missing})
    elif missing and ratio > 1.0:
        usage.update({name: 0 for name in missing})
    if scale_up_with_unready:
        usage.update({name: 0 for name in unready})

    new_ratio = _utilization(usage, requests) / target_pct
    if within(new_ratio) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current, utilization
    proposed = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and proposed > current) or (new_ratio > 1.0 and proposed < current):
        return current, utilization
    return proposed, utilization


def _utilization(usage: dict[str, int], requests: dict[str, int]) -> int:
    """Integer percent of request in use, truncated as upstream's GetResourceUtilizationRatio does."""
    return sum(usage.values()) * 100 // sum(requests[name] for name in usage)


def _hot_cpu(pod: PodSample, now_s: float, metric_window_s: float) -> bool:
    """A just-started pod whose CPU sample still covers its start-up burn is ignored (upstream groupPods)."""
    if pod.started_s is None:
        return False
    return now_s - pod.started_s < CPU_INITIALIZATION_PERIOD_S and now_s - metric_window_s < pod.started_s


