"""The Kubernetes HorizontalPodAutoscaler algorithm, as a pure function of what it is shown.

One package, two callers: the local backend calls `Autoscaler.decide` every `SYNC_PERIOD_S` with the
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

from servelab.core.hpa.autoscaler import Autoscaler, Decision
from servelab.core.hpa.behavior import (
    Recommendation,
    ScaleEvent,
    limit_by_rate,
    limit_legacy,
    replicas_change_per_period,
    scale_down_limit,
    scale_up_limit,
    stabilize,
    stabilize_legacy,
    store_scale_event,
)
from servelab.core.hpa.calculator import MetricsUnavailable, PodSample, replica_count
from servelab.core.hpa.spec import (
    CPU_INITIALIZATION_PERIOD_S,
    DEFAULT_CPU_UTILIZATION,
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    DOWNSCALE_STABILIZATION_S,
    LEGACY_SCALE_UP_FACTOR,
    LEGACY_SCALE_UP_MINIMUM,
    SYNC_PERIOD_S,
    TOLERANCE,
    HPASpec,
    ScalingPolicy,
    ScalingRules,
)

__all__ = [
    "CPU_INITIALIZATION_PERIOD_S", "DEFAULT_CPU_UTILIZATION", "DEFAULT_SCALE_DOWN", "DEFAULT_SCALE_UP",
    "DOWNSCALE_STABILIZATION_S", "LEGACY_SCALE_UP_FACTOR", "LEGACY_SCALE_UP_MINIMUM", "SYNC_PERIOD_S", "TOLERANCE",
    "Autoscaler", "Decision", "HPASpec", "MetricsUnavailable", "PodSample", "Recommendation", "ScaleEvent",
    "ScalingPolicy", "ScalingRules", "limit_by_rate", "limit_legacy", "replica_count", "replicas_change_per_period",
    "scale_down_limit", "scale_up_limit", "stabilize", "stabilize_legacy", "store_scale_event",
]
