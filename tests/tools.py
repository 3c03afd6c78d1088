"""Finding the external tools some tests drive (curl, wrk, hey, chromium, kubectl).

On a laptop a missing tool skips its test with the reason; in CI (SERVELAB_REQUIRE_TOOLS=1,
set by .ci/run after installing them) a missing tool fails the test, so CI cannot go green by
skipping what it was meant to check.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """Return the path of `name` on PATH, or skip (fail in CI) saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    brew = f"brew install --cask {name}" if name == "chromium" else f"brew install {name}"
    message = f"{name} is not installed (Debian/Ubuntu: apt-get install {name}; macOS: {brew})"
    if os.environ.get("SERVELAB_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
