"""The embedded cluster: the manifests in cluster/ run as processes on this machine.

`LocalCluster` is the `backends.base.Cluster` a lab talks to. It ties together the loop bridge
(loop_bridge.py: one thread and asyncio loop that every controller and read runs on), the objects
(objects.py), the controllers that play kubelet, deployment, endpoints and HPA controllers
(deployment_controller.py, service_controller.py, hpa_controller.py) and the read side (listings.py,
run_metadata.py).
"""

from __future__ import annotations

import asyncio
import atexit
import random
import shutil
import tempfile
import time
import weakref
from pathlib import Path

from servelab import limits
from servelab.backends import base
from servelab.backends.local import listings
from servelab.backends.local.deployment_controller import DeploymentController
from servelab.backends.local.hpa_controller import HPAController
from servelab.backends.local.loop_bridge import LoopBridge
from servelab.backends.local.node import Allocatable, allocatable
from servelab.backends.local.objects import Objects
from servelab.backends.local.pod_size import cpu_scale
from servelab.backends.local.pod_template import ContainerSpec
from servelab.backends.local.proxy import MODES
from servelab.backends.local.run_metadata import run_metadata
from servelab.backends.local.service_controller import ServiceController
from servelab.backends.local.validation import KIND_RESOURCE, check_local, kind_of
from servelab.backends.local.watchdog import Watchdog
from servelab.core import hpa
from servelab.core.manifests import check, load_documents

_live: weakref.WeakSet[LocalCluster] = weakref.WeakSet()


class Unschedulable(TimeoutError):
    """Pods stay Pending: this machine has no room for their requests, and none is on the way."""


