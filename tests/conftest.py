"""Shared pytest set-up. `tests/` is importable for the helper modules (tools.py, *_fixtures.py) through
pyproject's `pythonpath`, and the fixture modules more than one test module uses are registered here as
plugins, so tests take their fixtures by name only."""

pytest_plugins = [
    "load_fixtures",  # servelab_server, fixture_url
    "proxy_fixtures",  # run
    "quiz_fixtures",  # results_root
]
