"""What every lab notebook needs around its measurements: sizes, a cluster, and a clean exit.

- `params(quick=..., full=...)`: the lab's durations and rates. `SERVELAB_QUICK=1` (tests, CI)
  picks the short set; otherwise the full set, sized for a 2-core laptop.
- `connect()`, `serve()`: a cluster or a model server that is closed for you, in the lab's
  last cell (`cleanup()`) and again when the kernel shuts down, whichever comes first.
- `SERVELAB_BACKEND=local|kube` chooses the backend, so CI on kind runs the same notebooks.
- `ROOT`: the repository, where `cluster/` lives, so the lesson's `-f cluster/...` paths work.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

QUICK = os.environ.get("SERVELAB_QUICK") == "1"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

_open: list[Any] = []


def params(*, quick: dict[str, Any], full: dict[str, Any]) -> SimpleNamespace:
    """Pick the quick or full sizes, say which, and close anything an earlier run left open.

    Both dicts must have the same keys, so a lab reads the same names in either mode.
    """
    if quick.keys() != full.keys():
        raise ValueError(f"quick and full need the same keys; differ in {sorted(quick.keys() ^ full.keys())}")
    cleanup()  # a lab run again in the same kernel starts from nothing
    chosen = quick if QUICK else full
    mode = "quick (SERVELAB_QUICK=1: short runs for tests)" if QUICK else "full (sized for a 2-core laptop)"
    print(f"mode: {mode}")
    for key, value in chosen.items():
        print(f"  {key} = {value!r}")
    return SimpleNamespace(**chosen)


def track(thing: Any) -> Any:
    """Remember something with close() or stop() so `cleanup()` ends it; returns it unchanged."""
    if not (hasattr(thing, "close") or hasattr(thing, "stop")):
        raise TypeError(f"{type(thing).__name__} has neither close() nor stop(); nothing to clean up")
    _open.append(thing)
    return thing


def cleanup() -> None:
    """Close everything the lab started, newest first. Safe to call again: the second does nothing."""
    while _open:
        thing = _open.pop()
        stop = getattr(thing, "close", None) or getattr(thing, "stop")
        try:
            stop()
        except Exception as error:  # one failure must not leave the rest running
            print(f"cleanup: closing {type(thing).__name__} failed: {error}")
        else:
            print(f"cleanup: closed {type(thing).__name__}")


atexit.register(cleanup)


def backend_choice() -> str:
    """The backend connect() asks for: $SERVELAB_BACKEND (local or kube), else auto."""
    return os.environ.get("SERVELAB_BACKEND", "auto")


def connect(**kwargs: Any):
    """`servelab.connect()` with the backend from $SERVELAB_BACKEND, closed by `cleanup()`.

    In IPython it also defines the `%kubectl` line magic on this cluster, so a cell can read
    `%kubectl get pods` exactly as the lesson does, on either backend.
    """
    from servelab.backends import connect as connect_backend

    cluster = track(connect_backend(backend=backend_choice(), **kwargs))
    _define_kubectl_magic(cluster)
    return cluster


def _define_kubectl_magic(cluster) -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def kubectl(line: str) -> None:
        cluster.kubectl(line)  # prints the table itself; returning it would print it twice

    shell.register_magic_function(kubectl, magic_kind="line", magic_name="kubectl")
