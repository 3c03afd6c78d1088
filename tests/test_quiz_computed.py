"""Questions computed from the learner's own saved runs: each key is what the learner's table says."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from quiz_fixtures import (
    BANKS,
    P95_AT_100_MS,
    SLO_MS,
    lab_results,
    save_run,
    save_sweep,
)

from servelab.analysis import sweeps
from servelab.core import cost
from servelab.core.result import Result
from servelab.load import Sweep
from servelab.quiz import bank as banks
from servelab.quiz import computed
from servelab.quiz.grading import computed_keys, grade


@pytest.fixture(scope="module")
def every_lab(tmp_path_factory) -> object:
    """A results folder with everything the labs' save cells write."""
    return lab_results(tmp_path_factory.mktemp("labs") / "results")


def test_a_figure_of_one_run_is_the_learners_own_summary(tmp_path):
    run = save_run(tmp_path / "run", rate=100, low=0.010, high=0.030)
    summary = Result.load(run).summary()  # what the learner's table showed
    assert computed.summary_value(run, "p95") == summary["p95"]
    assert computed.summary_value(run, "p95") == pytest.approx(np.percentile(np.linspace(10, 30, 200), 95), rel=1e-3)


def test_highest_rate_within_slo_is_read_as_the_lab_reads_its_table(results_root):
    sweep = results_root / "03-load" / "sweep"
    # 200 req/s has p95 under the SLO but one failed request, so 100 req/s is the answer.
    assert computed.max_rate_under_slo(sweep, SLO_MS) == pytest.approx(100.0)
    assert computed.max_rate_under_slo(sweep, SLO_MS) == sweeps.max_rate_within_slo(Sweep.load(sweep).summary(), SLO_MS)
    assert computed.p95_ms_at_highest_rate_under_slo(sweep, SLO_MS) == pytest.approx(P95_AT_100_MS, rel=1e-3)


def test_what_the_top_rate_achieved_and_what_low_traffic_costs(results_root):
    sweep = results_root / "03-load" / "sweep"
    table = Sweep.load(sweep).summary()
    assert computed.achieved_rate_at_top_rate(sweep) == table.loc[400, "achieved_rate"] < 400
    # Same pod, about the same run length: 50 req/s shares the bill among half the predictions of 100 req/s.
    assert computed.cost_ratio_lowest_to_best(sweep, SLO_MS) == pytest.approx(2.0, rel=0.02)


def test_two_runs_side_by_side(tmp_path):
    slow = save_run(tmp_path / "open", rate=100, low=0.001, high=0.400)
    fast = save_run(tmp_path / "closed", rate=100, low=0.001, high=0.004)
    assert computed.p99_ratio(slow, fast) == pytest.approx(
        Result.load(slow).summary()["p99"] / Result.load(fast).summary()["p99"])
    save_sweep(tmp_path / "batching", {10: (0.006, 0.008, 0), 90: (0.003, 0.004, 0)})
    save_sweep(tmp_path / "plain", {10: (0.002, 0.004, 0), 90: (0.002, 0.004, 0)})
    assert computed.p50_rise_at_lowest_rate(tmp_path / "batching", tmp_path / "plain") == pytest.approx(4.0, abs=0.01)


def test_late_share_at_the_top_rate_counts_late_answers_and_failures(results_root, tmp_path):  # noqa: F811
    # 400 req/s: 800 latencies evenly from 30 to 400 ms, so (400 - 50) / (400 - 30) of them are over 50 ms.
    assert computed.late_pct_at_top_rate(results_root / "03-load" / "sweep", SLO_MS) == pytest.approx(
        100 * 350 / 370, abs=0.2)
    # 100 req/s: 200 requests from 40 to 60 ms, half over 50 ms, and the first 20 (all fast) failed: 60 % late.
    sweep = save_sweep(tmp_path / "sweep", {10: (0.002, 0.004, 0), 100: (0.040, 0.060, 20)})
    assert computed.late_pct_at_top_rate(sweep, SLO_MS) == pytest.approx(60.0)
    assert computed.late_pct_at_top_rate(sweep, SLO_MS) == 100 * Sweep.load(sweep)[-1].late_share(SLO_MS)


