"""Load generation: offer traffic to a model server and measure latency honestly.

    from servelab import load
    result = load.run(url, load.Constant(rate=200, duration=10))
    result.summary()

Open loop (`run`, `sweep`) is the honest measurement; closed loop (`run_closed`) is there to
show what it hides. See `servelab.load.schedules` for the traffic shapes.

Names load on first use, so that the simulator (schedules only) and generator worker
processes do not import pandas or matplotlib they do not need.
"""

import importlib

_EXPORTS = {
    "Constant": "schedules", "Diurnal": "schedules", "Poisson": "schedules", "Ramp": "schedules",
    "Step": "schedules", "Random": "schedules", "Trace": "schedules", "Result": "result", "run": "runner", "run_closed": "runner", "warm_up": "runner",
    "Sweep": "sweeps", "sweep": "sweeps",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'servelab.load' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"servelab.load.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
