"""Where the labs' manifests run: `connect()` returns a Cluster, embedded (local) or real (kube).

Each backend is imported only when chosen, so the local path never loads the kubernetes client
unless a kubeconfig exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from servelab.backends.base import (
    Cluster,
    DeploymentInfo,
    Event,
    HPAInfo,
    PodInfo,
    ServiceInfo,
)

__all__ = ["connect", "Cluster", "PodInfo", "DeploymentInfo", "ServiceInfo", "HPAInfo", "Event"]

DEFAULT_CONTEXT = "kind-servelab"
KUBE_PROBE_TIMEOUT_S = 2.0


def connect(backend: str = "auto", context: str = DEFAULT_CONTEXT, **kw) -> Cluster:
    """Return a Cluster and print one line saying which backend it is and why.

    backend="auto" uses kube when the kubeconfig `context` answers within a couple of seconds,
    else the embedded local backend. Keyword arguments go to the chosen backend's constructor
    (local: service_port, sync_period_s, ...). SERVELAB_BACKEND=local|kube overrides "auto".
    """
    if backend == "auto" and os.environ.get("SERVELAB_BACKEND"):
        backend = os.environ["SERVELAB_BACKEND"]
        why = "SERVELAB_BACKEND is set"
    elif backend == "auto":
        problem = kube_problem(context)
        backend = "local" if problem else "kube"
        why = problem or f"kubeconfig context {context!r} answered"
    else:
        why = f"backend={backend!r} was asked for"
    if backend == "kube":
        from servelab.backends.kube import KubeCluster

        cluster: Cluster = KubeCluster(context=context, **kw)
        print(f"servelab: kube backend, context {context!r} ({why})")
        return cluster
    if backend == "local":
        from servelab.backends.local import LocalCluster

        cluster = LocalCluster(**kw)
        print(f"servelab: local backend, pods run as processes on this machine ({why})")
        return cluster
    raise ValueError(f"unknown backend {backend!r}; choose 'auto', 'local' or 'kube'")


def kube_problem(context: str, timeout: float = KUBE_PROBE_TIMEOUT_S) -> str | None:
    """Why `context` cannot be used right now, or None when its API server answers."""
    paths = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not any(Path(p).is_file() for p in paths.split(os.pathsep) if p):
        return f"no kubeconfig at {paths}"
    try:
        from kubernetes import client, config

        # Pass the path: the client reads $KUBECONFIG once, when it is first imported.
        contexts, _ = config.list_kube_config_contexts(config_file=paths)
        if context not in {c["name"] for c in contexts}:
            return f"kubeconfig has no context {context!r} (make cluster creates it)"
        api = config.new_client_from_config(config_file=paths, context=context)
        client.VersionApi(api).get_code(_request_timeout=timeout)
    except Exception as error:  # any failure means "not reachable": say what it was
        return f"context {context!r} did not answer: {type(error).__name__}: {str(error)[:120]}"
    return None
