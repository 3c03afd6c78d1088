"""The embedded local backend: Kubernetes manifests run as processes on this machine (no Docker).

- manifests.py: what the local backend takes from Deployment/Service/HPA YAML (probes, pod-template-hash);
  reading the documents and their quantities is servelab/core/manifests.py, shared with kube.py
- node.py: what this machine holds as one node (allocatable CPU, memory, pods) and whether a pod fits
- pods.py: one pod's life (Pending until scheduled, probes, restarts with back-off, graceful termination, CPU usage)
- CPU/memory limits come from servelab/limits (a cgroup, a user scope or the userspace enforcer)
- proxy/ / service.py: the Service, a load-balancing proxy process (balancing per request or per
  connection, optionally adding a network round trip) and its owner-side handle
- watchdog.py: the process that kills the pods when their owner is gone (servelab/core/processes.py starts them)
- cluster.py: LocalCluster, the controllers (deployment, endpoints, HPA) tying these together
- kubectl.py: the lesson's kubectl verbs with kubectl's columns

Names load on first use, so the proxy and watchdog processes (`python -m ...`) start light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalCluster", "PortInUseError", "Unschedulable", "allocatable"]


def __getattr__(name: str) -> Any:
    if name == "LocalCluster":
        from servelab.backends.local.cluster import LocalCluster

        return LocalCluster
    if name == "Unschedulable":
        from servelab.backends.local.cluster import Unschedulable

        return Unschedulable
    if name == "allocatable":
        from servelab.backends.local.node import allocatable

        return allocatable
    if name == "PortInUseError":
        from servelab.backends.local.service import PortInUseError

        return PortInUseError
    raise AttributeError(f"module 'servelab.backends.local' has no attribute {name!r}")
