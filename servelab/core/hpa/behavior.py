"""The behavior policies: stabilization windows and rate limits on how fast the scale may change.

Each function takes the history (recommendations, scale events) it reads and records into, so
the controller in `autoscaler.py` holds the only state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from servelab.core.hpa.spec import (
    DOWNSCALE_STABILIZATION_S,
    LEGACY_SCALE_UP_FACTOR,
    LEGACY_SCALE_UP_MINIMUM,
    ScalingPolicy,
    ScalingRules,
)


@dataclass
class Recommendation:
    replicas: int
    t_s: float


@dataclass
class ScaleEvent:
    change: int  # pods added (scale-up list) or removed (scale-down list), always positive
    t_s: float
    outdated: bool = False


def stabilize(
    recommendations: list[Recommendation],
    now_s: float,
    current: int,
    desired: int,
    up: ScalingRules,
    down: ScalingRules,
) -> tuple[int, str]:
    """Upstream `stabilizeRecommendationWithBehaviors`; records `desired` in `recommendations`."""
    up_cutoff = now_s - up.stabilization_window_s
    down_cutoff = now_s - down.stabilization_window_s
    up_recommendation = down_recommendation = desired
    old_index = None
    for i, rec in enumerate(recommendations):
        if rec.t_s > up_cutoff:
            up_recommendation = min(rec.replicas, up_recommendation)
        if rec.t_s > down_cutoff:
            down_recommendation = max(rec.replicas, down_recommendation)
        if rec.t_s < up_cutoff and rec.t_s < down_cutoff:
            old_index = i
    recommendation = min(max(current, up_recommendation), down_recommendation)
    _record(recommendations, old_index, Recommendation(desired, now_s))
    reason = "ScaleUpStabilized" if desired >= current else "ScaleDownStabilized"
    return recommendation, reason


def stabilize_legacy(recommendations: list[Recommendation], now_s: float, desired: int) -> int:
    """Upstream `stabilizeRecommendation` (HPA without behavior): highest recommendation of 300 s."""
    cutoff = now_s - DOWNSCALE_STABILIZATION_S
    highest, old_index = desired, None
    for i, rec in enumerate(recommendations):
        if rec.t_s < cutoff:
            old_index = i
        elif rec.replicas > highest:
            highest = rec.replicas
    _record(recommendations, old_index, Recommendation(desired, now_s))
    return highest


def _record(items: list, old_index: int | None, item: object) -> None:
    """Reuse an expired slot when there is one, as upstream does, so the history stays bounded."""
    if old_index is None:
        items.append(item)
    else:
        items[old_index] = item


def replicas_change_per_period(period_s: float, events: list[ScaleEvent], now_s: float) -> int:
    """Upstream `getReplicasChangePerPeriod`: pods changed by events newer than `period_s`."""
    cutoff = now_s - period_s
    return sum(event.change for event in events if event.t_s > cutoff)


def _period_start(current: int, policy: ScalingPolicy, up_events: list, down_events: list, now_s: float) -> int:
    """The replica count at the start of the policy's period, undoing the scale events since."""
    added = replicas_change_per_period(policy.period_s, up_events, now_s)
    removed = replicas_change_per_period(policy.period_s, down_events, now_s)
    return current - added + removed


def scale_up_limit(current: int, up_events: list, down_events: list, rules: ScalingRules, now_s: float) -> int:
    """Upstream `calculateScaleUpLimitWithScalingRules`."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, policy, up_events, down_events, now_s)
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:  # rounded up, or a small percentage of few pods would never add one
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(current: int, up_events: list, down_events: list, rules: ScalingRules, now_s: float) -> int:
    """Upstream `calculateScaleDownLimitWithBehaviors`."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, policy, up_events, down_events, now_s)
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def limit_by_rate(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    up: ScalingRules,
    down: ScalingRules,
    up_events: list[ScaleEvent],
    down_events: list[ScaleEvent],
    now_s: float,
) -> tuple[int, str]:
    """Upstream `convertDesiredReplicasWithBehaviorRate`: (replicas, ScalingLimited reason)."""
    if desired > current:
        limit = max(scale_up_limit(current, up_events, down_events, up, now_s), current)
        allowed, reason = (limit, "ScaleUpLimit") if max_replicas > limit else (max_replicas, "TooManyReplicas")
        if desired > allowed:
            return allowed, reason
    elif desired < current:
        limit = min(scale_down_limit(current, up_events, down_events, down, now_s), current)
        allowed, reason = (limit, "ScaleDownLimit") if min_replicas < limit else (min_replicas, "TooFewReplicas")
        if desired < allowed:
            return allowed, reason
    return desired, "DesiredWithinRange"


def limit_legacy(current: int, desired: int, min_replicas: int, max_replicas: int) -> tuple[int, str]:
    """Upstream `convertDesiredReplicasWithRules` (HPA without behavior)."""
    scale_up_cap = int(max(LEGACY_SCALE_UP_FACTOR * current, LEGACY_SCALE_UP_MINIMUM))
    if max_replicas > scale_up_cap:
        allowed, reason = scale_up_cap, "ScaleUpLimit"
    else:
        allowed, reason = max_replicas, "TooManyReplicas"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired > allowed:
        return allowed, reason
    return desired, "DesiredWithinRange"


def store_scale_event(events: list[ScaleEvent], rules: ScalingRules, change: int, now_s: float) -> None:
    """Upstream `storeScaleEvent`: expire events older than the longest policy period, reuse a slot."""
    longest = max((policy.period_s for policy in rules.policies), default=0.0)
    old_index = None
    for i, event in enumerate(events):
        if event.t_s < now_s - longest:
            event.outdated = True
        if event.outdated:
            old_index = i
    _record(events, old_index, ScaleEvent(change, now_s))


