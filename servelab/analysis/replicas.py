"""Replica counts side by side (lab 04): what each count served at its busiest, where the machine's
cores ran out, and the lesson's two scaling mistakes, from the sweeps of each count.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from servelab.backends.manifests import container, cpu_cores, deployment


def scaling_table(sweeps: dict[int, Any]) -> pd.DataFrame:
    """For each replica count, its busiest run: what it served, the CPU its pods and the generator used,
    its speed-up over the fewest replicas, and the perfect speed-up to compare with.

    Pods' CPU is their measured CPU seconds over the window they were alive in that run.
    """
    def busiest(sweep) -> dict[str, float]:
        result = max(sweep, key=lambda r: r.summary()["achieved_rate"])
        pods = result.meta["pods"]
        window = max(pod["end_s"] for pod in pods) - min(pod["start_s"] for pod in pods)
        return {"served (req/s)": result.summary()["achieved_rate"],
                "pods' CPU (cores)": sum(pod["cpu_used_core_s"] for pod in pods) / window,
                "generator CPU (cores)": result.summary()["client_cpu"]}

    table = pd.DataFrame({n: busiest(sweep) for n, sweep in sweeps.items()}).T
    table.index.name = "replicas"
    fewest = table.index.min()
    table["CPU limit of the pods (cores)"] = table.index * _pod_cpu_limit()
    table["speed-up"] = table["served (req/s)"] / table.loc[fewest, "served (req/s)"]
    table["perfect speed-up"] = table.index / fewest
    return table


def _pod_cpu_limit() -> float:
    """The CPU limit (cores) of the lesson's Deployment, read from its manifest."""
    return cpu_cores(container(deployment())["resources"]["limits"]["cpu"])


def few_and_many(by_replicas: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """The fewest and the most replicas at the highest and the lowest offered rate, side by side:
    p95, failures, $ per hour, $ per 1M predictions and idle share (the seed's two scaling mistakes)."""
    replicas = by_replicas.index.get_level_values("replicas")
    rates = by_replicas.index.get_level_values("offered_rate")
    few, many, low, high = replicas.min(), replicas.max(), rates.min(), rates.max()
    cases = {"one pod, heavy load": (few, high), "more pods, heavy load": (many, high),
             "one pod, low traffic": (few, low), "many pods, low traffic": (many, low)}
    return pd.DataFrame({case: {"replicas": n, "offered_rate": rate, **by_replicas.loc[(n, rate), ["p95", "errors"]],
                                **costs.loc[(n, rate), ["$ per hour", "$ per 1M predictions", "idle share"]]}
                         for case, (n, rate) in cases.items()}).T


# -- Lab 06: online, batch and edge --------------------------------------------------------------