class LocalCluster(base.Cluster):
    """Run Deployments, Services and HPAs from the manifests as local processes.

    service_port: listen here instead of each Service's own port (0 = any free port; tests).
    sync_period_s: the HPA controller's sync period (upstream default 15 s).
    metrics_window_s: the CPU-rate window, as metrics-server's resolution (default: the sync period).
    service_mode: "per-request" (HTTP-aware round-robin; the default, so that a client's few kept-alive
    connections still spread over every replica, as behind a mesh or L7 proxy) or "per-connection"
    (TCP, what kube-proxy does: a kept-alive connection stays on one pod).
    node: what the one node holds (default: this machine, `node.allocatable()`); pods whose requests
    do not fit stay Pending, as a scheduler leaves them.
    """

    backend = "local"

    def __init__(self, service_port: int | None = None, sync_period_s: float = hpa.SYNC_PERIOD_S,
                 metrics_window_s: float | None = None, service_mode: str = "per-request", seed: int | None = None,
                 node: Allocatable | None = None):
        if service_mode not in MODES:
            raise ValueError(f"service_mode must be one of {MODES}, not {service_mode!r}")
        self.node = node or allocatable()
        self.sync_period_s, self.service_mode = sync_period_s, service_mode
        self.metrics_window_s = metrics_window_s or sync_period_s
        self.cpu_scale = cpu_scale()
        self._objects = Objects()
        self._log_dir = Path(tempfile.mkdtemp(prefix="servelab-pods-"))
        self.limits = limits.detect()
        if self.limits.rung is None:
            limits.warn_once(self.limits.reason)
        self._deployments = DeploymentController(self._objects, self, self.node, self.limits, self._log_dir,
                                                 random.Random(seed), self.cpu_scale)
        self._services = ServiceController(self._objects, service_mode, service_port, self._free_port)
        self._hpas = HPAController(self._objects, self._deployments.reconcile, sync_period_s, self.metrics_window_s)
        self._controllers = {"Deployment": self._deployments, "Service": self._services,
                             "HorizontalPodAutoscaler": self._hpas}
        self._bridge = LoopBridge("servelab-local-cluster")
        self._bridge.call(self._start())
        _live.add(self)
        atexit.register(self.close)

    async def _start(self) -> None:
        # Started from the controller thread, so the parent-death signal follows this thread.
        self.watchdog = Watchdog()
        self._ticker = asyncio.create_task(self._deployments.tick())

    @property
    def service_port(self) -> int | None:
        return self._services.port

    @service_port.setter
    def service_port(self, port: int | None) -> None:
        self._services.port = port

    # -- what a pod needs from its cluster (pods.Owner) ---------------------------------------------

    def now(self) -> float:
        return self._objects.now()

    def record(self, kind: str, obj: str, message: str, **data) -> None:
        self._objects.record(kind, obj, message, **data)

    async def endpoints_changed(self) -> None:
        await self._services.endpoints_changed()

    def events(self) -> list[base.Event]:
        return self._objects.events()

    # -- apply / delete / scale -----------------------------------------------------------------------

    def apply(self, source: str | Path | dict | list) -> list[str]:
        """Create or update objects; every document is checked first, and nothing is applied if one is invalid."""
        docs = load_documents(source)
        check(docs)
        check_local(docs, self.node)
        return self._bridge.call(self._apply(docs))

    async def _apply(self, docs: list[dict]) -> list[str]:
        lines = []
        for doc in docs:
            kind, name = doc["kind"], doc["metadata"]["name"]
            old = self._objects.table(kind).get(name)
            if old is not None and old.manifest == doc:
                verb = "unchanged"
            else:
                await self._controllers[kind].apply(doc, old)
                verb = "configured" if old is not None else "created"
            lines.append(f"{KIND_RESOURCE[kind]}/{name} {verb}")
        await self._deployments.reconcile()
        return lines

    async def _free_port(self, port: int) -> None:
        """Re-running a lab: an older cluster of this same process holds the port, so close it."""
        if port == 0:
            return
        for other in list(_live):
            if other is not self and not other._bridge.closed and other._services.holds(port):
                print(f"servelab: closing the earlier local cluster of this process, which held port {port}")
                await asyncio.get_running_loop().run_in_executor(None, other.close)

    def delete(self, source_or_kind: str | Path | dict | list, name: str | None = None) -> list[str]:
        if name is not None:
            targets = [(kind_of(str(source_or_kind)), name)]
        else:
            targets = [(d["kind"], d["metadata"]["name"]) for d in load_documents(source_or_kind)]
        return self._bridge.call(self._delete(targets))

    async def _delete(self, targets: list[tuple[str, str]]) -> list[str]:
        lines = []
        for kind, name in targets:
            if kind == "Pod":
                await self._deployments.delete_pod(name)
                lines.append(f'pod "{name}" deleted')
                continue
            entry = self._objects.table(kind).pop(name, None)
            if entry is None:
                raise KeyError(f'{KIND_RESOURCE[kind]} "{name}" not found')
            await self._controllers[kind].delete(entry)
            lines.append(f'{KIND_RESOURCE[kind]} "{name}" deleted')
        await self._deployments.reconcile()
        return lines

    def scale(self, deployment: str, replicas: int) -> str:
        return self._bridge.call(self._deployments.scale(deployment, int(replicas)))

    def wait_ready(self, deployment: str, replicas: int | None = None, timeout: float = 60) -> float:
        """See `Cluster.wait_ready`. Pods left Pending with nothing on the way to make room for them (no pod
        terminating, no rollout under way) raise `Unschedulable` (a TimeoutError) at once, saying why."""
        started = time.monotonic()
        while True:
            state, stuck = self._bridge.read(listings.readiness, self._objects, self.node, deployment, replicas)
            if state is None:
                return time.monotonic() - started
            if stuck:
                raise Unschedulable(f"deployment {deployment} cannot become ready: {state}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"deployment {deployment} not ready after {timeout:g} s: {state}")
            time.sleep(0.05)

    # -- reading state --------------------------------------------------------------------------------

    def pods(self, selector: dict[str, str] | None = None) -> list[base.PodInfo]:
        return self._bridge.read(listings.pods, self._objects, selector, self.metrics_window_s)

    def deployments(self) -> list[base.DeploymentInfo]:
        return self._bridge.read(listings.deployments, self._objects)

    def services(self) -> list[base.ServiceInfo]:
        return self._bridge.read(listings.services, self._objects)

    def hpas(self) -> list[base.HPAInfo]:
        return self._bridge.read(listings.hpas, self._objects)

    def service_url(self, name: str = "model-serving") -> str:
        for s in self.services():
            if s.name == name:
                return s.url
        raise KeyError(f"no service {name!r}; apply cluster/model-serving-service.yaml first")

    def kubectl(self, command: str) -> str:
        from servelab.backends.local.kubectl import run

        text = run(self, command)
        print(text)
        return text

    def pod_spec(self, pod: str) -> ContainerSpec:
        """What a pod runs (container name, image, requests, probes), for `kubectl describe`."""
        return self._bridge.read(listings.pod_spec, self._objects, pod)

    def logs(self, pod: str) -> str:
        """What a pod's container printed (all its restarts), like `kubectl logs`."""
        path = self._log_dir / f"{pod}.log"
        if not path.exists():
            raise KeyError(f'pods "{pod}" not found')
        return path.read_text(errors="replace")

    def service_cpu_s(self) -> float:
        """CPU seconds the Service proxies have used so far: what forwarding costs this machine."""
        return self._services.cpu_s()

    def top_pods(self) -> list[tuple[str, float | None, int | None]]:
        """(name, CPU cores over the metrics window, resident memory bytes) per pod, for `kubectl top`."""
        return listings.top(self.pods())

    def run_metadata(self, start_unix_s: float | None = None, end_unix_s: float | None = None) -> dict:
        return self._bridge.read(run_metadata, self._objects, self.limits, self.service_mode, self.cpu_scale,
                                 start_unix_s, end_unix_s).to_dict()

    # -- shutting down --------------------------------------------------------------------------------

    def close(self) -> None:
        if self._bridge.closed:
            return
        try:
            self._bridge.close(self._shutdown(), 60)
        finally:
            self.watchdog.close()
            self.limits.close()
            shutil.rmtree(self._log_dir, ignore_errors=True)
            _live.discard(self)
            atexit.unregister(self.close)

    async def _shutdown(self) -> None:
        """Services first (nothing new arrives), then every pod gets SIGTERM and its grace period."""
        tasks = [self._ticker, *self._hpas.tasks()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._services.stop_all()
        await self._deployments.terminate_all()
