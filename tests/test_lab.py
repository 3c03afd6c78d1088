"""lab: quick/full sizes, the cleanup registry, and the small analyses the labs call."""

from __future__ import annotations

import pandas as pd
import pytest

from servelab.analysis import findings, sweeps
from servelab import cost, lab
from servelab.backends import base


@pytest.fixture(autouse=True)
def nothing_left_open():
    yield
    lab.cleanup()


class Closable:
    def __init__(self, log: list, name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    def close(self) -> None:
        self.log.append(self.name)
        if self.fails:
            raise RuntimeError("boom")


def test_params_picks_full_unless_quick(monkeypatch, capsys):
    monkeypatch.setattr(lab, "QUICK", False)
    assert lab.params(quick=dict(rate=1), full=dict(rate=100)).rate == 100
    monkeypatch.setattr(lab, "QUICK", True)
    assert lab.params(quick=dict(rate=1), full=dict(rate=100)).rate == 1
    assert "quick" in capsys.readouterr().out


def test_params_need_the_same_names_in_both_modes():
    with pytest.raises(ValueError, match="rate"):
        lab.params(quick=dict(rate=1), full=dict(rates=[1]))


def test_cleanup_closes_newest_first_and_survives_a_failure():
    log: list[str] = []
    lab.track(Closable(log, "cluster"))
    lab.track(Closable(log, "server", fails=True))
    lab.cleanup()
    assert log == ["server", "cluster"]
    lab.cleanup()
    assert log == ["server", "cluster"], "a second cleanup closes nothing again"


def test_params_closes_what_an_earlier_run_left_open():
    log: list[str] = []
    lab.track(Closable(log, "old server"))
    lab.params(quick={}, full={})
    assert log == ["old server"]


def test_track_refuses_what_it_cannot_close():
    with pytest.raises(TypeError, match="close"):
        lab.track(object())


def sweep_table(p95: list[float], rates: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"p95": p95}, index=pd.Index(rates, name="offered_rate"))


@pytest.mark.parametrize(
    "p95, expected",
    [
        ([16, 15, 17, 21, 80, 300], 300.0),  # turns up at the 5th rate
        ([16, 40, 17, 21, 80, 300], 300.0),  # one noisy step below saturation is ignored
        ([16, 15, 17, 21, 25, 30], None),  # never doubles: not saturated
    ],
)
def test_saturation_is_where_p95_turns_up_for_good(p95, expected):
    assert sweeps.saturation_rate(sweep_table(p95, [25, 50, 100, 200, 300, 400])) == expected


