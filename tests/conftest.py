"""Shared pytest set-up: `tests/` is importable for the helper modules (tools.py, *_fixtures.py), and
the fixtures more than one test module uses are declared here, so tests take them by name only."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from load_fixtures import fixture_url, servelab_server  # noqa: E402, F401
from proxy_fixtures import run  # noqa: E402, F401
from quiz_fixtures import results_root  # noqa: E402, F401
