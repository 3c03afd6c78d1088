"""What a local cluster holds: its Deployments (with their pods), Services, HPAs, and the timeline of events.

The controllers change these objects and the read side lists them, all on the cluster's loop thread;
the timeline is also read from the caller's thread, so it has a lock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from servelab.backends import base
from servelab.backends.local.pod_template import ContainerSpec
from servelab.backends.local.pods import Pod
from servelab.backends.local.service_proxy import ServiceProxy
from servelab.core import hpa


@dataclass
class Deployment:
    manifest: dict
    replicas: int
    template_hash: str
    spec: ContainerSpec
    created_s: float
    pods: list[Pod] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]

    def live(self) -> list[Pod]:
        return [p for p in self.pods if not p.deleting]

    def max_unavailable(self) -> int:
        """How many pods a rollout may take out of service at once (strategy.rollingUpdate.maxUnavailable,
        default 25% of replicas rounded down, as upstream)."""
        value = ((self.manifest["spec"].get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
        if isinstance(value, str) and value.endswith("%"):
            return self.replicas * int(value[:-1]) // 100
        return int(value)


@dataclass
class Service:
    manifest: dict
    proxy: ServiceProxy
    created_s: float

    @property
    def selector(self) -> dict:
        return self.manifest["spec"].get("selector", {})


@dataclass
class HPA:
    manifest: dict
    autoscaler: hpa.Autoscaler
    created_s: float
    task: asyncio.Task | None = None
    last: hpa.Decision | None = None


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class Objects:
    """The three tables by name, the pods that are gone (still costed), and the clock events are stamped with."""

    def __init__(self) -> None:
        self.t0, self.t0_unix = time.monotonic(), time.time()
        self.deployments: dict[str, Deployment] = {}
        self.services: dict[str, Service] = {}
        self.hpas: dict[str, HPA] = {}
        self.finished: list[Pod] = []
        self._events: list[base.Event] = []
        self._events_lock = threading.Lock()

    def table(self, kind: str) -> dict:
        return {"Deployment": self.deployments, "Service": self.services, "HorizontalPodAutoscaler": self.hpas}[kind]

    def pods(self) -> Iterator[Pod]:
        """Every pod of every Deployment, terminating and just-gone ones included."""
        return (p for d in self.deployments.values() for p in d.pods)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, kind: str, obj: str, message: str, **data) -> None:
        t = self.now()
        with self._events_lock:
            self._events.append(base.Event(round(t, 3), kind, obj, message, data, round(self.t0_unix + t, 3)))

    def events(self) -> list[base.Event]:
        with self._events_lock:
            return list(self._events)
