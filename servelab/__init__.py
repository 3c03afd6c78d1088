"""servelab: measure how the way an ML model is served changes its latency and its cost.

Labs import from here; nothing in the package imports a lab. Submodules load on first use
(`servelab.connect`, `servelab.load`, `servelab.quiz`, ...), so `servelab serve` starts
without importing pandas, matplotlib or the kubernetes client.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {"core", "server", "load", "backends", "sim", "quiz", "plots", "lab", "analysis"}
# Short names for modules deeper in the tree that the labs use often.
_ALIASES = {name: f"servelab.core.{name}" for name in ("models", "hpa", "cost", "manifests")}


def __getattr__(name: str) -> Any:
    if name == "connect":
        from servelab.backends import connect

        return connect
    if name in _SUBMODULES:
        return importlib.import_module(f"servelab.{name}")
    if name in _ALIASES:
        return importlib.import_module(_ALIASES[name])
    raise AttributeError(f"module 'servelab' has no attribute {name!r}")
