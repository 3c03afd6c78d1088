"""The load generator's bar names the rate offered now, and leaves a line a saved notebook shows."""

import pytest
from tqdm import tqdm
from tqdm.notebook import tqdm as notebook_tqdm

from servelab.core import progress
from servelab.core.schedules import Constant, Diurnal, Poisson, Ramp, Random, Step
from servelab.load.progress import Progress, describe

STEPS = Step([(10, 50), (10, 180), (10, 400), (10, 100)])


def test_a_steady_schedule_is_named_by_its_rate_before_and_during_the_run():
    assert describe(Poisson(123, 10)) == describe(Poisson(123, 10), 5.0) == "poisson 123 req/s"
    assert describe(Constant(50, 3), 1.0) == "constant 50 req/s"


@pytest.mark.parametrize("elapsed, text", [(0.0, "step 1/4: 50 req/s"), (15.0, "step 2/4: 180 req/s"),
                                           (20.0, "step 3/4: 400 req/s"), (39.9, "step 4/4: 100 req/s"),
                                           (55.0, "step 4/4: 100 req/s"), (-1.0, "step 1/4: 50 req/s")])
def test_a_step_schedule_names_the_step_the_run_is_in(elapsed, text):
    assert describe(STEPS, elapsed) == text


def test_a_step_schedule_is_named_by_its_steps_not_their_mean():
    assert describe(STEPS) == "step 50→180→400→100 req/s"
    assert describe(Step([(1, r) for r in range(10, 100, 10)])) == "step 9 steps of 10–90 req/s"


def test_a_curve_is_named_by_its_range_and_its_rate_now():
    ramp = Ramp(10, 200, 20)
    assert describe(ramp) == "ramp 10–200 req/s"
    assert describe(ramp, 10.0) == "ramp 10–200 req/s, now 105"
    assert describe(ramp, 99.0) == "ramp 10–200 req/s, now 200"  # the last answers come after the schedule ends
    day = Diurnal(mean_rate=100, peak_to_trough=3, duration=60, period=60)
    assert describe(day, 30.0) == "diurnal 50–150 req/s, now 150"


def test_random_arrivals_are_named_after_the_curve_they_follow():
    assert describe(Random(STEPS), 12.0) == "random step 2/4: 180 req/s"


def test_the_bar_moves_to_the_current_step_as_reports_arrive():
    bar = Progress(100, describe(STEPS), True, lambda elapsed: describe(STEPS, elapsed))
    with bar:
        assert bar._bar.desc == "step 1/4: 50 req/s"
        bar.started -= 12.0  # twelve seconds into the run
        bar.update(0, 10, 10, [0.001])
        assert bar._bar.desc == "step 2/4: 180 req/s"


def test_ok_per_second_is_over_the_last_reports_not_since_the_start():
    bar = Progress(1000, "x", True)
    bar._ok_at.extend([(0.5, 25), (10.0, 500), (11.0, 900)])  # 50/s for ten seconds, then 400/s
    assert bar._ok_per_s() == pytest.approx(875 / 10.5)
    bar._ok_at.clear()
    bar._ok_at.extend([(9.0, 500), (10.0, 900)])
    assert bar._ok_per_s() == pytest.approx(400)
    bar._bar.close()


def test_a_finished_notebook_bar_prints_its_line_and_a_terminal_bar_does_not(capsys):
    progress.finish(tqdm(total=1), "terminal")
    progress.finish(notebook_tqdm(total=1, disable=True), "hidden")
    progress.finish(notebook_tqdm(total=1), "simulated 5 architectures over 24 h in 51 s")
    printed = capsys.readouterr().out  # outside a notebook, the widget prints its text form here too
    assert "simulated 5 architectures over 24 h in 51 s" in printed.splitlines()
    assert "terminal" not in printed and "hidden" not in printed
