"""Plots: they take the tables and runs the layers below produced, compute nothing of their own, label
axes with units and title each figure with what it shows in numbers.

One module per kind of figure; every figure is also here, as the labs call them: `plots.<name>`.
"""

from servelab.plots.calls import latency_breakdown, latency_histogram
from servelab.plots.capacity import cost_by_replicas, cost_per_million, p95_and_cost, p95_by_replicas, p95_by_setting
from servelab.plots.day import day_by_architecture, predicted_vs_measured
from servelab.plots.latency import latency_cdf, latency_over_time, latency_vs_rate, mark_saturation
from servelab.plots.scaling import pod_startup, replicas_over_time
from servelab.plots.ways_of_serving import edge_latency, serving_ways

__all__ = [
    "cost_by_replicas", "cost_per_million", "day_by_architecture", "edge_latency", "latency_breakdown",
    "latency_cdf", "latency_histogram", "latency_over_time", "latency_vs_rate", "mark_saturation",
    "p95_and_cost", "p95_by_replicas", "p95_by_setting", "pod_startup", "predicted_vs_measured",
    "replicas_over_time", "serving_ways",
]
