"""servelab.core.hpa against the cases of upstream's own tests.

Each test names the upstream test it reproduces, from kubernetes/kubernetes
pkg/controller/podautoscaler/replica_calculator_test.go and horizontal_test.go. Upstream levels and
requests are in millicores per container (two containers per pod there; the ratios are the same).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from servelab.core import hpa
from servelab.core.hpa import (
    Autoscaler,
    HPASpec,
    MetricsUnavailable,
    PodSample,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
)

NOW = 10_000.0
COOL = NOW - 3600  # started long ago: past the CPU initialization period
HOT = NOW - 5  # started inside the last metric window: its sample still holds start-up CPU
MANIFEST = Path(__file__).resolve().parents[1] / "cluster" / "model-serving-hpa.yaml"


def pods(levels, requests=None, ready=None, started=None, phase=None, deleting=None, count=None):
    """Pods test-pod-0..n like upstream's fixtures: levels in millicores, None or absent = no metric."""
    n = count or len(requests or levels)
    requests = requests or [1000] * n
    return [
        PodSample(
            name=f"test-pod-{i}",
            ready=True if ready is None else ready[i],
            cpu_usage_cores=levels[i] / 1000 if i < len(levels) and levels[i] is not None else None,
            cpu_request_cores=requests[i] / 1000,
            started_s=COOL if started is None else started[i],
            deleting=False if deleting is None else deleting[i],
            phase="Running" if phase is None else phase[i],
        )
        for i in range(n)
    ]


# replica_calculator_test.go: (name, current, pods, target %, expected replicas, expected utilization %)
T, F = True, False
REPLICA_CALC_CASES = [
    ("TestReplicaCalcScaleUp", 3, pods([300, 500, 700]), 30, 5, 50),
    ("TestReplicaCalcScaleUpUnreadyLessScale", 3, pods([300, 500, 700], ready=[F, T, T]), 30, 4, 60),
    ("TestReplicaCalcScaleUpHotCpuLessScale", 3, pods([300, 500, 700], started=[HOT, COOL, COOL]), 30, 4, 60),
    ("TestReplicaCalcScaleUpUnreadyNoScale", 3, pods([400, 500, 700], ready=[T, F, F]), 30, 3, 40),
    (
        "TestReplicaCalcScaleHotCpuNoScale",
        3,
        pods([400, 500, 700], ready=[T, F, F], started=[COOL, HOT, HOT]),
        30,
        3,
        40,
    ),
    (
        "TestReplicaCalcScaleUpIgnoresFailedPods",
        2,
        pods([500, 700], count=4, ready=[T, T, F, F], phase=["Running", "Running", "Failed", "Failed"]),
        30,
        4,
        60,
    ),
    (
        "TestReplicaCalcScaleUpIgnoresDeletionPods",
        2,
        pods([500, 700], count=4, ready=[T, T, F, F], deleting=[F, F, T, T]),
        30,
        4,
        60,
    ),
    ("TestReplicaCalcScaleDown", 5, pods([100, 300, 500, 250, 250]), 50, 3, 28),
    (
        "TestReplicaCalcScaleDownIncludeUnreadyPods",
        5,
        pods([100, 300, 500, 250, 250], ready=[T, T, T, F, F]),
        50,
        2,
        30,
    ),
    (
        "TestReplicaCalcScaleDownExcludeUnscheduledPods",
        5,
        pods([100], count=5, ready=[T, F, F, F, F], phase=["Running"] + ["Pending"] * 4),
        50,
        1,
        10,
    ),
    (
        "TestReplicaCalcScaleDownIgnoreHotCpuPods",
        5,
        pods([100, 300, 500, 250, 250], started=[COOL, COOL, COOL, HOT, HOT]),
        50,
        2,
        30,
    ),
    (
        "TestReplicaCalcScaleDownIgnoresFailedPods",
        5,
        pods([100, 300, 500, 250, 250], count=7, ready=[T] * 5 + [F, F], phase=["Running"] * 5 + ["Failed"] * 2),
        50,
        3,
        28,
    ),
    (
        "TestReplicaCalcScaleDownIgnoresDeletionPods",
        5,
        pods([100, 300, 500, 250, 250], count=7, ready=[T] * 5 + [F, F], deleting=[F] * 5 + [T, T]),
        50,
        3,
        28,
    ),
    ("TestReplicaCalcTolerance", 3, pods([1010, 1030, 1020], requests=[900, 1000, 1100]), 100, 3, 102),
    ("TestReplicaCalcMissingMetrics", 4, pods([400, 95], count=4), 100, 3, 24),
    ("TestReplicaCalcMissingMetricsNoChangeEq", 2, pods([1000], count=2), 100, 2, 100),
    ("TestReplicaCalcMissingMetricsNoChangeGt", 2, pods([1900], count=2), 100, 2, 190),
    ("TestReplicaCalcMissingMetricsNoChangeLt", 2, pods([600], count=2), 100, 2, 60),
    ("TestReplicaCalcMissingMetricsUnreadyChange", 3, pods([100, 450], count=3, ready=[F, T, T]), 50, 3, 45),
    (
        "TestReplicaCalcMissingMetricsHotCpuNoChange",
        3,
        pods([100, 450], count=3, started=[HOT, COOL, COOL]),
        50,
        3,
        45,
    ),
    ("TestReplicaCalcMissingMetricsUnreadyScaleUp", 3, pods([100, 2000], count=3, ready=[F, T, T]), 50, 4, 200),
    (
        "TestReplicaCalcMissingMetricsHotCpuScaleUp",
        3,
        pods([100, 2000], count=3, ready=[F, T, T], started=[HOT, COOL, COOL]),
        50,
        4,
        200,
    ),
    (
        "TestReplicaCalcMissingMetricsUnreadyScaleDown",
        4,
        pods([100, 100, 100], count=4, ready=[F, T, T, T]),
        50,
        3,
        10,
    ),
]


