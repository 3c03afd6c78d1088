"""`servelab load`: flags to a schedule, a readable table on stdout, results saved on request."""

import argparse
import json

import pytest

from servelab import cli
from servelab.core import schedules
from servelab.load.load_cli import add_arguments, duration, schedule_from_args, steps


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--url", "http://x", *argv])


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("30", 30), ("1.5s", 1.5)])
def test_durations(text, seconds):
    assert duration(text) == seconds


def test_bad_duration_says_what_is_expected():
    with pytest.raises(argparse.ArgumentTypeError, match="examples: 10s"):
        duration("ten seconds")


def test_flags_make_the_schedule(tmp_path):
    assert schedule_from_args(parse("--rate", "200", "--duration", "10s")) == schedules.Constant(200, 10)
    assert schedule_from_args(parse("--rate", "5", "--schedule", "poisson", "--seed", "3")) == schedules.Poisson(5, 10, seed=3)
    assert schedule_from_args(parse("--rate", "5", "--end-rate", "50", "--schedule", "ramp", "--duration", "1m")) == \
        schedules.Ramp(5, 50, 60)
    assert schedule_from_args(parse("--schedule", "step", "--steps", "10s:50,5s:200")) == schedules.Step(steps("10s:50,5s:200"))
    day = schedule_from_args(parse("--schedule", "diurnal", "--rate", "100", "--duration", "2m"))
    assert day == schedules.Diurnal(100, 4.0, 120, period=120)
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,rate\n0,1\n10,2\n")
    assert schedule_from_args(parse("--schedule", "trace", "--trace", str(trace))).duration == 10


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "ramp", "--rate", "5"], "--end-rate"),
    (["--schedule", "step"], "--steps"),
    (["--schedule", "constant"], "--rate"),
    (["--schedule", "trace"], "--trace"),
])
def test_missing_flags_are_named(argv, message):
    with pytest.raises(SystemExit, match=message):
        schedule_from_args(parse(*argv))


def test_servelab_load_prints_a_table_and_saves(servelab_server, tmp_path, capsys):
    """Must-show 5 (shortened to 2 s here; the 10 s run's figures are in the report)."""
    code = cli.main(["load", "--url", servelab_server.predict_url, "--rate", "200", "--duration", "2s",
                     "--save", str(tmp_path / "run"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("open loop: constant 200 req/s for 2 s -> http://127.0.0.1:")
    for header in ("latency (ms)", "p50", "p99.9", "requests", "achieved/s", "lag p99 ms", "saved:"):
        assert header in out
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["schedule"] == {"kind": "constant", "rate": 200.0, "duration": 2.0}
    assert meta["summary"]["requests"] == 400 and meta["summary"]["errors"] == 0
    assert (tmp_path / "run" / "requests.csv").read_text().count("\n") == 401
