"""Tables and ages exactly as kubectl prints them (k8s.io/apimachinery duration.HumanDuration)."""

from __future__ import annotations

import pytest

from servelab.backends.base import DeploymentInfo, HPAInfo, PodInfo
from servelab.backends.kubectl_format import deployments_table, format_age, hpas_table, pods_table, table


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
