"""Schedules: the offered rate curve and the intended send times derived from it."""

import numpy as np
import pytest

from servelab.core import schedules
from servelab.core.schedules import (
    Constant,
    Diurnal,
    Poisson,
    Ramp,
    Random,
    Step,
    Trace,
    from_dict,
)

ALL = [
    Constant(500, 10),
    Poisson(200, 5, seed=3),
    Step([(2, 50), (3, 200)]),
    Ramp(10, 100, 4),
    Diurnal(100, 4, 600, period=600),
    Trace((0, 60, 120), (10, 20, 0)),
]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_send_times_are_sorted_float64_inside_the_schedule(schedule):
    times = schedule.send_times()
    assert times.dtype == np.float64
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= 0 and times[-1] < schedule.duration


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_to_dict_round_trips(schedule):
    again = schedules.from_dict(schedule.to_dict())
    assert again == schedule
    np.testing.assert_array_equal(again.send_times(), schedule.send_times())


def test_constant_is_evenly_spaced_from_zero():
    times = Constant(500, 10).send_times()
    assert len(times) == 5000
    np.testing.assert_allclose(np.diff(times), 0.002)
    assert times[0] == 0.0


def test_deterministic_counts_equal_the_integral_of_the_rate():
    assert len(Step([(2, 50), (3, 200)]).send_times()) == 2 * 50 + 3 * 200
    assert len(Ramp(10, 100, 4).send_times()) == 4 * (10 + 100) / 2
    assert len(Diurnal(100, 4, 600, period=600).send_times()) == 60_000  # a whole period averages the mean
    assert len(Trace((0, 60, 120), (10, 20, 0)).send_times()) == 60 * 15 + 60 * 10


def test_step_changes_rate_at_the_boundary():
    times = Step([(2, 50), (3, 200)]).send_times()
    assert (times < 2).sum() == 100
    np.testing.assert_allclose(np.diff(times[times >= 2]), 1 / 200, rtol=1e-6)


def test_step_at_names_the_step_running_at_a_time():
    schedule = Step([(2, 50), (3, 200)])
    assert [schedule.step_at(t) for t in (-1.0, 0.0, 1.99, 2.0, 4.99, 5.0, 9.0)] == [0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(schedule.step_at(np.array([0.5, 2.5])), [0, 1])


@pytest.mark.parametrize("schedule, low, high", [
    (Constant(50, 2), 50, 50), (Step([(2, 50), (3, 200), (1, 20)]), 20, 200), (Ramp(300, 10, 5), 10, 300),
    (Diurnal(mean_rate=100, peak_to_trough=3, duration=60, period=60), 50, 150),
])
def test_rate_range_is_the_lowest_and_highest_rate_offered(schedule, low, high):
    assert schedule.rate_range() == pytest.approx((low, high), rel=1e-4)


def test_ramp_density_follows_the_rate():
    counts, _ = np.histogram(Ramp(0, 100, 10).send_times(), bins=10, range=(0, 10))
    expected = [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]  # integral of the rate over each second
    assert np.all(np.abs(counts - expected) <= 1)


def test_diurnal_peaks_mid_period_by_default_with_the_given_ratio():
    day = Diurnal(100, 4, 86400)
    assert day.rate_at(43200) == pytest.approx(160)
    assert day.rate_at(0.0) == pytest.approx(40)
    shifted = Diurnal(100, 4, 86400, peak_at=3600 * 18)
    assert shifted.rate_at(3600 * 18) == pytest.approx(160)


def test_poisson_is_reproducible_and_seeded():
    s = Poisson(200, 5, seed=3)
    np.testing.assert_array_equal(s.send_times(), s.send_times())
    assert not np.array_equal(s.send_times(seed=1), s.send_times(seed=2))
    assert not np.array_equal(Poisson(200, 5, seed=4).send_times(), s.send_times())
    gaps = np.diff(Poisson(1000, 20).send_times())
    assert gaps.mean() == pytest.approx(1 / 1000, rel=0.05)
    assert gaps.std() == pytest.approx(1 / 1000, rel=0.05)  # exponential: std == mean


def test_rate_at_scalar_and_array_and_zero_outside():
    s = Step([(1, 10), (1, 20)])
    assert s.rate_at(0.5) == 10.0 and isinstance(s.rate_at(0.5), float)
    np.testing.assert_array_equal(s.rate_at(np.array([-1, 0, 1.5, 2, 5])), [0, 10, 20, 0, 0])


def test_trace_from_csv(tmp_path):
    path = tmp_path / "day.csv"
    path.write_text("time_s,rate\n0,10\n60,20\n120,0\n")
    trace = Trace.from_csv(path)
    assert trace.duration == 120
    assert trace.rate_at(30) == pytest.approx(15)
    assert trace.to_dict()["source"] == str(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Constant(-1, 10), "rate"),
        (lambda: Constant(10, 0), "duration"),
        (lambda: Step([]), "at least one"),
        (lambda: Diurnal(10, 0.5, 60), "peak_to_trough"),
        (lambda: Trace((1, 2), (3, 4)), "start at 0"),
        (lambda: schedules.from_dict({"kind": "zigzag"}), "unknown schedule kind"),
    ],
)
def test_bad_parameters_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_random_arrivals_follow_the_curve_and_round_trip():
    step = Step(steps=[(10, 20), (10, 200)])
    times = Random(step, seed=3).send_times()
    low, high = (times < 10).sum(), (times >= 10).sum()
    assert abs(low - 200) < 5 * 200 ** 0.5 and abs(high - 2000) < 5 * 2000 ** 0.5  # Poisson counts
    gaps = np.diff(times[times >= 10])
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.15)  # exponential gaps: spread about their mean
    assert np.array_equal(times, Random(step, seed=3).send_times())
    assert not np.array_equal(times[:50], Random(step, seed=4).send_times()[:50])
    again = from_dict(Random(step, seed=3).to_dict())
    assert again == Random(step, seed=3) and again.rate_at(15.0) == 200
