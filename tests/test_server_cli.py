"""`servelab serve` refuses clearly what it cannot do, before serving anything."""

from __future__ import annotations

import argparse
import socket

import pytest

from servelab import cli
from servelab.server import serve_cli


def test_a_busy_port_says_so_and_what_to_do():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SystemExit, match="pick another --port"):
            cli.main(["serve", "--port", str(busy.getsockname()[1])])


def test_stall_needs_both_flags():
    with pytest.raises(SystemExit, match="both --stall-every and --stall-for"):
        cli.main(["serve", "--stall-for", "1"])


def test_host_defaults_to_servelab_host(monkeypatch):
    monkeypatch.setenv("SERVELAB_HOST", "0.0.0.0")
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    assert parser.parse_args([]).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--threads", "0"], "--threads must be at least 1"),
        (["--max-concurrency", "0"], "--max-concurrency must be at least 1"),
        (["--batch-max-size", "1"], "--batch-max-size must be 0"),
        (["--grace-period", "0"], "--grace-period must be > 0"),
        (["--stall-every", "1", "--stall-for", "2"], "shorter than --stall-every"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--max-connections", "0"], "--max-connections must be at least 1"),
        (["--drain-delay", "30"], "--drain-delay must be >= 0 and shorter than --grace-period"),
        (["--header-timeout", "0"], "--header-timeout and --body-timeout must be > 0"),
    ],
)
def test_nonsense_settings_are_refused_with_the_rule(flags, words):
    with pytest.raises(SystemExit, match=words):
        cli.main(["serve", *flags])


def test_every_numeric_flag_is_an_option_of_the_same_name():
    import dataclasses

    from servelab.server.app import Options

    fields = {field.name for field in dataclasses.fields(Options)}
    assert {flag[2:].replace("-", "_") for flag, *_ in serve_cli.TUNABLES} == fields - {"model", "name"}
