"""Reading an HPA object: the autoscaling/v2 fields the algorithm uses, with upstream's defaults.

The command-line defaults of kube-controller-manager are here too, as the rest of the package
(the local backend, the simulator) takes its sync period from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from servelab.core.manifests import quantity

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
            scale_up=_rules((behavior or {}).get("scaleUp"), DEFAULT_SCALE_UP, "scaleUp"),
            scale_down=_rules((behavior or {}).get("scaleDown"), DEFAULT_SCALE_DOWN, "scaleDown"),
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


def _rules(d: dict | None, default: ScalingRules, direction: str) -> ScalingRules:
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
        tolerance=float(quantity(d.get("tolerance", default.tolerance), f"spec.behavior.{direction}.tolerance")),
    )
