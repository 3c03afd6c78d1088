"""`servelab serve` refuses clearly what it cannot do, before serving anything."""

from __future__ import annotations

import argparse
import socket

import pytest

from servelab import cli
from servelab.server import cli as serve_cli


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
