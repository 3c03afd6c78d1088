"""Load generation: offer traffic to a model server and measure latency honestly.

    from servelab import load
    result = load.run(url, load.Constant(rate=200, duration=10))
    result.summary()

Open loop (`run`, `sweep`) is the honest measurement; closed loop (`run_closed`) is there to
show what it hides. See `servelab.load.schedules` for the traffic shapes.
"""

from servelab.load.result import Result
from servelab.load.runner import run, run_closed
from servelab.load.schedules import Constant, Diurnal, Poisson, Ramp, Step, Trace
from servelab.load.sweep import Sweep, sweep

__all__ = ["Constant", "Diurnal", "Poisson", "Ramp", "Result", "Step", "Sweep", "Trace", "run", "run_closed", "sweep"]