def test_p95_ratio_is_taken_at_the_top_rate_both_sweeps_offered(tmp_path):
    plain = save_sweep(tmp_path / "plain", {10: (0.002, 0.004, 0), 90: (0.020, 0.120, 0)})
    batching = save_sweep(tmp_path / "batching", {10: (0.006, 0.008, 0), 90: (0.010, 0.030, 0)})
    tables = [Sweep.load(path).summary() for path in (plain, batching)]  # what `by_setting` shows
    assert computed.p95_ratio_at_top_rate(plain, batching) == pytest.approx(tables[0].loc[90, "p95"] / tables[1].loc[90, "p95"])
    assert computed.p95_ratio_at_top_rate(plain, batching) == pytest.approx(115 / 29, rel=0.01)  # 20 + 0.95 * 100, 10 + 0.95 * 20
    shorter = save_sweep(tmp_path / "shorter", {10: (0.002, 0.004, 0), 50: (0.002, 0.004, 0)})
    with pytest.raises(computed.ResultError, match="must offer the same rates"):
        computed.p95_ratio_at_top_rate(plain, shorter)


def test_idle_share_is_the_cost_rules_own(tmp_path):
    # One pod reserving 0.5 CPU for 2 hours that used half of it: idle = 0.5 core-hours of the CPU price,
    # out of the bill for 1 core-hour and 0.5 GiB-hours (memory use unknown, so priced at its request and not idle).
    pod = {"name": "pod-a", "start_s": 0.0, "end_s": 7200.0, "cpu_request_cores": 0.5, "memory_request_gib": 0.25,
           "cpu_used_core_s": 1800.0}
    run = save_run(tmp_path / "online", rate=100, low=0.010, high=0.030, pods=[pod])
    price = cost.load_pricing()
    expected = 100 * 0.5 * price.cpu_core_hour / (price.cpu_core_hour + 0.5 * price.memory_gib_hour)
    assert computed.idle_share_pct(run) == pytest.approx(expected)
    assert computed.idle_share_pct(run) == pytest.approx(100 * cost.cost_of_result(run, price).idle_share)
    with pytest.raises(computed.ResultError, match="recorded no pod's CPU use"):
        computed.idle_share_pct(save_run(tmp_path / "bare", rate=100, low=0.010, high=0.030))


def test_pods_share_of_their_cpu_limit_reads_the_scaling_table(tmp_path):
    def pods(n: int, used_core_s: float) -> list[dict]:
        return [{"name": f"pod-{i}", "start_s": 0.0, "end_s": 10.0, "cpu_request_cores": 0.5, "memory_request_gib": 0.25,
                 "cpu_used_core_s": used_core_s} for i in range(n)]

    for n in (1, 2):
        save_run(tmp_path / "04-scale" / f"replicas-{n}" / "run-00", 100, 0.010, 0.030, pods=pods(n, 3.0),
                 cpu_limit_cores=0.5)
    # The 2 pods used 6 CPU seconds in 10 s, 0.6 cores, out of 2 x 0.5 allowed.
    assert computed.pods_cpu_share_pct(tmp_path / "04-scale") == pytest.approx(60.0)
    save_run(tmp_path / "no-limit" / "replicas-1" / "run-00", 100, 0.010, 0.030, pods=pods(1, 3.0))
    save_run(tmp_path / "no-limit" / "replicas-2" / "run-00", 100, 0.010, 0.030, pods=pods(2, 3.0))
    with pytest.raises(computed.ResultError, match="no CPU limit"):
        computed.pods_cpu_share_pct(tmp_path / "no-limit")


def test_warm_requests_leave_the_cold_one_out(tmp_path):
    run = save_run(tmp_path / "one-by-one", rate=100, low=0.001, high=0.002)
    warm = Result.load(run).frame.iloc[1:]
    http_ms, model_ms = warm["service_s"].median() * 1000, warm["infer_s"].median() * 1000
    assert computed.warm_median_ms(run) == pytest.approx(http_ms)
    assert computed.overhead_share_pct(run) == pytest.approx(75.0)  # the fixture's model time is a quarter
    assert computed.http_to_model_ratio(run) == pytest.approx(http_ms / model_ms) == pytest.approx(4.0)