def test_deployment_changes_model_and_replicas_only():
    original = lab.deployment()
    changed = lab.deployment(model="large", replicas=3)
    args = changed["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "large" and changed["spec"]["replicas"] == 3
    changed["spec"]["template"]["spec"]["containers"][0]["args"] = original["spec"]["template"]["spec"]["containers"][0]["args"]
    changed["spec"]["replicas"] = original["spec"]["replicas"]
    assert changed == original


def test_pod_startup_splits_created_running_ready():
    events = [
        base.Event(1.0, base.POD_CREATED, "pod/a", "Pending"),
        base.Event(1.5, base.POD_RUNNING, "pod/a", "started"),
        base.Event(4.0, base.POD_READY, "pod/a", "ready"),
        base.Event(5.0, base.POD_CREATED, "pod/b", "Pending"),  # never ready: left out
    ]
    table = lab.pod_startup(base.events_frame(events))
    assert list(table.index) == ["a"]
    assert table.loc["a"].tolist() == [0.5, 2.5, 3.0]


def test_pod_cost_table_prices_an_idle_pod_by_its_request():
    price = cost.load_pricing()
    pods = [dict(name="a", start_s=0.0, end_s=3600.0, cpu_request_cores=0.5, memory_request_gib=0.25, cpu_used_core_s=0.0)]
    table = lab.pod_cost_table(pods, price)
    hourly = 0.5 * price.cpu_core_hour + 0.25 * price.memory_gib_hour
    assert table.loc["a", "$ per hour"] == pytest.approx(hourly)
    assert table.loc["all pods", f"$ per month ({lab.HOURS_PER_MONTH} h)"] == pytest.approx(hourly * lab.HOURS_PER_MONTH)


def hpa_step_timeline(start_s: float = 10.0):
    """A step whose rate rises at 10 s and falls at 30 s (relative): the HPA adds a pod 2 s after the
    rise, it is ready 3 s later, and the HPA removes it 32 s after the fall."""
    events = [
        base.Event(5.0, base.POD_READY, "pod/a", "ready"),
        base.Event(start_s + 5, base.HPA_DECISION, "hpa/h", "", dict(utilization_pct=20.0, target_pct=50.0, current=1, desired=1)),
        base.Event(start_s + 12, base.HPA_DECISION, "hpa/h", "", dict(utilization_pct=90.0, target_pct=50.0, current=1, desired=2)),
        base.Event(start_s + 12, base.SCALED, "deployment/d", "", dict(old=1, new=2)),
        base.Event(start_s + 15, base.POD_READY, "pod/b", "ready"),
        base.Event(start_s + 62, base.SCALED, "deployment/d", "", dict(old=2, new=1)),
        base.Event(start_s + 62, base.POD_TERMINATING, "pod/b", "deleted"),
    ]
    return base.events_frame(events), start_s


def test_step_edges_are_where_the_rate_changes():
    assert lab.step_edges([(10, 20), (20, 250), (30, 20)]) == [0.0, 10.0, 30.0, 60.0]


def test_ready_pods_start_from_what_was_ready_before_the_run():
    timeline, start_s = hpa_step_timeline()
    ready = lab.ready_pods(timeline, start_s)
    assert ready.values.tolist() == [[0.0, 1], [15.0, 2], [62.0, 1]]


def test_scaling_delays_measure_each_lag_of_the_hpa():
    timeline, start_s = hpa_step_timeline()
    delays = lab.scaling_delays(timeline, start_s, [0.0, 10.0, 30.0, 60.0])
    assert delays.tolist() == [2.0, 3.0, 32.0]


def test_step_comparison_counts_late_and_failed_requests_and_mean_pods():
    from load_fixtures import synthetic_result

    pod = dict(name="a", start_s=0.0, end_s=1.0, cpu_request_cores=0.5, memory_request_gib=0.25, cpu_used_core_s=0.1)
    fast = synthetic_result([5.0] * 100, meta={"pods": [pod]})
    slow = synthetic_result([5.0] * 50 + [80.0] * 40 + [5.0] * 10, status=[200] * 90 + [500] * 10,
                            meta={"pods": [pod, {**pod, "name": "b"}]})
    table = lab.step_comparison({"fast": fast, "slow": slow}, cost.load_pricing(), peak=(0.0, 1.0), slo_ms=50)
    assert table.loc["fast", "over 50 ms or failed (%)"] == 0
    assert table.loc["slow", "over 50 ms or failed (%)"] == pytest.approx(50.0)  # 40 late + 10 failed of 100
    assert table.loc["slow", "failed"] == 10
    assert table.loc["fast", "mean pods"] == pytest.approx(1.0) and table.loc["slow", "mean pods"] == pytest.approx(2.0)
    assert table.loc["slow", "$ per 1M predictions"] > table.loc["fast", "$ per 1M predictions"] > 0


def test_finding_says_what_decided_and_records_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVELAB_RESULTS", str(tmp_path))
    assert lab.finding("t-late", "One pod is late more often.", True, "18% vs 2% late") is True
    assert capsys.readouterr().out == "This run shows it: One pod is late more often.\n  (18% vs 2% late)\n"
    assert lab.finding("t-late", "One pod is late more often.", False, "3% vs 2% late", "Raise the peak rate.") is False
    assert capsys.readouterr().out == ("This run did NOT show that one pod is late more often.\n  (3% vs 2% late)\n"
                                       "  Raise the peak rate.\n")
    assert lab.cannot_show("t-cores", "Four pods serve four times one.", "2 cores hold 2 pods") is False
    assert "This machine cannot show that four pods serve four times one.\n  Why: 2 cores hold 2 pods" in capsys.readouterr().out
    recorded = findings.read(tmp_path / "findings.jsonl")
    assert recorded["t-late"].holds is False and recorded["t-late"].evidence == "3% vs 2% late"  # the later verdict
    assert recorded["t-cores"].cannot == "2 cores hold 2 pods"


def test_max_rate_within_slo_skips_rates_with_failures():
    table = pd.DataFrame({"p95": [5.0, 20.0, 30.0, 400.0], "errors": [0, 0, 3, 0]}, index=[10.0, 20.0, 30.0, 40.0])
    assert sweeps.max_rate_within_slo(table, slo_ms=50) == 20.0
    assert sweeps.max_rate_within_slo(table, slo_ms=1) == 0.0


def sweep_with_pods(served: list[float], cpu_core_s: float, n_pods: int):
    """Runs of 2 s each that achieve `served` req/s, with `n_pods` pods alive for 1 s of it."""
    from load_fixtures import synthetic_result

    pods = [dict(name=f"p{i}", start_s=0.0, end_s=1.0, cpu_request_cores=0.5, memory_request_gib=0.25,
                 cpu_used_core_s=cpu_core_s) for i in range(n_pods)]
    runs = []
    for rate in served:
        run = synthetic_result([5.0] * int(2 * rate), meta={"pods": pods})
        run.meta["duration_s"] = 2.0
        runs.append(run)
    return runs


def test_scaling_table_compares_each_count_with_perfect_scaling():
    table = lab.scaling_table({1: sweep_with_pods([25, 50], 0.4, 1), 2: sweep_with_pods([40, 75], 0.35, 2)})
    assert table.loc[1, "served (req/s)"] == pytest.approx(50) and table.loc[2, "served (req/s)"] == pytest.approx(75)
    assert table.loc[2, "pods' CPU (cores)"] == pytest.approx(0.7)  # two pods, 0.35 core-s each, over 1 s
    assert table.loc[2, "speed-up"] == pytest.approx(1.5) and table.loc[2, "perfect speed-up"] == 2
    assert table.loc[2, "CPU limit of the pods (cores)"] == pytest.approx(2 * 0.5)  # the manifest's 500m


def test_few_and_many_picks_the_corners_of_the_sweep():
    index = pd.MultiIndex.from_product([[1, 4], [20.0, 300.0]], names=["replicas", "offered_rate"])
    by_replicas = pd.DataFrame({"p95": [5.0, 900.0, 6.0, 40.0], "errors": [0, 50, 0, 0]}, index=index)
    costs = pd.DataFrame({"$ per hour": [1.0, 1.0, 4.0, 4.0], "$ per 1M predictions": [0.5, 0.1, 2.0, 0.2],
                          "idle share": [0.9, 0.0, 0.97, 0.5]}, index=index)
    table = lab.few_and_many(by_replicas, costs)
    assert table.loc["one pod, heavy load", ["replicas", "offered_rate", "p95", "errors"]].tolist() == [1, 300.0, 900.0, 50]
    assert table.loc["many pods, low traffic", ["replicas", "offered_rate", "$ per 1M predictions"]].tolist() == [4, 20.0, 2.0]


def test_latency_and_cost_puts_the_pods_request_beside_its_price():
    from load_fixtures import synthetic_result

    def run(cpu: float):
        pods = [dict(name="p", start_s=0.0, end_s=1.0, cpu_request_cores=cpu, memory_request_gib=0.25, cpu_used_core_s=0.1)]
        return synthetic_result([5.0] * 100, meta={"pods": pods})

    table = lab.latency_and_cost({"small": run(0.5), "big": run(2.0)}, cost.load_pricing())
    assert table["CPU request (cores)"].tolist() == [0.5, 2.0]
    assert table.loc["big", "$ per 1M predictions"] > 3 * table.loc["small", "$ per 1M predictions"]
    assert table.loc["big", "idle share"] > table.loc["small", "idle share"]


class RollingCluster:
    """A cluster whose one pod is replaced by a new one a few polls after apply (unless unchanged)."""

    def __init__(self, answer: str) -> None:
        self.answer, self.polls = answer, 0

    def apply(self, manifest) -> list[str]:
        self.polls = 0
        return [f"deployment.apps/model-serving-deployment {self.answer}"]

    def pods(self):
        from types import SimpleNamespace

        self.polls += 1
        return [SimpleNamespace(name="old", ready=True)] if self.polls < 3 else [SimpleNamespace(name="new", ready=True)]


def test_roll_out_waits_for_only_new_pods_and_not_for_an_unchanged_deployment():
    rolling = RollingCluster("configured")
    assert lab.roll_out(rolling, lab.deployment(), timeout_s=5) == ["deployment.apps/model-serving-deployment configured"]
    assert rolling.polls >= 3
    unchanged = RollingCluster("unchanged")
    lab.roll_out(unchanged, lab.deployment(), timeout_s=5)
    assert unchanged.polls == 0, "no poll after an apply that changed nothing"
