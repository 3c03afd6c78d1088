"""The read side of the local cluster: its objects as `kubectl get`, `describe`, `top` and `rollout status` see them.

Each function reads the objects on the cluster's loop thread (through `LoopBridge.read`) and returns
plain values, the dataclasses of backends/base.py that the kube backend returns too.
"""

from __future__ import annotations

import zlib

from servelab.backends import base
from servelab.backends.local.node import Allocatable
from servelab.backends.local.objects import Deployment, Objects, matches
from servelab.backends.local.pod_template import ContainerSpec
from servelab.backends.local.pods import Pod


def pods(objects: Objects, selector: dict[str, str] | None, window_s: float) -> list[base.PodInfo]:
    """Pods matching `selector` (all when None), with their CPU over the metrics window `window_s`."""
    infos = []
    for p in objects.pods():
        if p.status == "Gone" or (selector and not matches(selector, p.labels)):
            continue
        p.sample_cpu()
        info = p.info()
        info.cpu_usage_cores = p.cpu_usage_cores(window_s)
        info.cpu_used_core_s = p.cpu_used_s()
        infos.append(info)
    return sorted(infos, key=lambda i: i.name)


def deployments(objects: Objects) -> list[base.DeploymentInfo]:
    now = objects.now()
    return [
        base.DeploymentInfo(
            name=d.name, replicas=d.replicas,
            ready=sum(p.ready for p in d.live()),
            up_to_date=sum(p.template_hash == d.template_hash for p in d.live()),
            available=sum(p.ready for p in d.live()),
            age_s=now - d.created_s, selector=dict(d.manifest["spec"].get("selector", {}).get("matchLabels", {})),
        )
        for d in objects.deployments.values()
    ]


def services(objects: Objects) -> list[base.ServiceInfo]:
    now, infos = objects.now(), []
    for name, s in objects.services.items():
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


def hpas(objects: Objects) -> list[base.HPAInfo]:
    now, infos = objects.now(), []
    for name, h in objects.hpas.items():
        spec = h.autoscaler.spec
        d = objects.deployments.get(spec.target_name)
        infos.append(base.HPAInfo(
            name=name, reference=f"Deployment/{spec.target_name}",
            utilization_pct=h.last.utilization_pct if h.last else None, target_pct=spec.target_cpu_pct,
            min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
            replicas=len(d.live()) if d else 0, age_s=now - h.created_s,
        ))
    return infos


def pod_spec(objects: Objects, name: str) -> ContainerSpec:
    for pod in objects.pods():
        if pod.name == name:
            return pod.spec
    raise KeyError(f'pods "{name}" not found')


def readiness(objects: Objects, node: Allocatable, name: str, replicas: int | None) -> tuple[str | None, bool]:
    """(None when ready, else what is missing (with the end of a failing pod's log); whether
    Pending pods are stuck, with no room on the way)."""
    d = objects.deployments.get(name)
    if d is None:
        return f"no deployment {name!r} (apply it first)", False
    want = d.replicas if replicas is None else replicas
    current = [p for p in d.live() if p.template_hash == d.template_hash]
    ready = sum(p.ready for p in current)
    if ready == want and len(d.live()) == want:
        return None, False
    pending = [p for p in current if p.pending_reason]
    if pending:
        room_coming = any(p.deleting for p in objects.pods()) or len(current) < len(d.live())
        return _pending_message(node, d, pending), not room_coming
    troubled = [p for p in current if p.restarts or p.status in ("Error", "CrashLoopBackOff")]
    tail = ""
    if troubled and troubled[0].log_path.exists():
        tail = "; last log lines of " + troubled[0].name + ":\n" + "\n".join(
            troubled[0].log_path.read_text(errors="replace").splitlines()[-15:])
    states = ", ".join(f"{p.name} {p.status} ready={p.ready}" for p in d.live())
    return f"{ready}/{want} Ready ({states}){tail}", False


def _pending_message(node: Allocatable, d: Deployment, pending: list[Pod]) -> str:
    fit = node.fits(d.spec.cpu_request, d.spec.memory_request)
    return (f"{len(pending)} of its {d.replicas} pods are Pending: {pending[0].pending_reason} This machine "
            f"holds {fit} pods requesting {d.spec.cpu_request:g} CPU and {d.spec.memory_request / 2**20:g}Mi "
            f"(allocatable: {node}). Scale to {fit} or fewer, or lower the requests.")


def top(infos: list[base.PodInfo]) -> list[tuple[str, float | None, int | None]]:
    """(name, CPU cores over the metrics window, resident memory bytes) per pod, for `kubectl top`."""
    import psutil

    rows = []
    for info in infos:
        try:
            memory = psutil.Process(info.pid).memory_info().rss if info.pid else None
        except psutil.Error:
            memory = None
        rows.append((info.name, info.cpu_usage_cores, memory))
    return rows