def test_saved_latencies_and_tables(tmp_path):
    samples = np.r_[np.full(90, 10.0), np.full(10, 50.0)]
    np.savetxt(tmp_path / "us.txt", samples)
    assert computed.percentile_us(tmp_path / "us.txt", 50) == 10.0
    assert computed.tail_ratio(tmp_path / "us.txt", 99, 50) == pytest.approx(5.0)
    assert computed.share_slower_pct(tmp_path / "us.txt", times_median=2) == pytest.approx(10.0)
    pd.DataFrame({"a (s)": [1.0, 3.0], "b (s)": [4.0, 6.0]}, index=["pod-1", "all pods"]).to_csv(tmp_path / "t.csv")
    assert computed.table_value(tmp_path / "t.csv", "a (s)") == 1.0
    assert computed.table_value(tmp_path / "t.csv", "a (s)", row="all pods") == 3.0
    assert computed.table_share_pct(tmp_path / "t.csv", "a (s)", "b (s)") == pytest.approx(25.0)
    with pytest.raises(computed.ResultError, match="no column 'c'"):
        computed.table_value(tmp_path / "t.csv", "c")
    with pytest.raises(computed.ResultError, match="no row 'pod-9'"):
        computed.table_value(tmp_path / "t.csv", "a (s)", row="pod-9")


@pytest.mark.parametrize(
    ("offset", "correct"),
    # tolerance rel 0.05 (about 1.45 ms at 29 ms) or abs 0.5 ms, whichever is wider
    [(0.0, True), (0.0499, True), (0.0501, False), (-0.0499, True), (-0.0501, False)],
)
def test_computed_question_is_graded_at_the_tolerance_boundary(results_root, offset, correct):
    quiz = banks.load("03-load", BANKS)
    [q] = [q for q in quiz.questions if q.kind == "computed" and q.compute["function"] == "p95_ms_at_highest_rate_under_slo"]
    values, _ = computed_keys(quiz, results_root)
    assert values[q.id] == pytest.approx(P95_AT_100_MS, rel=1e-3)
    result = grade(quiz, {q.id: values[q.id] * (1 + offset)}, values)
    [mark] = [m for m in result.marks if m.question == q.id]
    assert mark.correct is correct


@pytest.mark.parametrize("name", [n for n in banks.names(BANKS) if n != "pattern"])
def test_every_computed_question_is_keyed_from_what_the_labs_save(name, every_lab):
    """Each computed question reads a path and a column the labs' save cells write, in the form they write it."""
    quiz = banks.load(name, BANKS)
    values, problems = computed_keys(quiz, every_lab)
    assert problems == {}
    assert {q.id for q in quiz.questions if q.kind == "computed"} == set(values)
    assert all(np.isfinite(v) for v in values.values()), values


def test_a_re_run_changes_the_key(tmp_path):
    """The key is the last saved run: saving a new sweep over the old one moves it."""
    quiz = banks.load("03-load", BANKS)
    [q] = [q for q in quiz.questions if q.kind == "computed" and q.compute["function"] == "max_rate_under_slo"]
    save_sweep(tmp_path / "03-load" / "sweep")
    before = computed_keys(quiz, tmp_path)[0][q.id]
    save_sweep(tmp_path / "03-load" / "sweep", {50: (0.004, 0.024, 0), 100: (0.100, 0.300, 0)})
    assert (before, computed_keys(quiz, tmp_path)[0][q.id]) == (100.0, 50.0)


def test_missing_run_marks_the_question_wrong_and_says_why(tmp_path):
    quiz = banks.load("03-load", BANKS)
    [q] = [q for q in quiz.questions if q.kind == "computed" and q.compute["result"] == "03-load/sweep"][:1]
    values, problems = computed_keys(quiz, tmp_path)
    result = grade(quiz, {q.id: 29.0}, values, problems)
    [mark] = [m for m in result.marks if m.question == q.id]
    assert not mark.correct and "run and save the sweep first" in mark.note


def test_no_rate_within_slo_is_explained(tmp_path):
    save_run(tmp_path / "sweep" / "run-00", rate=100, low=0.1, high=0.2)
    with pytest.raises(computed.ResultError, match="no rate in this sweep kept p95 within 50 ms"):
        computed.max_rate_under_slo(tmp_path / "sweep", 50)


def test_a_run_that_is_not_saved_says_how_to_save_it(tmp_path):
    with pytest.raises(computed.ResultError, match="no saved run here"):
        computed.summary_value(tmp_path / "nothing", "p95")


def test_a_damaged_saved_run_is_a_note_not_a_crash(tmp_path):
    run = save_run(tmp_path / "run", rate=100, low=0.010, high=0.030)
    (run / "meta.json").write_text(json.dumps({"duration_s": "soon"}))
    with pytest.raises(computed.ResultError, match="cannot read this saved result"):
        computed.expected({"function": "summary_value", "result": "run", "args": {"key": "p95"}}, tmp_path)
