"""The controller: one HPA's history and its sync, joining the replica calculator and the behavior."""

from __future__ import annotations

from dataclasses import dataclass, field

from servelab.core.hpa.behavior import (
    Recommendation,
    ScaleEvent,
    limit_by_rate,
    limit_legacy,
    stabilize,
    stabilize_legacy,
    store_scale_event,
)
from servelab.core.hpa.calculator import MetricsUnavailable, PodSample, replica_count
from servelab.core.hpa.spec import SYNC_PERIOD_S, HPASpec


@dataclass(frozen=True)
class Decision:
    """The outcome of one sync: the replica count to set and the numbers that led to it."""

    desired_replicas: int
    current_replicas: int
    utilization_pct: float | None
    target_pct: int
    reason: str
    raw_desired: int  # the replica calculator's proposal, before stabilization and rate limits




@dataclass
class Autoscaler:
    """One HPA's controller state: the recommendation and scale-event history behind its windows."""

    spec: HPASpec
    metric_window_s: float = SYNC_PERIOD_S  # how much time each CPU sample averages over
    recommendations: list[Recommendation] | None = None  # None until the first sync, as upstream's nil
    scale_up_events: list[ScaleEvent] = field(default_factory=list)
    scale_down_events: list[ScaleEvent] = field(default_factory=list)

    def decide(self, now_s: float, current_replicas: int, pods: list[PodSample]) -> Decision:
        """One sync of upstream `reconcileAutoscaler`. The caller sets the scale to `desired_replicas`."""
        spec, current = self.spec, current_replicas
        if self.recommendations is None:  # recordInitialRecommendation: no scale-down for a window
            self.recommendations = [Recommendation(current, now_s)]

        def decision(desired: int, utilization: float | None, reason: str, raw: int) -> Decision:
            return Decision(desired, current, utilization, spec.target_cpu_pct, reason, raw)

        if current == 0 and spec.min_replicas != 0:
            return decision(0, None, "ScalingDisabled: the target is scaled to zero", 0)
        if current > spec.max_replicas:
            self._store(current, spec.max_replicas, now_s)
            return decision(spec.max_replicas, None, "Current number of replicas above Spec.MaxReplicas", current)
        if current < spec.min_replicas:
            self._store(current, spec.min_replicas, now_s)
            return decision(spec.min_replicas, None, "Current number of replicas below Spec.MinReplicas", current)
        try:
            raw, utilization = replica_count(
                current,
                pods,
                spec.target_cpu_pct,
                now_s,
                tolerance_down=spec.scale_down.tolerance,
                tolerance_up=spec.scale_up.tolerance,
                metric_window_s=self.metric_window_s,
            )
        except MetricsUnavailable as err:
            return decision(current, None, f"FailedGetResourceMetric: {err}", current)
        desired, limited = self._normalize(now_s, current, raw)
        self._store(current, desired, now_s)
        return decision(desired, float(utilization), _reason(current, raw, desired, utilization, spec, limited), raw)

    def _normalize(self, now_s: float, current: int, raw: int) -> tuple[int, str]:
        spec = self.spec
        if not spec.has_behavior:
            stabilized = stabilize_legacy(self.recommendations, now_s, raw)
            return limit_legacy(current, stabilized, spec.min_replicas, spec.max_replicas)
        stabilized, stabilized_reason = stabilize(
            self.recommendations, now_s, current, raw, spec.scale_up, spec.scale_down
        )
        desired, limited = limit_by_rate(
            current,
            stabilized,
            spec.min_replicas,
            spec.max_replicas,
            spec.scale_up,
            spec.scale_down,
            self.scale_up_events,
            self.scale_down_events,
            now_s,
        )
        if limited == "DesiredWithinRange" and stabilized != raw:
            limited = stabilized_reason
        return desired, limited

    def _store(self, current: int, desired: int, now_s: float) -> None:
        if not self.spec.has_behavior or desired == current:
            return
        if desired > current:
            store_scale_event(self.scale_up_events, self.spec.scale_up, desired - current, now_s)
        else:
            store_scale_event(self.scale_down_events, self.spec.scale_down, current - desired, now_s)


def _reason(current: int, raw: int, desired: int, utilization: int, spec: HPASpec, limited: str) -> str:
    """Words for the timeline, e.g. 'cpu 92% of request (target 50%) above target; ScaleUpLimit'."""
    metric = f"cpu {utilization}% of request (target {spec.target_cpu_pct}%)"
    direction = "above target" if raw > current else "below target" if raw < current else "within tolerance"
    return f"{metric} {direction}" if limited == "DesiredWithinRange" else f"{metric} {direction}; {limited}"