@pytest.mark.parametrize(
    "current, samples, target, expected, utilization",
    [case[1:] for case in REPLICA_CALC_CASES],
    ids=[case[0] for case in REPLICA_CALC_CASES],
)
def test_replica_calculator_matches_upstream(current, samples, target, expected, utilization):
    assert hpa.replica_count(current, samples, target, NOW) == (expected, utilization)


def test_replica_calc_computed_tolerance_alg_implementation():
    """TestReplicaCalcComputedToleranceAlgImplementation: just outside the tolerance scales, just inside does not."""
    start_pods, used_total = 10, 1500
    requested_total = 2 * used_total
    per_pod = requested_total // start_pods
    requests = [per_pod + d for d in (100, -100, 10, -10, 2, -2, 1, -1, 0, 0)]
    samples = pods([used_total // 10] * 10, requests=requests)
    requested_to_used = requested_total // used_total
    target = 1 / (requested_to_used * (1 - hpa.TOLERANCE)) + 0.01
    final_pods = math.ceil(used_total / (requested_total * target) * start_pods)
    assert hpa.replica_count(start_pods, samples, int(target * 100), NOW) == (final_pods, 50)
    near = int((1 / (requested_to_used * (1 - hpa.TOLERANCE)) + 0.004) * 100)
    assert hpa.replica_count(start_pods, samples, near, NOW)[0] == start_pods


def test_replica_calc_empty_metrics_and_missing_request():
    """TestReplicaCalcEmptyMetrics / TestReplicaCalcEmptyCPURequest: errors, never a guess."""
    with pytest.raises(MetricsUnavailable):
        hpa.replica_count(3, pods([], count=3, ready=[F, F, F]), 100, NOW)
    with pytest.raises(MetricsUnavailable):
        hpa.replica_count(3, [], 100, NOW)
    with pytest.raises(ValueError, match="requests.cpu"):
        hpa.replica_count(1, pods([200], requests=[0]), 100, NOW)


def rules(pods_value=0, pods_period=0, percent=0, percent_period=0, window=0, select="Max"):
    """Upstream's generateScalingRules helper (horizontal_test.go)."""
    policies = []
    if pods_value:
        policies.append(ScalingPolicy("Pods", pods_value, pods_period))
    if percent:
        policies.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, select, tuple(policies))


def events(changes, period):
    """Upstream's generateEventsUniformDistribution: events spread over the last `period` seconds."""
    segment = period / len(changes)
    return [ScaleEvent(c, NOW - (period - segment * (i + 1) + segment / 2)) for i, c in enumerate(changes)]


UP, DOWN = hpa.DEFAULT_SCALE_UP, hpa.DEFAULT_SCALE_DOWN
# TestScalingWithRules: (name, up rules, down rules, up events, down events, min, max, current, desired,
# expected replicas, expected condition)
SCALING_WITH_RULES = [
    ("prenormalized desired replicas within range", UP, DOWN, [], [], 3, 8, 5, 7, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", UP, DOWN, [], [], 2, 8, 3, 1, 2, "TooFewReplicas"),
    (
        "prenormalized desired replicas within range when minReplicas is 0",
        UP, DOWN, [], [], 0, 10, 1, 0, 0, "DesiredWithinRange",
    ),
    (
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        UP, DOWN, [], [], 1, 10, 20, 1000, 10, "TooManyReplicas",
    ),
    (
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        rules(percent=1, percent_period=60), DOWN, [], [], 1, 2000, 3, 1000, 4, "ScaleUpLimit",
    ),
    (
        "scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies",
        UP, rules(20, 60), [], [], 3, 2000, 1000, 3, 980, "ScaleDownLimit",
    ),
    ("scaleUp with default behavior", UP, DOWN, [], [], 1, 1000, 10, 50, 20, "ScaleUpLimit"),
    (
        "scaleUp with pods policy larger than percent policy",
        rules(100, 60, 100, 60), DOWN, [], [], 1, 1000, 10, 500, 110, "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy larger than pods policy",
        rules(2, 60, 100, 60), DOWN, [], [], 1, 1000, 10, 500, 20, "ScaleUpLimit",
    ),
    ("scaleUp with pod policy limitation", rules(30, 60), DOWN, [], [], 1, 1000, 10, 50, 40, "ScaleUpLimit"),
    (
        "scaleUp with percent policy limitation",
        rules(percent=200, percent_period=60), DOWN, [], [], 1, 1000, 10, 50, 30, "ScaleUpLimit",
    ),
    (
        "scaleDown with percent policy larger than pod policy",
        UP, rules(20, 60, 1, 60, 300), [], [], 1, 1000, 100, 2, 80, "ScaleDownLimit",
    ),
    (
        "scaleDown with pod policy larger than percent policy",
        UP, rules(2, 60, 1, 60, 300), [], [], 1, 1000, 100, 2, 98, "ScaleDownLimit",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy",
        UP, rules(percent=100, percent_period=60, window=300), [], [], 5, 1000, 10, 2, 5, "TooFewReplicas",
    ),
    ("scaleDown with pod policy limitation", UP, rules(5, 60, window=300), [], [], 1, 1000, 10, 2, 5, "ScaleDownLimit"),
    (
        "scaleDown with percent policy limitation",
        UP, rules(percent=50, percent_period=60, window=300), [], [], 1, 1000, 10, 5, 5, "DesiredWithinRange",
    ),
    (
        "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
        rules(5, 120), DOWN, events([1, 5, 9], 120), [], 1, 1000, 100, 500, 100, "ScaleUpLimit",
    ),
    (
        "scaleUp with pod policy and previous scale up events",
        rules(150, 120), DOWN, events([1, 5, 9], 120), [], 1, 1000, 100, 500, 235, "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy and previous scale up events",
        rules(percent=200, percent_period=120), DOWN, events([1, 5, 9], 120), [], 1, 1000, 100, 500, 255,
        "ScaleUpLimit",
    ),
    (
        "scaleDown with default policy and previous events",
        UP, DOWN, [], events([1, 5, 9], 120), 1, 1000, 10, 5, 5, "DesiredWithinRange",
    ),
    (
        "scaleDown with pod policy limitation and previous events",
        UP, rules(5, 120, window=300), [], events([1, 5, 9], 120), 1, 1000, 100, 2, 100, "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy limitation and previous events",
        UP, rules(percent=50, percent_period=120, window=300), [], events([2, 4, 6], 120), 1, 1000, 100, 0, 56,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with previous events preventing further scale down",
        UP, rules(percent=10, percent_period=120, window=300), [], events([10, 10, 10], 120), 1, 1000, 100, 0,
        100, "ScaleDownLimit",
    ),
    (
        "scaleDown with with previous events still allowing more scale down",
        UP, rules(percent=1000, percent_period=120, window=300), [], events([10, 10, 10], 120), 1, 1000, 10, 5,
        5, "DesiredWithinRange",
    ),
    (
        "check that events were marked 'outdated' for two different policies in the behavior for up",
        rules(1000, 30, 100, 60), DOWN, events([8, 12, 9, 11], 120), [], 1, 1000, 100, 200, 200,
        "DesiredWithinRange",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", SCALING_WITH_RULES, ids=[c[0] for c in SCALING_WITH_RULES])
def test_scaling_with_rules(case):
    """horizontal_test.go TestScalingWithRules (convertDesiredReplicasWithBehaviorRate)."""
    _, up, down, up_events, down_events, low, high, current, desired, expected, condition = case
    got = hpa.limit_by_rate(current, desired, low, high, up, down, up_events, down_events, NOW)
    assert got == (expected, condition)


def test_calculate_scale_up_and_down_limit_with_min_policy():
    """TestCalculateScaleUpLimitWithScalingRules and TestCalculateScaleDownLimitWithBehaviors."""
    min_policy = rules(2, 60, 50, 60, 300, select="Min")
    assert hpa.scale_up_limit(1, [], [], min_policy, NOW) == 2
    assert hpa.scale_down_limit(5, [], [], min_policy, NOW) == 3
    disabled = rules(2, 60, select="Disabled")
    assert hpa.scale_up_limit(3, [], [], disabled, NOW) == 3


def recs(*pairs):
    return [Recommendation(replicas, NOW - age_s) for replicas, age_s in pairs]


# TestNormalizeDesiredReplicasWithBehavior: (name, history (replicas, age s), current, desired,
# up window, down window, expected, expected stored recommendations)
STABILIZATION = [
    ("empty recommendations for scaling down", [], 100, 5, 0, 0, 5, [5]),
    ("simple scale down stabilization", [(4, 120), (5, 60)], 100, 3, 0, 180, 5, [4, 5, 3]),
    ("simple scale up stabilization", [(4, 120), (5, 60)], 1, 7, 300, 0, 4, [4, 5, 7]),
    ("no scale down stabilization", [(1, 120), (2, 60)], 100, 3, 300, 0, 3, [1, 2, 3]),
    ("no scale up stabilization", [(4, 120), (5, 60)], 1, 3, 0, 300, 3, [4, 5, 3]),
    ("no scale down stabilization, reuse recommendation element", [(10, 600), (9, 540)], 100, 3, 0, 0, 3, [10, 3]),
    ("no scale up stabilization, reuse recommendation element", [(10, 600), (9, 540)], 1, 100, 0, 0, 100, [10, 100]),
    (
        "scale down stabilization, reuse one of obsolete recommendation element",
        [(10, 600), (4, 60), (5, 120), (9, 540)], 100, 3, 0, 180, 5, [10, 4, 5, 3],
    ),
    (
        "scale up stabilization, reuse one of obsolete recommendation element",
        [(10, 6000), (6, 60), (5, 120), (9, 180)], 1, 100, 300, 0, 5, [100, 6, 5, 9],
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", STABILIZATION, ids=[c[0] for c in STABILIZATION])
def test_normalize_desired_replicas_with_behavior(case):
    """horizontal_test.go TestNormalizeDesiredReplicasWithBehavior (stabilizeRecommendationWithBehaviors)."""
    _, history, current, desired, up_window, down_window, expected, stored = case
    history = recs(*history)
    up, down = ScalingRules(up_window, "Max", ()), ScalingRules(down_window, "Max", ())
    assert hpa.stabilize(history, NOW, current, desired, up, down)[0] == expected
    assert [r.replicas for r in history] == stored


@pytest.mark.parametrize(
    "history, desired, expected, length",
    [
        ([], 5, 5, 1),  # "empty log"
        ([(4, 120), (5, 60)], 3, 5, 3),  # "stabilize"
        ([(1, 120), (2, 60)], 3, 3, 3),  # "no stabilize"
        ([(10, 600), (9, 540)], 3, 3, 2),  # "no stabilize - old recommendations"
        ([(10, 600), (4, 60), (5, 120), (9, 540)], 3, 5, 4),  # "stabilize - old recommendations"
    ],
)
def test_normalize_desired_replicas_without_behavior(history, desired, expected, length):
    """horizontal_test.go TestNormalizeDesiredReplicas (stabilizeRecommendation, 5 minute window)."""
    history = recs(*history)
    assert hpa.stabilize_legacy(history, NOW, desired) == expected
    assert len(history) == length


def test_store_scale_events():
    """horizontal_test.go TestStoreScaleEvents, the cases with a behavior."""
    cases = [
        ([], rules(10, 60, 100, 60), 0, [(5, False)]),  # "empty entries with two-policy-behavior"
        ([(7, 61)], rules(10, 60, 100, 60), 0, [(5, False)]),  # "one outdated entry to be replaced with behavior"
        ([(7, 58)], rules(10, 60, 100, 60), 7, [(7, False), (5, False)]),  # "one actual entry to be not touched"
        ([(7, 61), (6, 59)], rules(10, 60), 6, [(5, False), (6, False)]),  # "two entries, one of them to be replaced"
        (  # "replace one entry, use policies with different periods"
            [(8, 29), (6, 59), (7, 61), (9, 61)],
            rules(10, 60, 100, 30),
            14,
            [(8, False), (6, False), (7, True), (5, False)],
        ),
        ([(7, 58), (6, 59)], rules(10, 120, 100, 30), 13, [(7, False), (6, False), (5, False)]),  # "both actual"
    ]
    for previous, scaling_rules, change_before, stored in cases:
        history = [ScaleEvent(change, NOW - age) for change, age in previous]
        assert hpa.replicas_change_per_period(60, history, NOW) == change_before
        hpa.store_scale_event(history, scaling_rules, 5, NOW)
        assert [(e.change, e.outdated) for e in history] == stored


@pytest.mark.parametrize(
    "current, desired, low, high, expected, condition",
    [
        (5, 7, 3, 8, 7, "DesiredWithinRange"),
        (3, 1, 2, 8, 2, "TooFewReplicas"),
        (1, 0, 0, 10, 0, "DesiredWithinRange"),
        (20, 1000, 1, 10, 10, "TooManyReplicas"),
        # upstream's test raises scaleUpLimitFactor to 8; with the shipped factor 2 the cap is max(2x3, 4)
        (3, 1000, 1, 2000, 6, "ScaleUpLimit"),
    ],
)
def test_convert_desired_replicas_with_rules(current, desired, low, high, expected, condition):
    """horizontal_test.go TestConvertDesiredReplicasWithRules (HPA without behavior)."""
    assert hpa.limit_legacy(current, desired, low, high) == (expected, condition)


def spec(low, high, target, up=None, down=None):
    """An HPA like upstream's test fixture: behavior only when a test gives scaling rules."""
    has_behavior = up is not None or down is not None
    return HPASpec("test-hpa", "test-rc", low, high, target, up or UP, down or DOWN, has_behavior)


# horizontal_test.go reconcile tests: (name, spec, current, pods, fresh controller?, expected desired)
RECONCILE_CASES = [
    ("TestScaleUp", spec(2, 6, 30), 3, pods([300, 500, 700]), False, 5),
    ("TestScaleDown", spec(2, 6, 50), 5, pods([100, 300, 500, 250, 250]), False, 3),
    (
        "TestScaleDownWithScalingRules",
        spec(2, 6, 50, up=rules(percent=100, percent_period=15, window=30)),
        5,
        pods([100, 300, 500, 250, 250]),
        False,
        3,
    ),
    ("TestScaleDownStabilizeInitialSize", spec(2, 6, 50), 5, pods([100, 300, 500, 250, 250]), True, 5),
    (
        "TestScaleDownIncludeUnreadyPods",
        spec(2, 6, 50),
        5,
        pods([100, 300, 500, 250, 250], ready=[T, T, T, F, F]),
        False,
        2,
    ),
    (
        "TestScaleDownIgnoreHotCpuPods",
        spec(2, 6, 50),
        5,
        pods([100, 300, 500, 250, 250], started=[COOL, COOL, COOL, HOT, HOT]),
        False,
        2,
    ),
    ("TestTolerance", spec(1, 5, 100), 3, pods([1010, 1030, 1020], requests=[900, 1000, 1100]), True, 3),
    ("TestMinReplicas", spec(2, 5, 90), 3, pods([10, 95, 10], requests=[900, 1000, 1100]), False, 2),
    ("TestMinReplicasDesiredZero", spec(2, 5, 90), 3, pods([0, 0, 0], requests=[900, 1000, 1100]), False, 2),
    ("TestZeroMinReplicasDesiredZero", spec(0, 5, 90), 3, pods([0, 0, 0], requests=[900, 1000, 1100]), False, 0),
    ("TestZeroReplicas", spec(3, 5, 90), 0, [], True, 0),
    ("TestTooFewReplicas", spec(3, 5, 90), 2, [], True, 3),
    ("TestTooManyReplicas", spec(3, 5, 90), 10, [], True, 5),
    ("TestMaxReplicas", spec(2, 5, 90), 3, pods([8000, 9500, 1000], requests=[900, 1000, 1100]), True, 5),
    ("TestMissingMetrics", spec(2, 6, 100), 4, pods([400, 95], count=4), False, 3),
    ("TestEmptyMetrics", spec(2, 6, 100), 4, pods([], count=4), True, 4),
    ("TestEventCreated", spec(1, 5, 50), 1, pods([200], requests=[200]), True, 2),
    ("TestMissingReports", spec(1, 5, 50), 4, pods([200], requests=[200]), False, 2),
    (
        "TestUpscaleCap",
        spec(1, 100, 10, up=rules(percent=700, percent_period=60)),
        3,
        pods([100, 200, 300], requests=[100] * 3),
        True,
        24,
    ),
    (
        "TestUpscaleCapGreaterThanMaxReplicas",
        spec(1, 20, 10, up=rules(percent=700, percent_period=60)),
        3,
        pods([100, 200, 300], requests=[100] * 3),
        True,
        20,
    ),
    ("TestMoreReplicasThanSpecNoScale", spec(1, 8, 50), 4, pods([500] * 5), True, 4),
]


@pytest.mark.parametrize("case", RECONCILE_CASES, ids=[c[0] for c in RECONCILE_CASES])
def test_reconcile_matches_upstream(case):
    """One sync of Autoscaler.decide, as upstream's reconcileAutoscaler test cases run it.

    Upstream's cases with `recommendations: []timestampedRecommendation{}` start with an empty
    (non-nil) history, so no initial recommendation holds back a scale-down; fresh=False does that.
    """
    _, hpa_spec, current, samples, fresh, expected = case
    autoscaler = Autoscaler(hpa_spec) if fresh else Autoscaler(hpa_spec, recommendations=[])
    decision = autoscaler.decide(NOW, current, samples)
    assert decision.desired_replicas == expected
    assert decision.current_replicas == current and decision.target_pct == hpa_spec.target_cpu_pct


def test_decision_reports_metric_and_failure():
    decision = Autoscaler(spec(2, 6, 30)).decide(NOW, 3, pods([300, 500, 700]))
    assert decision.utilization_pct == 50 and decision.raw_desired == 5
    assert "above target" in decision.reason
    failed = Autoscaler(spec(2, 6, 30)).decide(NOW, 3, pods([], count=3))
    assert failed.desired_replicas == 3 and failed.utilization_pct is None
    assert failed.reason.startswith("FailedGetResourceMetric")


def test_from_manifest_reads_the_lab_manifest():
    parsed = HPASpec.from_manifest(yaml.safe_load(MANIFEST.read_text()))
    assert (parsed.name, parsed.target_name) == ("model-serving-hpa", "model-serving-deployment")
    assert (parsed.min_replicas, parsed.max_replicas, parsed.target_cpu_pct) == (1, 4, 50)
    assert parsed.has_behavior
    assert parsed.scale_up == ScalingRules(
        0, "Max", (ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15))
    )
    assert parsed.scale_down == ScalingRules(30, "Max", (ScalingPolicy("Percent", 100, 15),))


def test_from_manifest_fills_upstream_defaults():
    """pkg/apis/autoscaling/v2/defaults.go: minReplicas 1, CPU 80%, scale-down window from the controller."""
    bare = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}, "spec": {"maxReplicas": 3}}
    parsed = HPASpec.from_manifest(bare)
    assert (parsed.min_replicas, parsed.target_cpu_pct, parsed.has_behavior) == (1, 80, False)
    partial = dict(bare, spec={"maxReplicas": 3, "behavior": {"scaleDown": {"selectPolicy": "Disabled"}}})
    parsed = HPASpec.from_manifest(partial)
    assert parsed.scale_up == hpa.DEFAULT_SCALE_UP
    assert parsed.scale_down.stabilization_window_s == 300 and parsed.scale_down.select_policy == "Disabled"
    with pytest.raises(ValueError, match="CPU utilization"):
        HPASpec.from_manifest(dict(bare, spec={"maxReplicas": 3, "metrics": [{"type": "Pods"}]}))


def test_scales_up_under_load_and_down_after_the_window():
    """Syncs every 15 s on the lab manifest: a CPU step scales to max at once, back to min only after
    the manifest's scale-down window."""
    spec = HPASpec.from_manifest(yaml.safe_load(MANIFEST.read_text()))
    autoscaler = Autoscaler(spec)
    replicas, history = spec.min_replicas, []
    for step in range(30):
        now = step * hpa.SYNC_PERIOD_S
        busy_cores = 1.6 if 60 <= now < 180 else 0.05  # total CPU the load needs, shared by ready pods
        samples = [PodSample(f"p{i}", True, busy_cores / replicas, 0.5) for i in range(replicas)]
        replicas = autoscaler.decide(now, replicas, samples).desired_replicas
        history.append((now, replicas))
    assert dict(history)[60.0] == min(spec.max_replicas, 4)  # 320% of a 50% target: 7 wanted; +4 pods per 15 s
    assert all(r == dict(history)[60.0] for t, r in history if 60 <= t < 180)
    scaled_down = min(t for t, r in history if t >= 180 and r < dict(history)[60.0])
    assert scaled_down >= 180 + spec.scale_down.stabilization_window_s - hpa.SYNC_PERIOD_S
    assert history[-1][1] == spec.min_replicas
