"""How big this machine holds each pod's CPU: the manifest's limit, times an emulation factor and a fit.

`fit_pods` shrinks the pods a lab starts when this machine could not load one pod of the manifest's size;
$SERVELAB_CPU_SCALE emulates a faster or slower machine. A cluster reads both when it is created.
"""

from __future__ import annotations

import os
from dataclasses import replace

from servelab.backends.local.pod_template import ContainerSpec

CPU_SCALE_VARIABLE = "SERVELAB_CPU_SCALE"

_fitted = 1.0  # set by fit_pods(): how much smaller than its manifest says this machine needs a pod


def fit_pods(factor: float) -> None:
    """Hold every pod started from now on at `factor` times its manifest's CPU limit (1: as written).

    A lab calls this when this machine cannot send one pod of the manifest's size more than it serves
    (one CPU, or a fast pod beside a slow load generator): the pods are shrunk until it can, and the
    lab says so, instead of measuring the machine and calling it the pods."""
    global _fitted
    if not 0 < factor <= 1:
        raise ValueError(f"fit_pods({factor!r}): a pod can only be shrunk to fit this machine, 0 < factor <= 1")
    _fitted = factor


def cpu_scale() -> float:
    """The factor on every pod's CPU limit: $SERVELAB_CPU_SCALE times what `fit_pods` set.

    $SERVELAB_CPU_SCALE emulates a faster or slower machine: the tests run the labs with 3 and 1/3 so
    that one pod serves about three times more, or less, than it does on this machine, and check that
    every lab still sizes its experiments from what it measures. A request above the scaled limit is
    lowered to it (Kubernetes requires request <= limit).
    """
    return emulated_scale() * _fitted


def emulated_scale() -> float:
    """$SERVELAB_CPU_SCALE, checked (1 when unset)."""
    text = os.environ.get(CPU_SCALE_VARIABLE, "1")
    try:
        factor = float(text)
    except ValueError:
        factor = 0.0
    if not 0.01 <= factor <= 100:
        raise ValueError(f"{CPU_SCALE_VARIABLE}={text!r}: give a factor between 0.01 and 100 (e.g. 3 or 0.333), or unset it")
    return factor


def scaled(spec: ContainerSpec, factor: float) -> ContainerSpec:
    """`spec` with its CPU limit times `factor`, held so that the pod behaves as on a machine that much faster
    or slower.

    A quota stalls a pod that spent it for the rest of the period: at the manifest's limit L (cores,
    one at most for one server process), (1 - L) x 100 ms, the same on any machine. Held at L x factor over
    CFS's 100 ms, a slower pod would stall longer than any slower machine makes it (83 ms instead of 50 ms
    at 0.5 CPU / 3, over a 50 ms SLO), so the period is shortened until the stall is the manifest's again.
    """
    if factor == 1 or spec.cpu_limit is None:
        return spec
    limit = spec.cpu_limit * factor
    base = min(spec.cpu_limit, 1.0)
    period = spec.cpu_period_s
    if factor < 1 and base < 1:
        period = spec.cpu_period_s * (1 - base) / (1 - base * factor)
    return replace(spec, cpu_limit=limit, cpu_request=min(spec.cpu_request, limit), cpu_period_s=period)
