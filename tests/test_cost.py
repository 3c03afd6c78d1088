"""servelab.core.cost: OpenCost's max(request, usage) rule on a timeline computed by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from servelab.core import cost
from servelab.core.cost import PodUsage, load_pricing

CPU, MEM = 0.031611, 0.004237  # OpenCost default (GCP us-central1) on-demand, $/vCPU-h and $/GiB-h


def hand_timeline():
    """2 pods x 1 vCPU x 30 min, then 1 pod x 1 vCPU x 30 min; each uses 0.25 core and 0.5 of 1 GiB."""
    used = 0.25 * 1800  # core-seconds over 30 minutes
    return [
        PodUsage("a", 0, 1800, 1.0, 1.0, cpu_used_core_s=used, memory_used_gib=0.5),
        PodUsage("b", 0, 1800, 1.0, 1.0, cpu_used_core_s=used, memory_used_gib=0.5),
        PodUsage("c", 1800, 3600, 1.0, 1.0, cpu_used_core_s=used, memory_used_gib=0.5),
    ]


def test_hand_computed_timeline():
    report = cost.cost(hand_timeline(), load_pricing(), predictions_ok=1_000_000)
    # 3 pod-halves of an hour: 1.5 core-hours and 1.5 GiB-hours paid for.
    dollars = 1.5 * CPU + 1.5 * MEM  # = 0.053772
    idle = (1.5 - 0.375) * CPU + (1.5 - 0.75) * MEM  # requested but unused
    assert report.dollars == pytest.approx(0.053772, abs=1e-12)
    assert report.dollars == pytest.approx(dollars, rel=1e-12)
    assert report.hours == 1.0
    assert report.per_hour == pytest.approx(dollars, rel=1e-12)
    assert report.per_million == pytest.approx(dollars, rel=1e-12)  # exactly 1M predictions
    assert report.idle_share == pytest.approx(idle / dollars, rel=1e-12)
    assert report.idle_share == pytest.approx(0.72045, abs=1e-5)
    assert list(report.breakdown["pod"]) == ["a", "b", "c"]
    assert report.notes == []


def test_usage_above_request_is_what_is_paid():
    """max(request, usage): a pod that bursts past its request pays for the burst, and has no idle."""
    pod = PodUsage("burst", 0, 3600, cpu_request_cores=0.5, memory_request_gib=1.0, cpu_used_core_s=0.8 * 3600,
                   memory_used_gib=1.0)
    report = cost.cost([pod], load_pricing(), predictions_ok=10)
    assert report.dollars == pytest.approx(0.8 * CPU + 1.0 * MEM, rel=1e-12)
    assert report.idle_share == pytest.approx(0.0, abs=1e-15)
    assert report.per_million == pytest.approx(report.dollars / 10 * 1e6)


def test_unmeasured_usage_pays_request_and_says_so():
    report = cost.cost([PodUsage("p", 0, 3600, 1.0, 2.0)], load_pricing(spot=True), predictions_ok=0)
    assert report.dollars == pytest.approx(0.006655 + 2 * 0.000892, rel=1e-12)
    assert report.idle_share is None and report.per_million is None
    assert any("no measured usage" in n for n in report.notes)


def test_pricing_file_has_sources_and_dates():
    for name, entry in cost.offerings().items():
        assert entry["source"].startswith("https://"), name
        assert str(entry["read_on"]) == "2026-11-28", name
        assert entry["on_demand"]["cpu_core_hour"] > 0, name
    fargate = load_pricing("aws-fargate")
    assert (fargate.cpu_core_hour, fargate.memory_gib_hour) == (0.04048, 0.004445)
    with pytest.raises(ValueError, match="no spot price"):
        load_pricing("gke-autopilot", spot=True)
    with pytest.raises(ValueError, match="unknown offering"):
        load_pricing("nope")


def test_learner_adds_an_offering(tmp_path):
    mine = {"offerings": {"my-laptop": {"source": "https://example.org", "read_on": "2026-11-28",
                                        "on_demand": {"cpu_core_hour": 0.01, "memory_gib_hour": 0.001}}}}
    assert load_pricing("my-laptop", extra=mine).cpu_core_hour == 0.01
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(mine))  # JSON is YAML
    assert load_pricing("my-laptop", extra=path).memory_gib_hour == 0.001
    assert "opencost-default" in cost.offerings(extra=path)


def write_run(directory, meta, statuses):
    frame = pd.DataFrame({
        "intended_s": [0.1 * i for i in range(len(statuses))],
        "sent_s": [0.1 * i for i in range(len(statuses))],
        "latency_s": 0.01, "service_s": 0.01, "status": statuses, "bytes": 20,
        "replica": "a", "error": None, "infer_s": 0.001,
    })
    frame.to_csv(directory / "requests.csv", index=False)
    (directory / "meta.json").write_text(json.dumps({"mode": "open", **meta}))


def test_cost_of_a_saved_run_counts_only_successes(tmp_path):
    pods = [p.to_dict() for p in hand_timeline()]
    write_run(tmp_path, {"duration_s": 3600.0, "pods": pods}, [200, 200, 503, 0])
    report = cost.cost_of_result(tmp_path)
    assert report.predictions_ok == 2
    assert report.dollars == pytest.approx(0.053772, abs=1e-12)
    assert report.per_million == pytest.approx(0.053772 / 2 * 1e6, rel=1e-12)


def test_cost_of_a_run_without_pods_falls_back_to_replicas(tmp_path):
    meta = {"duration_s": 1800.0, "replicas": 2, "cpu_request_cores": 0.5, "memory_request_gib": 0.25}
    write_run(tmp_path, meta, [200] * 10)
    report = cost.cost_of_result(tmp_path)
    assert report.dollars == pytest.approx(2 * 0.5 * (0.5 * CPU + 0.25 * MEM), rel=1e-12)
    assert "no per-pod timeline" in report.notes[0]
    write_run(tmp_path, {"duration_s": 10.0}, [200])
    with pytest.raises(ValueError, match="cluster="):
        cost.cost_of_result(tmp_path)


def test_a_device_price_is_spread_over_its_life_and_its_predictions():
    pi = cost.load_device()
    assert (pi.name, pi.price_usd, pi.life_years) == ("raspberry-pi-5-8gb", 80.0, 3.0)
    assert pi.source.startswith("https://") and "example" in pi.note.lower()
    # $80 over 3 years of 10,000 predictions a day: 10.95M predictions, $7.31 per 1M.
    assert pi.per_million(10_000) == pytest.approx(80 / (3 * 365 * 10_000) * 1e6)
    assert pi.per_million(10_000) == pytest.approx(7.3059, abs=1e-4)
    assert pi.per_million(100_000) == pytest.approx(pi.per_million(10_000) / 10), "ten times the use, a tenth each"


def test_a_device_can_be_added_and_a_bad_one_is_named():
    extra = {"devices": {"phone": {"price_usd": 300, "life_years": 2}}}
    phone = cost.load_device("phone", extra=extra)
    assert phone.per_million(1000) == pytest.approx(300 / (2 * 365 * 1000) * 1e6) and phone.source == ""
    with pytest.raises(ValueError, match="unknown device 'pager'; known: raspberry-pi-5-8gb"):
        cost.load_device("pager")
    with pytest.raises(ValueError, match="predictions_per_day must be > 0"):
        phone.per_million(0)
