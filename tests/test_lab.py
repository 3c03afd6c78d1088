"""lab: quick/full sizes and capacity multiples, the cleanup registry, and how findings are reported."""

from __future__ import annotations

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
