"""Tables and ages exactly as kubectl prints them (k8s.io/apimachinery duration.HumanDuration)."""

from __future__ import annotations

import pytest

from servelab.backends.base import (
    POD_RUNNING,
    POD_UNSCHEDULABLE,
    DeploymentInfo,
    Event,
    HPAInfo,
    PodInfo,
)
from servelab.backends.kubectl_format import (
    cpu_quantity,
    deployments_table,
    describe_pod,
    format_age,
    hpas_table,
    memory_quantity,
    pods_table,
    table,
)


@pytest.mark.parametrize("seconds, age", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (30, "30s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
    (599, "9m59s"), (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (5 * 3600 + 1800, "5h30m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (800 * 86400, "2y70d"),
    (9 * 365 * 86400, "9y"),
])
def test_age_like_kubectl(seconds, age):
    assert format_age(seconds) == age


def test_columns_are_padded_like_kubectls_tabwriter():
    # Cell width is max(6, longest + 3); the last column is not padded.
    assert table(("A", "BB"), [("x", "y")]) == "A     BB\nx     y"
    assert table(("NAME", "AGE"), [("model-serving", "5s")]).splitlines()[0] == "NAME            AGE"


def test_the_lessons_tables():
    pod = PodInfo("model-serving-deployment-5d7f9c7d9f-abc12", True, "Running", 0, 30, None)
    assert pods_table([pod]) == (
        "NAME                                        READY   STATUS    RESTARTS   AGE\n"
        "model-serving-deployment-5d7f9c7d9f-abc12   1/1     Running   0          30s"
    )
    restarted = PodInfo("p", False, "Running", 1, 300, None, last_restart_age_s=4)
    assert pods_table([restarted]).splitlines()[1].split(None, 3)[3] == "1 (4s ago)   5m"
    deployment = DeploymentInfo("model-serving-deployment", 5, 5, 5, 5, 120)
    assert deployments_table([deployment]) == (
        "NAME                       READY   UP-TO-DATE   AVAILABLE   AGE\n"
        "model-serving-deployment   5/5     5            5           2m"
    )
    hpa = HPAInfo("model-serving-hpa", "Deployment/model-serving-deployment", 35.4, 50, 1, 4, 2, 61)
    assert hpas_table([hpa]).splitlines()[1].split()[2:5] == ["cpu:", "35%/50%", "1"]
    assert pods_table([]) == "No resources found in default namespace."


def test_quantities_as_kubectl_prints_them():
    assert [cpu_quantity(c) for c in (0.5, 2.0, 0.25, 1.5)] == ["500m", "2", "250m", "1500m"]
    assert [memory_quantity(g) for g in (0.25, 2.0, 0.5 / 1024)] == ["256Mi", "2Gi", "512Ki"]


def test_describe_a_pending_pod_says_why():
    labels = {"app": "model-serving", "pod-template-hash": "5d7f9c7d9f"}
    pod = PodInfo("web-5d7f9c7d9f-abc12", False, "Pending", 0, 12, None, deployment="web", cpu_request_cores=0.5,
                  cpu_limit_cores=0.5, memory_request_gib=0.25, memory_limit_gib=0.5, labels=labels,
                  pending_reason="0/1 nodes are available: 1 Insufficient cpu.")
    events = [Event(1.0, POD_UNSCHEDULABLE, "pod/web-5d7f9c7d9f-abc12", "0/1 nodes are available: 1 Insufficient cpu.",
                    unix_s=1000.0),
              Event(1.0, POD_RUNNING, "pod/another", "started pid 1", unix_s=1000.0)]
    assert describe_pod(pod, "model-server", "servelab/model-server:0.1.0", events, now_unix=1012.0) == """\
Name:           web-5d7f9c7d9f-abc12
Namespace:      default
Node:           <none>
Labels:         app=model-serving
                pod-template-hash=5d7f9c7d9f
Status:         Pending
IP:
Controlled By:  ReplicaSet/web-5d7f9c7d9f
Containers:
  model-server:
    Image:  servelab/model-server:0.1.0
    Limits:
      cpu:     500m
      memory:  512Mi
    Requests:
      cpu:     500m
      memory:  256Mi
Conditions:
  Type           Status
  PodScheduled   False
Events:
  Type      Reason             Age   From                Message
  ----      ------             ---   ----                -------
  Warning   FailedScheduling   12s   default-scheduler   0/1 nodes are available: 1 Insufficient cpu."""


def test_describe_a_running_pod_shows_where_it_runs():
    pod = PodInfo("web-1", True, "Running", 1, 60, "http://127.0.0.1:40001", ip="127.0.0.1", port=40001)
    text = describe_pod(pod, "model-server", None, [], now_unix=0.0)
    assert "Node:           local/127.0.0.1" in text and "    Port:           40001/TCP" in text
    assert "    Restart Count:  1" in text and "  Ready          True" in text
    assert text.endswith("Events:  <none>")
