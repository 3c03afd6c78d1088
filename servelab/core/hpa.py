"""The Kubernetes HorizontalPodAutoscaler algorithm, as a pure function of what it is shown.

One module, two callers: the local backend calls `Autoscaler.decide` every `SYNC_PERIOD_S` with the
CPU it measured on each pod, the simulator calls it with the CPU its queues kept busy. No clock and
no I/O here: times are passed in, so a 24-hour day replays in a second and a test can step a clock.

It follows upstream kubernetes/kubernetes `pkg/controller/podautoscaler`:
- `replica_calculator.go` `GetResourceReplicas`: utilization = sum(usage) / sum(request) over pods
  with a metric (integer percent), desired = ceil(ratio x ready pods) with a 0.1 tolerance; missing
  metrics count as 100% of request when scaling down and 0% when scaling up; unready pods count as
  0% when scaling up and are ignored otherwise; deleting and failed pods are ignored; the ratio is
  re-checked after that adjustment and a flip of direction means "no change".
- `horizontal.go`: stabilization windows (scale down to the highest recommendation of the window,
  scale up to the lowest), rate-limit policies (Pods / Percent per periodSeconds, selectPolicy
  Max / Min / Disabled) measured against the scale events of each policy's period, min/max clamping.
  An HPA without `behavior` takes upstream's older path: a 300 s scale-down window and a scale-up
  cap of max(2 x current, 4) per sync.

Where a pod carries less than Kubernetes knows, a documented approximation stands in: the time a
pod became Ready is taken as its start time, and an unready pod is taken as never-yet-ready.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

SYNC_PERIOD_S = 15.0  # --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DOWNSCALE_STABILIZATION_S = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
CPU_INITIALIZATION_PERIOD_S = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
DEFAULT_CPU_UTILIZATION = 80  # autoscaling.DefaultCPUUtilization, used when `metrics` is empty
LEGACY_SCALE_UP_FACTOR = 2.0  # horizontal.go scaleUpLimitFactor (HPA without behavior)
LEGACY_SCALE_UP_MINIMUM = 4  # horizontal.go scaleUpLimitMinimum


@dataclass(frozen=True)
class ScalingPolicy:
    """One rate limit: change by at most `value` pods (or percent) within `period_s`."""

    type: str  # "Pods" or "Percent"
    value: int
    period_s: float


@dataclass(frozen=True)
class ScalingRules:
    """`behavior.scaleUp` or `behavior.scaleDown` of an autoscaling/v2 HPA, defaults filled in."""

    stabilization_window_s: float
    select_policy: str  # "Max", "Min" or "Disabled"
    policies: tuple[ScalingPolicy, ...]
    tolerance: float = TOLERANCE


# autoscaling/v2 defaults (pkg/apis/autoscaling/v2/defaults.go).
DEFAULT_SCALE_UP = ScalingRules(0.0, "Max", (ScalingPolicy("Pods", 4, 15.0), ScalingPolicy("Percent", 100, 15.0)))
DEFAULT_SCALE_DOWN = ScalingRules(DOWNSCALE_STABILIZATION_S, "Max", (ScalingPolicy("Percent", 100, 15.0),))


@dataclass(frozen=True)
class HPASpec:
    """What the algorithm needs from a HorizontalPodAutoscaler manifest."""

    name: str
    target_name: str
    min_replicas: int
    max_replicas: int
    target_cpu_pct: int
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    has_behavior: bool = True  # False: upstream's pre-behavior path (see module docstring)

    @classmethod
    def from_manifest(cls, d: dict) -> HPASpec:
        """Read an autoscaling/v2 HPA dict (as `yaml.safe_load` gives it), filling upstream defaults."""
        if d.get("kind") != "HorizontalPodAutoscaler":
            raise ValueError(f"expected kind HorizontalPodAutoscaler, got {d.get('kind')!r}")
        spec = d.get("spec") or {}
        if "maxReplicas" not in spec:
            raise ValueError("HPA spec.maxReplicas is required (the most pods the autoscaler may run)")
        behavior = spec.get("behavior")
        return cls(
            name=(d.get("metadata") or {}).get("name", ""),
            target_name=(spec.get("scaleTargetRef") or {}).get("name", ""),
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            target_cpu_pct=_cpu_target(spec.get("metrics") or []),
            scale_up=_rules((behavior or {}).get("scaleUp"), DEFAULT_SCALE_UP),
            scale_down=_rules((behavior or {}).get("scaleDown"), DEFAULT_SCALE_DOWN),
            has_behavior=behavior is not None,
        )


def _cpu_target(metrics: list) -> int:
    if not metrics:
        return DEFAULT_CPU_UTILIZATION
    for metric in metrics:
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu" and "averageUtilization" in target:
            return int(target["averageUtilization"])
    raise ValueError(
        "servelab's HPA scales on CPU utilization only: give spec.metrics a Resource metric named cpu "
        "with target.type Utilization and averageUtilization"
    )


def _rules(d: dict | None, default: ScalingRules) -> ScalingRules:
    """Copy the fields the manifest sets over the defaults, as upstream's copyHPAScalingRules does."""
    if d is None:
        return default
    policies = default.policies
    if d.get("policies") is not None:
        policies = tuple(ScalingPolicy(p["type"], int(p["value"]), float(p["periodSeconds"])) for p in d["policies"])
    return ScalingRules(
        stabilization_window_s=float(d.get("stabilizationWindowSeconds", default.stabilization_window_s)),
        select_policy=d.get("selectPolicy", default.select_policy),
        policies=policies,
        tolerance=_quantity(d.get("tolerance", default.tolerance)),
    )


def _quantity(value: float | int | str) -> float:
    """A Kubernetes quantity such as 0.05, "0.05" or "50m" as a float."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


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


@dataclass(frozen=True)
class Decision:
    """The outcome of one sync: the replica count to set and the numbers that led to it."""

    desired_replicas: int
    current_replicas: int
    utilization_pct: float | None
    target_pct: int
    reason: str
    raw_desired: int  # the replica calculator's proposal, before stabilization and rate limits


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
