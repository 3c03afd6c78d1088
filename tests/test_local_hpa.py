"""The local HPA controller scales on measured pod CPU, up under load and down after the manifest's
window. Only the sync period is shortened (a constructor argument, as upstream's
--horizontal-pod-autoscaler-sync-period); the windows come from a test copy of the manifest's
`behavior`, never from special-cased code. The load is sized from this machine's calibration,
as the labs size theirs, so the pod is busy enough to scale on any machine.
"""

from __future__ import annotations

import copy

from local_fixtures import HPA, SERVICE, OpenLoad, deployment, manifest, wait_for

from servelab.analysis.calibration import calibrate
from servelab.backends.local import LocalCluster

NAME = "model-serving-deployment"
SCALE_DOWN_WINDOW_S = 4
# Of one pod's capacity within the SLO (about its CPU limit, so its utilization is near 100 %):
# this keeps utilization (usage / the 0.5 CPU request) near 75 %, over the 50 % target, and below
# overload (an overloaded pod fails its readiness probe and leaves the Service, as on Kubernetes).
LOAD = 0.75


def hpa_for_test() -> dict:
    h = copy.deepcopy(manifest(HPA))
    h["spec"]["maxReplicas"] = 3  # a 2-core machine
    h["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = SCALE_DOWN_WINDOW_S
    return h


def test_hpa_scales_up_under_cpu_load_and_down_after_the_window():
    rate = LOAD * calibrate("large", slo_ms=50, quick=True, progress=False).rate
    with LocalCluster(service_port=0, sync_period_s=2.0) as cluster:
        cluster.apply([manifest(SERVICE), deployment(args=["serve", "--model", "large", "--name", "my-model",
                                                           "--port", "8501", "--threads", "1"])])
        cluster.wait_ready(NAME, timeout=40)
        cluster.apply(hpa_for_test())
        url = cluster.service_url() + "/v1/models/my-model:predict"
        with OpenLoad(url, rate=rate, timeout=30):
            wait_for(lambda: cluster.deployments()[0].replicas >= 2, 40, "the HPA to scale up", interval=0.5)
        load_stopped = cluster.now()
        wait_for(lambda: cluster.deployments()[0].replicas == 1, 40, "the HPA to scale back down", interval=0.5)
        cluster.kubectl("get hpa")
        timeline = cluster.timeline()

    decisions = timeline[(timeline.kind == "hpa-decision") & timeline.utilization_pct.notna()]
    ups = decisions[decisions.desired > decisions.current]
    assert not ups.empty and ups.utilization_pct.iloc[0] > 50, decisions[["t_s", "utilization_pct", "desired"]]
    assert ups.message.iloc[0].startswith("cpu ")
    scaled = timeline[(timeline.kind == "scaled") & (timeline.by == "hpa")]
    down = scaled[scaled.new < scaled.old]
    assert not down.empty
    # The scale-down waits for the window: no recommendation above the new count inside it
    # (a sync without metrics records no recommendation, as upstream).
    last_high = decisions[(decisions.t_s < down.t_s.iloc[0]) & (decisions.raw_desired > down.new.iloc[0])].t_s.max()
    assert down.t_s.iloc[0] - last_high >= SCALE_DOWN_WINDOW_S - 0.5
    assert down.t_s.iloc[0] > load_stopped
