"""lab: quick/full sizes and capacity multiples, the cleanup registry, and how findings are reported."""

from __future__ import annotations

import dataclasses

import pytest

from servelab import lab
from servelab.analysis import findings


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


def _capacity(rate: float, cpu_limit: float, machine_rate: float):
    import pandas as pd

    from servelab.analysis.calibration import Capacity

    cpu_ms = 1000 * min(cpu_limit, 1.0) / rate  # a pod that used its limit (one core at most) at its capacity
    machine_cpu_ms = 1000 * 0.85 * 2 / machine_rate
    return Capacity(model="large", slo_ms=50, rate=rate, cpu_ms=cpu_ms, machine_cpu_ms=machine_cpu_ms, cpu_limit=cpu_limit,
                    cpu_request=0.5, limits="cgroup-v1", limits_note="", cores=2, backend="local", seconds=1.0,
                    steps=pd.DataFrame())


def test_pods_are_shrunk_when_the_lab_would_load_the_machine_not_the_pods(monkeypatch, capsys):
    """One pod serving nearly all this machine can send (a fast pod, one CPU): the lab holds its pods smaller,
    says so, and sizes its rates from the smaller pod's measured capacity."""
    from servelab.analysis import calibration
    from servelab.backends.local import pod_size

    measured = [_capacity(1200, 1.5, 1600), _capacity(400, 0.45, 1200)]
    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: measured.pop(0))
    monkeypatch.setattr(lab, "QUICK", True)
    p = lab.params(quick=dict(model="large", slo_ms=50, rates=lab.capacity(0.5, 1.6)),
                   full=dict(model="large", slo_ms=50, rates=lab.capacity(1.0)))
    try:
        out = capsys.readouterr().out
        assert "measure the machine, not the pods" in out and "held at 0.4" in out
        # one core used of its 1.5, shrunk so that 1.6 x its capacity is FIT_TO of the machine: 1 x 0.55 x 1600 / 1920
        assert pod_size.cpu_scale() == pytest.approx(0.55 * 1600 / 1920 / 1.5)
        assert p.rates == [200.0, 640.0] and not measured
    finally:
        pod_size.fit_pods(1.0)


def test_pods_keep_their_manifest_size_when_the_machine_can_load_them(monkeypatch):
    from servelab.analysis import calibration
    from servelab.backends.local import pod_size

    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: _capacity(500, 0.5, 1400))
    monkeypatch.setattr(lab, "QUICK", True)
    lab.params(quick=dict(model="large", slo_ms=50, rates=lab.capacity(1.6)), full=dict(model="large", slo_ms=50, rates=lab.capacity(1.6)))
    assert pod_size.cpu_scale() == 1.0


def test_a_calibration_shared_through_a_file_is_reused_by_the_next_kernel_and_says_so(monkeypatch, tmp_path):
    """$SERVELAB_CALIBRATION_FILE: the first kernel measures and saves; the next reads it (a test run's next
    lab), printing where it came from; `again` measures anew."""
    import pandas as pd

    from servelab.analysis import calibration

    measured = [_capacity(500, 0.5, 1400), _capacity(480, 0.5, 1400)]
    measured[0] = dataclasses.replace(measured[0], steps=pd.DataFrame({"rate": [300.0, 500.0], "met": [True, True]}))
    monkeypatch.setattr(calibration, "measure", lambda *a, **k: measured.pop(0))
    monkeypatch.setenv(calibration.SHARED_VARIABLE, str(tmp_path / "calibration.json"))
    first = calibration.calibrate("large", 50, quick=True)
    calibration._cache.clear()  # a new kernel
    second = calibration.calibrate("large", 50, quick=True)
    assert (second.rate, second.cpu_ms, second.limits) == (first.rate, first.cpu_ms, first.limits)
    assert list(second.steps.rate) == [300.0, 500.0] and "earlier notebook" not in str(first)
    assert f"by an earlier notebook, read from {tmp_path / 'calibration.json'}" in str(second)
    assert calibration.calibrate("large", 50, quick=True, again=True).rate == 480 and not measured
    calibration._cache.clear()
