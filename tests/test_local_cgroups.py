"""CPU limits are real where cgroups allow it (issue 4, Must show 5), and detected, never assumed."""

from __future__ import annotations

import json
import time

import pytest

from local_fixtures import closed_loop, deployment
from servelab.backends.local import LocalCluster, cgroups

BODY = json.dumps({"instances": [[1.0 + i % 7, 2.0, 5.0] for i in range(64)]}).encode()  # ~11 ms of CPU
ARGS = ["serve", "--model", "large", "--name", "my-model", "--port", "8501", "--threads", "1"]


def named(d: dict, name: str) -> dict:
    d["metadata"]["name"] = name
    d["spec"]["selector"]["matchLabels"]["app"] = name
    d["spec"]["template"]["metadata"]["labels"]["app"] = name
    return d


def saturate(cluster: LocalCluster, name: str, seconds: float = 4.0) -> tuple[float, float]:
    """(cores used, requests/s) of deployment `name`'s one pod under a saturating closed loop."""
    (pod,) = [p for p in cluster.pods() if p.deployment == name]
    closed_loop(pod.url + "/v1/models/my-model:predict", BODY, users=4, seconds=0.5)  # warm up
    used_before, started = next(p for p in cluster.pods() if p.name == pod.name).cpu_used_core_s, time.monotonic()
    ok = closed_loop(pod.url + "/v1/models/my-model:predict", BODY, users=4, seconds=seconds)
    used_after, elapsed = next(p for p in cluster.pods() if p.name == pod.name).cpu_used_core_s, time.monotonic() - started
    return (used_after - used_before) / elapsed, ok / elapsed


def test_detection_explains_itself():
    support = cgroups.detect()
    assert support.usable or support.reason, "when limits cannot be enforced, the reason is given"
    cgroups.remove_parent(support)


def test_half_a_cpu_limit_holds_under_saturating_load():
    if not cgroups.detect().usable:
        pytest.skip(f"cgroups are not writable here: {cgroups.detect().reason}")
    with LocalCluster(service_port=0) as cluster:
        cluster.apply([named(deployment(args=ARGS), "limited"), named(deployment(args=ARGS, cpu_limit=None), "unlimited")])
        cluster.wait_ready("limited", timeout=40)
        cluster.wait_ready("unlimited", timeout=40)
        assert cluster.run_metadata()["limits_enforced"] is True
        limited_cores, limited_rps = saturate(cluster, "limited")
        unlimited_cores, unlimited_rps = saturate(cluster, "unlimited")
    print(f"limited: {limited_cores:.2f} cores {limited_rps:.0f} req/s; "
          f"unlimited: {unlimited_cores:.2f} cores {unlimited_rps:.0f} req/s")
    assert limited_cores <= 0.56
    # Throughput follows the CPU the pod may use: requests per CPU-second stay about the same.
    per_core_ratio = (limited_rps / limited_cores) / (unlimited_rps / unlimited_cores)
    assert 0.6 < per_core_ratio < 1.6, per_core_ratio
    if unlimited_cores > 0.7:  # on a busy shared machine the unlimited pod may not get more
        assert limited_rps < unlimited_rps * 0.85


def test_without_cgroups_limits_are_reported_unenforced_and_cpu_comes_from_psutil(monkeypatch, capsys):
    # As on a laptop or a hosted JupyterHub: no writable cgroup hierarchy.
    monkeypatch.setattr(cgroups, "detect", lambda: cgroups.Support(None, {}, "cannot create cgroup /x: Permission denied"))
    monkeypatch.setattr(cgroups, "_warned", False)
    with LocalCluster(service_port=0) as cluster:
        cluster.apply(deployment())
        cluster.wait_ready("model-serving-deployment", timeout=40)
        (pod,) = cluster.pods()
        meta = cluster.run_metadata()
    assert meta["limits_enforced"] is False and "Permission denied" in meta["limits_note"]
    assert pod.cpu_used_core_s > 0.1, "CPU still measured (psutil), for the HPA and for cost"
    warnings = [l for l in capsys.readouterr().err.splitlines() if "NOT enforced" in l]
    assert len(warnings) == 1 and "limits_enforced=False" in warnings[0]
