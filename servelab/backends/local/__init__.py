"""The embedded local backend: Kubernetes manifests run as processes on this machine (no Docker).

- local_cluster.py: LocalCluster, the `backends.base.Cluster` facade tying the parts below together
- loop_bridge.py: the thread and asyncio loop every controller and read runs on
- objects.py: the Deployments, Services and HPAs a cluster holds, and its timeline of events
- deployment_controller.py: pods to match each Deployment (rollouts, scale-down order) and the scheduler
- service_controller.py: one Service proxy per Service, fed its Ready pods (the endpoints controller)
- hpa_controller.py: the HPA controller's sync loop (the algorithm is servelab/core/hpa/)
- listings.py / run_metadata.py: the read side (get, describe, top, rollout status) and what a run ran on
- kubectl.py: the lesson's kubectl verbs with kubectl's columns
- pod_template.py: what one pod of a Deployment runs (container, requests/limits, probes) and its name;
  reading the documents and their quantities is servelab/core/manifests.py, shared with kube.py
- validation.py: what the local backend refuses that a real API server would accept (one node, one container)
- pod_size.py: each pod's CPU limit as held here (fit_pods, $SERVELAB_CPU_SCALE)
- node.py: what this machine holds as one node (allocatable CPU, memory, pods) and whether a pod fits
- pods.py: one pod's life (Pending until scheduled, probes, restarts with back-off, graceful termination, CPU usage)
- CPU/memory limits come from servelab/limits (a cgroup, a user scope or the userspace enforcer)
- proxy/ / service_proxy.py: the Service, a load-balancing proxy process (balancing per request or per
  connection, optionally adding a network round trip) and its owner-side handle
- watchdog.py: the process that kills the pods when their owner is gone (servelab/core/processes.py starts them)

Names load on first use, so the proxy and watchdog processes (`python -m ...`) start light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalCluster", "PortInUseError", "Unschedulable", "allocatable"]


def __getattr__(name: str) -> Any:
    if name == "LocalCluster":
        from servelab.backends.local.local_cluster import LocalCluster

        return LocalCluster
    if name == "Unschedulable":
        from servelab.backends.local.local_cluster import Unschedulable

        return Unschedulable
    if name == "allocatable":
        from servelab.backends.local.node import allocatable

        return allocatable
    if name == "PortInUseError":
        from servelab.backends.local.service_proxy import PortInUseError

        return PortInUseError
    raise AttributeError(f"module 'servelab.backends.local' has no attribute {name!r}")
