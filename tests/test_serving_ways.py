"""serving_ways: a batch Job and an edge device run as processes here, and the three ways priced."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from servelab import limits, serving_ways
from servelab.core import cost
from servelab.core.manifests import container


def test_batch_job_sets_model_rows_and_batch_size_in_the_jobs_args():
    manifest = serving_ways.batch_job(model="medium", rows=10, batch_size=4)
    args = container(manifest)["args"]
    assert args[:7] == ["score", "--model", "medium", "--rows", "10", "--batch-size", "4"]
    container(manifest)["args"].append("--seed")
    assert manifest["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--seed", "container() edits in place"


def test_run_job_runs_the_jobs_command_and_its_pod_pays_for_its_requests():
    manifest = serving_ways.batch_job(model="tiny", rows=200, batch_size=50)
    run = serving_ways.run_job(manifest)
    assert "scored 200 rows with tiny in batches of 50" in run.output
    assert run.seconds > 0 and run.cpu_s > 0 and run.cpu_limit == 0.5
    assert run.limit_enforced in limits.MEANING or "NOT enforced" in run.note
    assert serving_ways.rows_per_s(run) > 0
    pod = serving_ways.job_pod(manifest, run)
    assert (pod.cpu_request_cores, pod.memory_request_gib, pod.end_s) == (0.5, 0.25, run.seconds)


def test_run_job_says_what_a_failing_job_printed():
    manifest = serving_ways.batch_job(model="tiny", rows=10, batch_size=0)
    with pytest.raises(RuntimeError, match="batch_size must be at least 1"):
        serving_ways.run_job(manifest)


def test_the_job_is_held_by_the_rung_a_pod_would_get(monkeypatch):
    monkeypatch.setenv("SERVELAB_LIMITS", "userspace")
    run = serving_ways.run_job(serving_ways.batch_job(model="tiny", rows=200, batch_size=50))
    assert run.limit_enforced == "userspace" and "by the userspace rung" in run.note and run.cpu_s > 0
    monkeypatch.setenv("SERVELAB_LIMITS", "none")
    run = serving_ways.run_job(serving_ways.batch_job(model="tiny", rows=200, batch_size=50))
    assert run.limit_enforced is False and "NOT enforced: SERVELAB_LIMITS=none" in run.note


def test_a_device_is_a_uniformly_slower_cpu_every_prediction_slowed_not_a_few_stalled():
    free = serving_ways.predict_on_device("medium", 40)
    assert len(free.seconds) == 40 and (free.seconds > 0).all()
    assert not free.process.limit_enforced and "no CPU limit" in free.process.note
    slow = serving_ways.predict_on_device("medium", 40, cpu=0.25)
    assert slow.process.limit_enforced == "paced" and "4x slower" in slow.process.note
    # Every prediction lasts at least 1/share of its back-to-back cost (a quota would leave most at full speed).
    back_to_back_s = float(re.search(r"\(([\d.]+) ms back to back here", slow.process.note).group(1)) / 1000
    assert (slow.seconds >= 0.99 * back_to_back_s / 0.25).all()
    assert np.median(slow.seconds) > 2 * np.median(free.seconds)


def edge_run(model: str, ms: list[float], cpu: float | None = None, enforced: bool = False):
    import numpy as np

    process = serving_ways.ProcessRun("", sum(ms) / 1000, sum(ms) / 1000, cpu, enforced, "")
    return serving_ways.EdgeRun(model, np.asarray(ms) / 1000, process)


def test_edge_table_reads_percentiles_rate_and_share_within_the_slo():
    table = serving_ways.edge_table({"slow": edge_run("large", [2.0] * 8 + [90.0] * 2, 0.1, True)}, slo_ms=50)
    row = table.loc["slow"]
    assert row["p50 (ms)"] == pytest.approx(2.0) and row["p95 (ms)"] > 50
    assert row["mean (ms)"] == pytest.approx(19.6) and row["predictions/s"] == pytest.approx(1000 / 19.6)
    assert row["within 50 ms (%)"] == pytest.approx(80.0) and row["limit enforced"]
    assert row["CPU per prediction (ms)"] == pytest.approx(19.6), "the run's CPU seconds over its predictions"


def ways_table():
    """Online at the same hop and 20 ms away, a Job and a device, priced: 100 predictions each."""
    from load_fixtures import synthetic_result

    price = cost.load_pricing()
    pods = [dict(name="p", start_s=0.0, end_s=3600.0, cpu_request_cores=0.5, memory_request_gib=0.25, cpu_used_core_s=0.0)]
    online = {"same hop": synthetic_result([4.0] * 100, meta={"pods": pods, "added_round_trip_ms": 0.0}),
              "near region": synthetic_result([24.0] * 100, meta={"pods": pods, "added_round_trip_ms": 20.0})}
    job = serving_ways.ProcessRun("scored 100 rows with tiny in batches of 50: 0.001 s, 100,000 rows/s", 1800.0, 1.0, 0.5, True, "")
    job_pod = cost.PodUsage("job", 0.0, 1800.0, 0.5, 0.25, cpu_used_core_s=1.0)
    device = cost.Device("board", 73.0, 2.0, "", "")
    return serving_ways.serving_ways(online, job, job_pod, edge_run("tiny", [0.02] * 100), price, device, per_day=1000)


def test_serving_ways_prices_each_way_by_its_own_rule():
    ways = ways_table()
    online_row, batch_row, edge_row, near_row = (ways.iloc[i] for i in range(4))
    assert list(ways.index) == ["online, same hop", "batch (a Job, all rows at once)", "edge (on the device, no network)",
                                "online, near region"]
    assert (ways["predictions"] == 100).all()
    assert online_row["$ per 1M predictions"] == pytest.approx(2 * batch_row["$ per 1M predictions"]), "an hour vs half an hour"
    assert near_row["$ per 1M predictions"] == online_row["$ per 1M predictions"], "distance changes the wait, not the bill"
    assert batch_row["time to last result (s)"] == 1800.0 and pd.isna(batch_row["p95 (ms)"])
    assert edge_row["p50 (ms)"] == pytest.approx(0.02)
    # The device: $73 over 2 years of 1,000 predictions a day is $100 per 1,000 predictions' worth of 730,000.
    assert edge_row["$ per 1M predictions"] == pytest.approx(73 / (2 * 365 * 1000) * 1e6)
    assert edge_row["$ for the run"] == pytest.approx(edge_row["$ per 1M predictions"] * 100 / 1e6)
    assert list(ways["round trip added (ms)"].fillna(-1)) == [0.0, -1, 0.0, 20.0]
    assert "$73 over 2 years at 1,000 predictions a day" in edge_row["who pays for what"]


def test_the_edge_is_judged_against_the_nearest_region_distance_included():
    from servelab.analysis import ways as judge

    ways = ways_table()
    found = judge.edge_fastest(ways, "edge (on the device, no network)", "online, near region")
    assert found.id == "06-edge-fastest" and found.holds
    assert "ms online in the near region (20 ms of it the round trip)" in found.evidence
    ways.loc["online, near region", "p50 (ms)"] = 0.03  # less than twice the device's 0.02 ms
    assert not judge.edge_fastest(ways, "edge (on the device, no network)", "online, near region").holds


def test_a_region_is_the_lessons_service_renamed_on_its_own_port_with_a_round_trip():
    from servelab.backends.local.proxy.round_trip import RoundTrip

    far = serving_ways.region_service("model-serving-far", 150, 15, port=8503)
    assert far["metadata"]["name"] == "model-serving-far" and far["spec"]["selector"] == {"app": "model-serving"}
    assert far["spec"]["ports"][0]["port"] == 8503 and far["spec"]["ports"][0]["nodePort"] == 30503
    assert RoundTrip.of_service(far) == RoundTrip(150.0, 15.0)


def test_a_region_served_beside_the_lessons_service_adds_its_round_trip():
    import socket

    from local_fixtures import SERVICE, manifest

    from servelab import load
    from servelab.backends.local import LocalCluster
    from servelab.core import manifests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        fixed = sock.getsockname()[1]
    with LocalCluster(service_port=fixed) as cluster:  # every Service on one port, as lab.connect(service_port=8501)
        cluster.apply([manifests.deployment(model="tiny"), manifest(SERVICE)])
        cluster.wait_ready("model-serving-deployment", timeout=60)
        url = serving_ways.serve_from_afar(cluster, "model-serving-near", 20, port=8502)
        assert cluster.service_port == fixed and cluster.service_url() == f"http://127.0.0.1:{fixed}"
        assert url != cluster.service_url()
        run = load.run(url, load.Constant(20, 0.5), cluster=cluster)
    assert run.meta["added_round_trip_ms"] == 20.0 and run.summary()["p50"] >= 20.0
