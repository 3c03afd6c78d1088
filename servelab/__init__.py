"""servelab: measure how the way an ML model is served changes its latency and its cost.

Labs import from here; nothing in the package imports a lab.
"""

__version__ = "0.1.0"
