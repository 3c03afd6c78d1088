"""The embedded cluster: the manifests in cluster/ run as processes on this machine.

A controller thread with its own asyncio loop plays kubelet, the deployment controller, the
endpoints controller and the HPA controller; public methods hand work to it and wait, so a
Jupyter kernel's own event loop is never blocked or borrowed.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import random
import shutil
import socket
import tempfile
import threading
import time
import weakref
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from servelab import limits
from servelab.backends import base
from servelab.backends.local.manifests import (
    KIND_RESOURCE,
    ContainerSpec,
    check_local,
    kind_of,
    pod_suffix,
    pod_template_hash,
    replicas_problem,
)
from servelab.backends.local.node import Allocatable, allocatable
from servelab.backends.local.pods import Pod
from servelab.backends.local.proxy import MODES
from servelab.backends.local.proxy.round_trip import RoundTrip
from servelab.backends.local.service import ServiceProxy
from servelab.backends.local.watchdog import Watchdog
from servelab.core import hpa
from servelab.core.manifests import InvalidManifest, check, load_documents

TICK_S = 1.0  # how often pods' CPU is sampled and desired state is re-checked
CPU_SCALE_VARIABLE = "SERVELAB_CPU_SCALE"
_live: weakref.WeakSet[LocalCluster] = weakref.WeakSet()


class Unschedulable(TimeoutError):
    """Pods stay Pending: this machine has no room for their requests, and none is on the way."""


@dataclass
class _Deployment:
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
class _Service:
    manifest: dict
    proxy: ServiceProxy
    created_s: float

    @property
    def selector(self) -> dict:
        return self.manifest["spec"].get("selector", {})


@dataclass
class _HPA:
    manifest: dict
    autoscaler: hpa.Autoscaler
    created_s: float
    task: asyncio.Task | None = None
    last: hpa.Decision | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _scaled(spec: ContainerSpec, factor: float) -> ContainerSpec:
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


def _matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


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
        self.service_port, self.sync_period_s, self.service_mode = service_port, sync_period_s, service_mode
        self.metrics_window_s = metrics_window_s or sync_period_s
        self.cpu_scale = cpu_scale()
        self._t0, self._t0_unix = time.monotonic(), time.time()
        self._rng = random.Random(seed)
        self._events: list[base.Event] = []
        self._events_lock = threading.Lock()
        self._deployments: dict[str, _Deployment] = {}
        self._services: dict[str, _Service] = {}
        self._hpas: dict[str, _HPA] = {}
        self._finished: list[Pod] = []
        self._log_dir = Path(tempfile.mkdtemp(prefix="servelab-pods-"))
        self.limits = limits.detect()
        if self.limits.rung is None:
            limits.warn_once(self.limits.reason)
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="servelab-local-cluster", daemon=True)
        self._thread.start()
        self._call(self._start())
        _live.add(self)
        atexit.register(self.close)

    # -- plumbing between the caller's thread and the controller loop -----------------------------

    def _call(self, coro, timeout: float | None = None):
        if self._closed:
            coro.close()
            raise RuntimeError("this cluster is closed; create a new one with servelab.connect()")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        # Started from the controller thread, so the parent-death signal follows this thread.
        self.watchdog = Watchdog()
        self._reconcile_lock = asyncio.Lock()
        self._ticker = asyncio.create_task(self._tick())

    def now(self) -> float:
        return time.monotonic() - self._t0

    def record(self, kind: str, obj: str, message: str, **data) -> None:
        t = self.now()
        with self._events_lock:
            self._events.append(base.Event(round(t, 3), kind, obj, message, data, round(self._t0_unix + t, 3)))

    def events(self) -> list[base.Event]:
        with self._events_lock:
            return list(self._events)

    # -- apply / delete ----------------------------------------------------------------------------

    def apply(self, source) -> list[str]:
        """Create or update objects; every document is checked first, and nothing is applied if one is invalid."""
        docs = load_documents(source)
        check(docs)
        check_local(docs, self.node)
        return self._call(self._apply(docs))

    async def _apply(self, docs: list[dict]) -> list[str]:
        lines = []
        for doc in docs:
            kind, name = doc["kind"], doc["metadata"]["name"]
            table = {"Deployment": self._deployments, "Service": self._services, "HorizontalPodAutoscaler": self._hpas}[kind]
            old = table.get(name)
            if old is not None and old.manifest == doc:
                verb = "unchanged"
            else:
                await {"Deployment": self._apply_deployment, "Service": self._apply_service,
                       "HorizontalPodAutoscaler": self._apply_hpa}[kind](doc, old)
                verb = "configured" if old is not None else "created"
            lines.append(f"{KIND_RESOURCE[kind]}/{name} {verb}")
        await self._reconcile()
        return lines

    async def _apply_deployment(self, doc: dict, old: _Deployment | None) -> None:
        template = doc["spec"]["template"]
        spec = _scaled(ContainerSpec.from_template(template), self.cpu_scale)
        replicas = int(doc["spec"].get("replicas", 1))
        name = doc["metadata"]["name"]
        if old is None:
            self._deployments[name] = _Deployment(doc, replicas, pod_template_hash(template), spec, self.now())
            self.record(base.SCALED, f"deployment/{name}", f"created with {replicas} replicas", old=0, new=replicas, by="apply")
            return
        if replicas != old.replicas:
            self.record(base.SCALED, f"deployment/{name}", f"replicas {old.replicas} -> {replicas}",
                        old=old.replicas, new=replicas, by="apply")
        old.manifest, old.replicas = doc, replicas
        old.template_hash, old.spec = pod_template_hash(template), spec

    async def _apply_service(self, doc: dict, old: _Service | None) -> None:
        name = doc["metadata"]["name"]
        port = self.service_port if self.service_port is not None else int(doc["spec"]["ports"][0]["port"])
        round_trip = RoundTrip.of_service(doc)
        if old is not None:
            if old.proxy.requested_port == port and old.proxy.round_trip == round_trip:
                old.manifest = doc
                return
            await old.proxy.stop()
        await self._free_port_from_other_clusters(port)
        proxy = ServiceProxy(name, port, self.service_mode, round_trip)
        await proxy.start()
        self._services[name] = _Service(doc, proxy, self.now())
        await self.endpoints_changed()  # pods already Ready behind it: a new proxy starts with none

    async def _free_port_from_other_clusters(self, port: int) -> None:
        """Re-running a lab: an older cluster of this same process holds the port, so close it."""
        if port == 0:
            return
        for other in list(_live):
            if other is not self and not other._closed and any(
                s.proxy.port == port for s in other._services.values()
            ):
                print(f"servelab: closing the earlier local cluster of this process, which held port {port}")
                await asyncio.get_running_loop().run_in_executor(None, other.close)

    async def _apply_hpa(self, doc: dict, old: _HPA | None) -> None:
        name = doc["metadata"]["name"]
        spec = hpa.HPASpec.from_manifest(doc)
        if old is not None and old.task is not None:
            old.task.cancel()
        autoscaler = hpa.Autoscaler(spec, metric_window_s=self.metrics_window_s)
        entry = _HPA(doc, autoscaler, old.created_s if old else self.now())
        entry.task = asyncio.create_task(self._hpa_loop(entry))
        self._hpas[name] = entry

    def delete(self, source_or_kind, name: str | None = None) -> list[str]:
        if name is not None:
            targets = [(kind_of(str(source_or_kind)), name)]
        else:
            targets = [(d["kind"], d["metadata"]["name"]) for d in load_documents(source_or_kind)]
        return self._call(self._delete(targets))

    async def _delete(self, targets: list[tuple[str, str]]) -> list[str]:
        lines = []
        for kind, name in targets:
            if kind == "Pod":
                pod = next((p for d in self._deployments.values() for p in d.pods if p.name == name), None)
                if pod is None:
                    raise KeyError(f'pods "{name}" not found')
                await pod.terminate()
                lines.append(f'pod "{name}" deleted')
                continue
            table = {"Deployment": self._deployments, "Service": self._services, "HorizontalPodAutoscaler": self._hpas}[kind]
            entry = table.pop(name, None)
            if entry is None:
                raise KeyError(f'{KIND_RESOURCE[kind]} "{name}" not found')
            if kind == "Deployment":
                self.record(base.SCALED, f"deployment/{name}", "deleted", old=entry.replicas, new=0, by="delete")
                await asyncio.gather(*(p.terminate() for p in entry.pods))
                self._finished.extend(entry.pods)
            elif kind == "Service":
                await entry.proxy.stop()
            else:
                entry.task.cancel()
            lines.append(f'{KIND_RESOURCE[kind]} "{name}" deleted')
        await self._reconcile()
        return lines

    # -- the controllers -------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            for d in self._deployments.values():
                for pod in d.pods:
                    if pod.status != "Gone":
                        pod.sample_cpu()
            await self._reconcile()
            await asyncio.sleep(TICK_S)

    async def _reconcile(self) -> None:
        """Make every deployment's pods match its desired replicas and template, then place the Pending ones."""
        async with self._reconcile_lock:
            for d in self._deployments.values():
                current = [p for p in d.live() if p.template_hash == d.template_hash]
                for _ in range(d.replicas - len(current)):
                    self._create_pod(d)
                outdated = [p for p in d.live() if p.template_hash != d.template_hash]
                if outdated:
                    self._roll(d, current, outdated)
                if len(current) > d.replicas:
                    self._terminate(sorted(current, key=_deletion_order)[: len(current) - d.replicas])
                gone = [p for p in d.pods if p.status == "Gone"]
                self._finished.extend(gone)
                d.pods = [p for p in d.pods if p.status != "Gone"]
            self._schedule()

    def _roll(self, d: _Deployment, current: list[Pod], outdated: list[Pod]) -> None:
        """A rollout: old pods go once the new ones are Ready; before that, as upstream, unready old pods
        go at once and Ready ones while at least replicas - maxUnavailable pods stay Ready (which also
        makes room for new pods left Pending on a full machine)."""
        if sum(p.ready for p in current) >= d.replicas:
            self._terminate(outdated)
            return
        available = sum(p.ready for p in d.live())
        for pod in sorted(outdated, key=_deletion_order):
            if pod.ready and available - 1 < d.replicas - d.max_unavailable():
                break
            available -= pod.ready
            self._terminate([pod])

    def _create_pod(self, d: _Deployment) -> None:
        """A new pod, Pending until `_schedule` finds it room."""
        pod = Pod(self, f"{d.name}-{d.template_hash}-{pod_suffix(self._rng)}", d.name, d.template_hash, d.spec,
                  self._log_dir)
        d.pods.append(pod)
        pod.created()

    def _schedule(self) -> None:
        """Start each Pending pod, oldest first, whose requests fit next to the pods already placed
        (terminating ones hold theirs until gone); the others stay Pending, saying why."""
        pods = [p for d in self._deployments.values() for p in d.pods if p.status != "Gone"]
        placed = [(p.spec.cpu_request, p.spec.memory_request) for p in pods if p.scheduled_s is not None]
        for pod in sorted((p for p in pods if p.scheduled_s is None and not p.deleting), key=lambda p: p.created_s):
            reason = self.node.unschedulable(placed, pod.spec.cpu_request, pod.spec.memory_request)
            if reason is not None:
                pod.unschedulable(reason)
                continue
            placed.append((pod.spec.cpu_request, pod.spec.memory_request))
            self._start_pod(pod)

    def _start_pod(self, pod: Pod) -> None:
        group = self.limits.hold(pod.name, pod.spec.cpu_limit, pod.spec.memory_limit, pod.spec.cpu_period_s)
        if group.problem:
            limits.warn_once(group.problem)
        pod.start(_free_port(), group)

    def _terminate(self, pods: list[Pod]) -> None:
        for pod in pods:
            pod.terminate()  # runs on its own; the pod keeps a reference to its task

    async def endpoints_changed(self) -> None:
        """Send each Service the addresses of its Ready pods; returns once the proxies confirm."""
        pods = [p for d in self._deployments.values() for p in d.pods]
        updates = []
        for s in self._services.values():
            endpoints = [("127.0.0.1", p.port) for p in pods if p.ready and not p.deleting and _matches(s.selector, p.labels)]
            updates.append(s.proxy.set_endpoints(endpoints))
        await asyncio.gather(*updates)

    async def _hpa_loop(self, entry: _HPA) -> None:
        while True:
            await asyncio.sleep(self.sync_period_s)
            self._hpa_sync(entry)
            await self._reconcile()

    def _hpa_sync(self, entry: _HPA) -> None:
        spec = entry.autoscaler.spec
        d = self._deployments.get(spec.target_name)
        if d is None:
            return
        now = self.now()
        samples = [
            hpa.PodSample(p.name, p.ready, p.cpu_usage_cores(self.metrics_window_s), p.spec.cpu_request,
                          started_s=p.ready_since_s, deleting=p.deleting,
                          phase="Running" if p.status in ("Running", "Terminating") else "Pending")
            for p in d.pods
        ]
        decision = entry.autoscaler.decide(now, d.replicas, samples)
        entry.last = decision
        util = decision.utilization_pct
        self.record(
            base.HPA_DECISION, f"horizontalpodautoscaler/{spec.name}",
            f"cpu {'<unknown>' if util is None else f'{util:.0f}%'}/{decision.target_pct}%: "
            f"{decision.current_replicas} -> {decision.desired_replicas} ({decision.reason})",
            utilization_pct=util, target_pct=decision.target_pct, current=decision.current_replicas,
            desired=decision.desired_replicas, raw_desired=decision.raw_desired, reason=decision.reason,
            pod_cpu_cores={s.name: s.cpu_usage_cores for s in samples},
        )
        if decision.desired_replicas != d.replicas:
            self.record(base.SCALED, f"deployment/{d.name}", f"replicas {d.replicas} -> {decision.desired_replicas} by HPA",
                        old=d.replicas, new=decision.desired_replicas, by="hpa")
            d.replicas = decision.desired_replicas

    # -- reading state ----------------------------------------------------------------------------

    def pods(self, selector: dict[str, str] | None = None) -> list[base.PodInfo]:
        return self._call(self._pods(selector))

    async def _pods(self, selector) -> list[base.PodInfo]:
        infos = []
        for d in self._deployments.values():
            for p in d.pods:
                if p.status == "Gone" or (selector and not _matches(selector, p.labels)):
                    continue
                p.sample_cpu()
                info = p.info()
                info.cpu_usage_cores = p.cpu_usage_cores(self.metrics_window_s)
                info.cpu_used_core_s = p.cpu_used_s()
                infos.append(info)
        return sorted(infos, key=lambda i: i.name)

    def deployments(self) -> list[base.DeploymentInfo]:
        return self._call(self._deployment_infos())

    async def _deployment_infos(self) -> list[base.DeploymentInfo]:
        now = self.now()
        return [
            base.DeploymentInfo(
                name=d.name, replicas=d.replicas,
                ready=sum(p.ready for p in d.live()),
                up_to_date=sum(p.template_hash == d.template_hash for p in d.live()),
                available=sum(p.ready for p in d.live()),
                age_s=now - d.created_s, selector=dict(d.manifest["spec"].get("selector", {}).get("matchLabels", {})),
            )
            for d in self._deployments.values()
        ]

    def services(self) -> list[base.ServiceInfo]:
        return self._call(self._service_infos())

    async def _service_infos(self) -> list[base.ServiceInfo]:
        now, infos = self.now(), []
        for name, s in self._services.items():
            spec = s.manifest["spec"]
            ports = ",".join(
                f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if "nodePort" in p
                else f"{p['port']}/{p.get('protocol', 'TCP')}"
                for p in spec["ports"]
            )
            # A made-up but stable ClusterIP: there is no cluster network here, only 127.0.0.1.
            ip_tail = zlib.crc32(name.encode()) % 65000
            infos.append(base.ServiceInfo(
                name=name, type=spec.get("type", "ClusterIP"), cluster_ip=f"10.96.{ip_tail // 254}.{ip_tail % 254 + 1}",
                external_ip=None, ports=ports, age_s=now - s.created_s, url=f"http://127.0.0.1:{s.proxy.port}",
                endpoints=[f"{h}:{p}" for h, p in s.proxy.endpoints],
            ))
        return infos

    def hpas(self) -> list[base.HPAInfo]:
        return self._call(self._hpa_infos())

    async def _hpa_infos(self) -> list[base.HPAInfo]:
        now, infos = self.now(), []
        for name, h in self._hpas.items():
            spec = h.autoscaler.spec
            d = self._deployments.get(spec.target_name)
            infos.append(base.HPAInfo(
                name=name, reference=f"Deployment/{spec.target_name}",
                utilization_pct=h.last.utilization_pct if h.last else None, target_pct=spec.target_cpu_pct,
                min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
                replicas=len(d.live()) if d else 0, age_s=now - h.created_s,
            ))
        return infos

    def service_url(self, name: str = "model-serving") -> str:
        for s in self.services():
            if s.name == name:
                return s.url
        raise KeyError(f"no service {name!r}; apply cluster/model-serving-service.yaml first")

    # -- actions -----------------------------------------------------------------------------------

    def scale(self, deployment: str, replicas: int) -> str:
        return self._call(self._scale(deployment, int(replicas)))

    async def _scale(self, name: str, replicas: int) -> str:
        d = self._deployments.get(name)
        if d is None:
            raise KeyError(f'deployments.apps "{name}" not found')
        problem = (f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0" if replicas < 0
                   else replicas_problem(replicas, "spec.replicas", d.spec, self.node))
        if problem:
            raise InvalidManifest(f'The Deployment "{name}" is invalid: {problem}')
        if replicas != d.replicas:
            self.record(base.SCALED, f"deployment/{name}", f"replicas {d.replicas} -> {replicas}",
                        old=d.replicas, new=replicas, by="scale")
            d.replicas = replicas
        await self._reconcile()
        return f"deployment.apps/{name} scaled"

    def wait_ready(self, deployment: str, replicas: int | None = None, timeout: float = 60) -> float:
        """See `Cluster.wait_ready`. Pods left Pending with nothing on the way to make room for them (no pod
        terminating, no rollout under way) raise `Unschedulable` (a TimeoutError) at once, saying why."""
        started = time.monotonic()
        while True:
            state, stuck = self._call(self._readiness(deployment, replicas))
            if state is None:
                return time.monotonic() - started
            if stuck:
                raise Unschedulable(f"deployment {deployment} cannot become ready: {state}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"deployment {deployment} not ready after {timeout:g} s: {state}")
            time.sleep(0.05)

    async def _readiness(self, name: str, replicas: int | None) -> tuple[str | None, bool]:
        """(None when ready, else what is missing (with the end of a failing pod's log); whether
        Pending pods are stuck, with no room on the way)."""
        d = self._deployments.get(name)
        if d is None:
            return f"no deployment {name!r} (apply it first)", False
        want = d.replicas if replicas is None else replicas
        current = [p for p in d.live() if p.template_hash == d.template_hash]
        ready = sum(p.ready for p in current)
        if ready == want and len(d.live()) == want:
            return None, False
        pending = [p for p in current if p.pending_reason]
        if pending:
            everything = [p for e in self._deployments.values() for p in e.pods]
            room_coming = any(p.deleting for p in everything) or len(current) < len(d.live())
            return self._pending_message(d, pending), not room_coming
        troubled = [p for p in current if p.restarts or p.status in ("Error", "CrashLoopBackOff")]
        tail = ""
        if troubled and troubled[0].log_path.exists():
            tail = "; last log lines of " + troubled[0].name + ":\n" + "\n".join(
                troubled[0].log_path.read_text(errors="replace").splitlines()[-15:])
        states = ", ".join(f"{p.name} {p.status} ready={p.ready}" for p in d.live())
        return f"{ready}/{want} Ready ({states}){tail}", False

    def _pending_message(self, d: _Deployment, pending: list[Pod]) -> str:
        fit = self.node.fits(d.spec.cpu_request, d.spec.memory_request)
        return (f"{len(pending)} of its {d.replicas} pods are Pending: {pending[0].pending_reason} This machine "
                f"holds {fit} pods requesting {d.spec.cpu_request:g} CPU and {d.spec.memory_request / 2**20:g}Mi "
                f"(allocatable: {self.node}). Scale to {fit} or fewer, or lower the requests.")

    def kubectl(self, command: str) -> str:
        from servelab.backends.local.kubectl import run

        text = run(self, command)
        print(text)
        return text

    def pod_spec(self, pod: str) -> ContainerSpec:
        """What a pod runs (container name, image, requests, probes), for `kubectl describe`."""
        return self._call(self._pod_spec(pod))

    async def _pod_spec(self, name: str) -> ContainerSpec:
        for pod in (p for d in self._deployments.values() for p in d.pods):
            if pod.name == name:
                return pod.spec
        raise KeyError(f'pods "{name}" not found')

    def logs(self, pod: str) -> str:
        """What a pod's container printed (all its restarts), like `kubectl logs`."""
        path = self._log_dir / f"{pod}.log"
        if not path.exists():
            raise KeyError(f'pods "{pod}" not found')
        return path.read_text(errors="replace")

    def service_cpu_s(self) -> float:
        """CPU seconds the Service proxies have used so far: what forwarding costs this machine."""
        import psutil

        used = 0.0
        for s in list(self._services.values()):
            try:
                times = psutil.Process(s.proxy.process.pid).cpu_times()
            except (psutil.Error, AttributeError):
                continue
            used += times.user + times.system
        return used

    def top_pods(self) -> list[tuple[str, float | None, int | None]]:
        """(name, CPU cores over the metrics window, resident memory bytes) per pod, for `kubectl top`."""
        import psutil

        rows = []
        for info in self.pods():
            try:
                memory = psutil.Process(info.pid).memory_info().rss if info.pid else None
            except psutil.Error:
                memory = None
            rows.append((info.name, info.cpu_usage_cores, memory))
        return rows

    # -- metadata for results and cost ---------------------------------------------------------------

    def run_metadata(self, start_unix_s: float | None = None, end_unix_s: float | None = None) -> dict:
        return self._call(self._metadata(start_unix_s, end_unix_s))

    async def _metadata(self, start_unix_s: float | None, end_unix_s: float | None) -> dict:
        now = self.now()
        lo = -float("inf") if start_unix_s is None else start_unix_s - self._t0_unix
        hi = now if end_unix_s is None else min(now, end_unix_s - self._t0_unix)
        all_pods = self._finished + [p for d in self._deployments.values() for p in d.pods if p.status != "Gone"]
        usages = []
        for p in all_pods:
            if p.scheduled_s is None:
                continue  # never ran: a Pending pod holds no node's resources, so it costs nothing
            start, end = max(p.scheduled_s, lo), min(p.ended_s if p.ended_s is not None else now, hi)
            if end <= start:
                continue
            usages.append({
                "name": p.name, "start_s": round(self._t0_unix + start, 3), "end_s": round(self._t0_unix + end, 3),
                "cpu_request_cores": p.spec.cpu_request, "memory_request_gib": p.spec.memory_request / 2**30,
                "cpu_used_core_s": round(p.cpu_used_between(start, end), 3),
                "limits_enforced": p.group.rung if p.group.held else False,
            })
        enforced, note = self.limits.summary({p.name: p.group for p in all_pods if p.group is not None})
        first = next(iter(self._deployments.values()), None)
        spec = first.spec if first else None
        return {
            "backend": "local",
            "replicas": first.replicas if first else 0,
            "ready_replicas": sum(p.ready for p in first.live()) if first else 0,
            "cpu_request_cores": spec.cpu_request if spec else None,
            "cpu_limit_cores": spec.cpu_limit if spec else None,
            "memory_request_gib": spec.memory_request / 2**30 if spec else None,
            "memory_limit_gib": spec.memory_limit / 2**30 if spec and spec.memory_limit else None,
            "limits_enforced": enforced,
            "limits_note": note,
            "service_mode": self.service_mode,
            "services": [{"name": name, "url": f"http://127.0.0.1:{s.proxy.port}", **s.proxy.round_trip.metadata()}
                         for name, s in self._services.items()],
            "cpu_count": os.cpu_count(),
            "cpu_scale": self.cpu_scale,
            "pods": usages,
        }

    # -- shutting down -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(60)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self.watchdog.close()
            self.limits.close()
            shutil.rmtree(self._log_dir, ignore_errors=True)
            _live.discard(self)
            atexit.unregister(self.close)

    async def _shutdown(self) -> None:
        """Services first (nothing new arrives), then every pod gets SIGTERM and its grace period."""
        tasks = [self._ticker, *(h.task for h in self._hpas.values())]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.proxy.stop() for s in self._services.values()))
        pods = [p for d in self._deployments.values() for p in d.pods]
        for p in pods:
            p.spec = _without_pre_stop(p.spec)  # closing: nobody is routed to them any more
        await asyncio.gather(*(p.terminate() for p in pods))


def _deletion_order(pod: Pod) -> tuple:
    """Which pods a scale-down removes first, as the ReplicaSet controller ranks them: unscheduled,
    then not running, then unready, then the youngest."""
    return (pod.scheduled_s is not None, pod.status == "Running", pod.ready, -pod.created_s)


def _without_pre_stop(spec: ContainerSpec) -> ContainerSpec:
    return replace(spec, pre_stop=None)
