"""Load generation: offer traffic to a model server and measure latency honestly.

    from servelab import load
    result = load.run(url, load.Constant(rate=200, duration=10))
    result.summary()

Open loop (`run`, `sweep`) is the honest measurement; closed loop (`run_closed`) is there to
show what it hides. See `servelab.core.schedules` for the traffic shapes.

Names load on first use, so that the simulator (schedules only) and generator worker
processes do not import pandas or matplotlib they do not need.
"""

import importlib
from typing import Any

_SCHEDULES = "servelab.core.schedules"
_EXPORTS = {
    "Constant": _SCHEDULES, "Diurnal": _SCHEDULES, "Poisson": _SCHEDULES, "Ramp": _SCHEDULES,
    "Step": _SCHEDULES, "Random": _SCHEDULES, "Trace": _SCHEDULES, "Result": "servelab.core.result",
    "run": "servelab.load.runner", "run_closed": "servelab.load.runner", "warm_up": "servelab.load.runner",
    "Sweep": "servelab.load.rate_sweep", "sweep": "servelab.load.rate_sweep",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'servelab.load' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
