"""The kube backend: the labs' manifests on a real Kubernetes cluster, through the official client.

- `apply` and `delete` go through the client's DynamicClient: it discovers from the API server
  which resource, plural and scope each manifest's kind has, and `apply` is its server-side apply
  (field manager "servelab"), so applying the same file twice is a no-op and a lab's apply never
  fights `make deploy`. The watches use it too; reads use the typed clients and need no discovery.
- `scale` goes through the Deployment's scale subresource, as `kubectl scale` and the HPA do.
- Pods, Deployments and HPAs are watched (kube_watch.py) from the moment the object is created;
  every change becomes an `Event` of the shared timeline (pod created/running/ready/gone, scaled,
  HPA decision).
- The Service is reached through its NodePort as kind maps it to this machine
  (cluster/kind-config.yaml: 30501 -> 127.0.0.1:8501), never through a port-forward.
- `kubectl(...)` runs the real kubectl binary with `--context`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient, Resource
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from servelab.backends import base
from servelab.backends.kube_objects import (
    PodTracker,
    age_s,
    hpa_info,
    pod_info,
    unix_time,
)
from servelab.backends.kube_watch import ObjectWatch
from servelab.core import repo
from servelab.core.manifests import load_documents, quantity
from servelab.core.tools import find_tool, kubectl_install_hint

KIND_CONFIG = "cluster/kind-config.yaml"
FIELD_MANAGER = "servelab"


def kind_port_map(path: Path | None = None) -> dict[int, tuple[str, int]]:
    """nodePort -> (host address, host port), from a kind config's extraPortMappings."""
    mapping = {}
    for node in yaml.safe_load((path or repo.path(KIND_CONFIG)).read_text()).get("nodes", []):
        for m in node.get("extraPortMappings", []):
            mapping[int(m["containerPort"])] = (m.get("listenAddress", "127.0.0.1"), int(m["hostPort"]))
    return mapping


def discovery_cache(host: str) -> Path:
    """This user's file for what the API server at `host` serves (the client's default is shared /tmp)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "servelab" / "kube-discovery"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / f"{hashlib.sha256(host.encode()).hexdigest()[:16]}.json"


def resource_word(resource: Resource) -> str:
    """kubectl's name for a resource in its messages: "deployment.apps", "service"."""
    return f"{resource.kind.lower()}.{resource.group}" if resource.group else resource.kind.lower()


def _resolve(source: Any) -> Any:
    """A relative manifest path that exists only under the repository (labs/ cwd) -> that file."""
    if isinstance(source, (str, Path)) and "\n" not in str(source):
        path = Path(source)
        if not path.exists() and (repo.ROOT / path).exists():
            return repo.ROOT / path
    return source


class KubeCluster(base.Cluster):
    """A kubeconfig context (kind-servelab by default) seen through the `Cluster` interface."""

    backend = "kube"

    def __init__(self, context: str = "kind-servelab", namespace: str = "default", *,
                 api_client: client.ApiClient | None = None, node_ports: dict[int, tuple[str, int]] | None = None,
                 watch_objects: bool = True):
        self.context = context
        self.namespace = namespace
        # KUBECONFIG is read now, not when the client library was imported (it may be a path list).
        self.api = api_client or config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"), context=context)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)
        self.node_ports = kind_port_map() if node_ports is None else node_ports
        self.t0 = time.time()
        self._events: list[base.Event] = []
        self._changed = threading.Condition()
        self._closed = False
        self._pods = PodTracker()
        self._replicas: dict[str, int] = {}
        self._hpa_status: dict[str, tuple] = {}
        self._pod_life: dict[str, dict] = {}
        watched = (("Pod", "v1", self._on_pod), ("Deployment", "apps/v1", self._on_deployment),
                   ("HorizontalPodAutoscaler", "autoscaling/v2", self._on_hpa)) if watch_objects else ()
        self._watches = [ObjectWatch(self.dynamic, self._resource(kind, api_version), namespace, handle)
                         for kind, api_version, handle in watched]
        for follower in self._watches:
            follower.start()

    @property
    def watch_errors(self) -> list[str]:
        """Why a watch had to be resumed or relisted: the timeline may have missed a beat there."""
        return [error for follower in self._watches for error in follower.errors]

    @cached_property
    def dynamic(self) -> DynamicClient:
        """The client that discovers kinds; built on first use (watching or applying), as reads need none."""
        return DynamicClient(self.api, cache_file=str(discovery_cache(self.api.configuration.host)))

    def _resource(self, kind: str, api_version: str) -> Resource:
        group, _, version = api_version.rpartition("/")  # the core group ("v1") lives under /api, the rest under /apis
        try:
            return self.dynamic.resources.get(prefix="apis" if group else "api", group=group, api_version=version,
                                              kind=kind)
        except ResourceNotFoundError:
            raise ValueError(f"the cluster serves no {kind} in {api_version} (kubectl api-resources lists "
                             "what it serves); check the manifest's apiVersion and kind") from None

    # --- reading ---------------------------------------------------------------------------

    def _json(self, method: Callable, *args: Any, **kwargs: Any) -> dict:
        """Call a typed API method and return the response as plain JSON (kubectl's field names)."""
        return json.loads(method(*args, _preload_content=False, **kwargs).data)

    def pods(self, selector: dict[str, str] | None = None) -> list[base.PodInfo]:
        label_selector = ",".join(f"{k}={v}" for k, v in (selector or {}).items())
        items = self._json(self.core.list_namespaced_pod, self.namespace, label_selector=label_selector)["items"]
        now, usage = time.time(), self._pod_cpu_usage()
        return sorted((pod_info(p, now, usage) for p in items), key=lambda p: p.name)

    def _pod_cpu_usage(self) -> dict[str, float]:
        """Pod name -> CPU cores from metrics-server; empty when the metrics API is not there yet."""
        try:
            metrics = self._json(client.CustomObjectsApi(self.api).list_namespaced_custom_object,
                                 "metrics.k8s.io", "v1beta1", self.namespace, "pods")
        except ApiException:
            return {}
        return {m["metadata"]["name"]: sum(float(quantity(c["usage"]["cpu"], "PodMetrics containers[].usage.cpu")) for c in m["containers"])
                for m in metrics.get("items", [])}

    def deployments(self) -> list[base.DeploymentInfo]:
        now = time.time()
        out = []
        for d in self._json(self.apps.list_namespaced_deployment, self.namespace)["items"]:
            status = d.get("status", {})
            out.append(base.DeploymentInfo(
                name=d["metadata"]["name"], replicas=d["spec"].get("replicas", 1),
                ready=status.get("readyReplicas", 0), up_to_date=status.get("updatedReplicas", 0),
                available=status.get("availableReplicas", 0), age_s=age_s(d["metadata"].get("creationTimestamp"), now),
                selector=d["spec"]["selector"].get("matchLabels", {}),
            ))
        return out

    def services(self) -> list[base.ServiceInfo]:
        now = time.time()
        ready = [p for p in self.pods() if p.ready]
        out = []
        for s in self._json(self.core.list_namespaced_service, self.namespace)["items"]:
            spec = s["spec"]
            ports = ",".join(f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
                             else f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
            selector = spec.get("selector") or {}
            behind = [f"{p.ip}:{p.port}" for p in ready if selector and selector.items() <= p.labels.items()]
            out.append(base.ServiceInfo(
                name=s["metadata"]["name"], type=spec.get("type", "ClusterIP"), cluster_ip=spec.get("clusterIP", ""),
                external_ip=None, ports=ports, age_s=age_s(s["metadata"].get("creationTimestamp"), now),
                url=self._url_of(s), endpoints=behind,
            ))
        return out

    def hpas(self) -> list[base.HPAInfo]:
        now = time.time()
        items = self._json(self.autoscaling.list_namespaced_horizontal_pod_autoscaler, self.namespace)["items"]
        return [hpa_info(h, now) for h in items]

    def service_url(self, name: str = "model-serving") -> str:
        return self._url_of(self._json(self.core.read_namespaced_service, name, self.namespace))

    def _url_of(self, service: dict) -> str:
        """NodePort as kind maps it to this machine; else the first node's address and the NodePort."""
        port = service["spec"]["ports"][0]
        node_port = port.get("nodePort")
        if node_port is None:
            return f"http://{service['spec'].get('clusterIP')}:{port['port']}"
        if node_port in self.node_ports:
            host, host_port = self.node_ports[node_port]
            return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{host_port}"
        nodes = self._json(self.core.list_node)["items"]
        address = next(a["address"] for a in nodes[0]["status"]["addresses"] if a["type"] == "InternalIP")
        return f"http://{address}:{node_port}"

    # --- changing --------------------------------------------------------------------------

    def apply(self, source: str | Path | dict | list) -> list[str]:
        return [self._apply_one(doc) for doc in load_documents(_resolve(source))]

    def _apply_one(self, doc: dict) -> str:
        resource = self._resource(doc["kind"], doc["apiVersion"])
        name, namespace = doc["metadata"]["name"], self._namespace_of(resource, doc)
        try:
            before = self.dynamic.get(resource, name=name, namespace=namespace)
        except NotFoundError:
            before = None
        after = self.dynamic.server_side_apply(resource, body=doc, namespace=namespace,
                                               field_manager=FIELD_MANAGER, force_conflicts=True)
        if before is None:
            verb = "created"
        elif before.metadata.resourceVersion == after.metadata.resourceVersion:
            verb = "unchanged"
        else:
            verb = "configured"
        return f"{resource_word(resource)}/{name} {verb}"

    def _namespace_of(self, resource: Resource, doc: dict) -> str | None:
        return doc["metadata"].get("namespace", self.namespace) if resource.namespaced else None

    def delete(self, source_or_kind: str | Path | dict | list, name: str | None = None) -> list[str]:
        if name is not None:
            if source_or_kind.lower() not in _KIND_WORDS:
                raise ValueError(f"cannot delete a {source_or_kind!r}: name one of {', '.join(sorted(_KIND_WORDS))}, "
                                 "or give the manifest")
            kind, api_version = _KIND_WORDS[source_or_kind.lower()]
            docs = [{"kind": kind, "apiVersion": api_version, "metadata": {"name": name}}]
        else:
            docs = load_documents(_resolve(source_or_kind))
        lines = []
        for doc in docs:
            resource = self._resource(doc["kind"], doc["apiVersion"])
            try:
                self.dynamic.delete(resource, name=doc["metadata"]["name"], namespace=self._namespace_of(resource, doc))
                outcome = "deleted"
            except NotFoundError:
                outcome = "not found"
            lines.append(f'{resource_word(resource)} "{doc["metadata"]["name"]}" {outcome}')
        return lines

    def scale(self, deployment: str, replicas: int) -> str:
        self.apps.patch_namespaced_deployment_scale(deployment, self.namespace, {"spec": {"replicas": replicas}},
                                                field_manager=FIELD_MANAGER)
        return f"deployment.apps/{deployment} scaled"

    def wait_ready(self, deployment: str, replicas: int | None = None, timeout: float = 60) -> float:
        started = time.monotonic()
        spec = self._json(self.apps.read_namespaced_deployment, deployment, self.namespace)["spec"]
        want = spec.get("replicas", 1) if replicas is None else replicas
        selector = spec["selector"].get("matchLabels", {})
        while True:
            running = [p for p in self.pods(selector) if p.status != "Terminating"]  # those may linger
            ready = sum(p.ready for p in running)
            if ready == want and len(running) == want:
                return time.monotonic() - started
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise TimeoutError(f"{deployment}: {ready}/{want} pods ready and {len(running)} pods not terminating "
                                   f"after {timeout:.0f} s; see kubectl get pods and kubectl describe pod")
            with self._changed:  # woken by the pod watch; the timeout covers a watch that is not running
                self._changed.wait(min(left, 1.0))

    # --- the timeline ----------------------------------------------------------------------

    def events(self) -> list[base.Event]:
        with self._changed:
            return list(self._events)

    def _record(self, kind: str, obj: str, message: str, **data: Any) -> None:
        now = time.time()
        with self._changed:
            self._events.append(base.Event(now - self.t0, kind, obj, message, data, unix_s=now))
            self._changed.notify_all()

    def _on_pod(self, kind: str, pod: dict) -> None:
        name = pod["metadata"]["name"]
        if kind == "EXISTING":
            self._pods.seen[name] = pod
            self._note_life(pod)
            return
        for event_kind, message, data in self._pods.observe("MODIFIED" if kind == "RESYNC" else kind, pod):
            self._record(event_kind, f"pod/{name}", message, **data)
        self._note_life(pod, gone=kind == "DELETED")

    def _note_life(self, pod: dict, gone: bool = False) -> None:
        """Remember each pod's start, end and requests for run_metadata's cost rows."""
        name = pod["metadata"]["name"]
        info = pod_info(pod, time.time())
        life = self._pod_life.setdefault(name, {"name": name, "start_s": unix_time(pod["metadata"]["creationTimestamp"]),
                                                "end_s": None})
        life.update(cpu_request_cores=info.cpu_request_cores, memory_request_gib=info.memory_request_gib,
                    deployment=info.deployment)
        if gone:
            life["end_s"] = time.time()

    def _on_deployment(self, kind: str, deployment: dict) -> None:
        name, replicas = deployment["metadata"]["name"], deployment["spec"].get("replicas", 1)
        old = self._replicas.get(name)
        self._replicas[name] = replicas
        if kind in ("MODIFIED", "RESYNC") and old is not None and old != replicas:
            self._record(base.SCALED, f"deployment/{name}", f"replicas {old} -> {replicas}",
                         old=old, new=replicas, by=_last_manager(deployment))

    def _on_hpa(self, kind: str, hpa: dict) -> None:
        if kind in ("EXISTING", "DELETED"):
            return
        info, status = hpa_info(hpa, time.time()), hpa.get("status", {})
        state = (info.utilization_pct, status.get("currentReplicas"), status.get("desiredReplicas"),
                 status.get("lastScaleTime"))
        if self._hpa_status.get(info.name) == state:
            return
        self._hpa_status[info.name] = state
        shown = "<unknown>" if info.utilization_pct is None else f"{info.utilization_pct:.0f}%"
        self._record(base.HPA_DECISION, f"hpa/{info.name}",
                     f"cpu {shown} of request (target {info.target_pct:.0f}%): "
                     f"{status.get('currentReplicas')} -> {status.get('desiredReplicas')} replicas",
                     utilization_pct=info.utilization_pct, target_pct=info.target_pct,
                     current=status.get("currentReplicas"), desired=status.get("desiredReplicas"))

    # --- the rest of the interface ---------------------------------------------------------

    def kubectl(self, command: str) -> str:
        binary = find_tool("kubectl")
        if binary is None:
            raise RuntimeError(f"kubectl is not installed: {kubectl_install_hint()}")
        cwd = repo.ROOT if not Path("cluster").is_dir() and (repo.ROOT / "cluster").is_dir() else None
        done = subprocess.run([binary, "--context", self.context, *shlex.split(command)], cwd=cwd,
                              capture_output=True, text=True)
        output = (done.stdout + done.stderr).rstrip("\n")
        print(output)
        return output

    def run_metadata(self, start_unix_s: float | None = None, end_unix_s: float | None = None) -> dict:
        """A `base.RunMetadata`, as a dict; pods are those the watch saw, clipped to the window."""
        deployments = {d.name: d for d in self.deployments()}
        first = deployments.get("model-serving-deployment") or next(iter(deployments.values()), None)
        pod = next((p for p in self.pods(first.selector) if first), None) if first else None
        nodes = self._json(self.core.list_node)["items"]
        now = time.time()
        lo = -float("inf") if start_unix_s is None else start_unix_s
        hi = now if end_unix_s is None else min(now, end_unix_s)
        usages = []
        for life in list(self._pod_life.values()):
            start, end = max(life["start_s"], lo), min(life["end_s"] or now, hi)
            if end > start:
                usages.append({"name": life["name"], "start_s": round(start, 3), "end_s": round(end, 3),
                               "cpu_request_cores": life["cpu_request_cores"],
                               "memory_request_gib": life["memory_request_gib"], "cpu_used_core_s": None})
        return base.RunMetadata(
            backend=self.backend,
            context=self.context,
            replicas=first.replicas if first else 0,
            ready_replicas=first.ready if first else 0,
            cpu_request_cores=pod.cpu_request_cores if pod else None,
            cpu_limit_cores=pod.cpu_limit_cores if pod else None,
            memory_request_gib=pod.memory_request_gib if pod else None,
            memory_limit_gib=pod.memory_limit_gib if pod else None,
            limits_enforced=True,  # the kubelet enforces limits through cgroups on every node
            limits_note="",
            cpu_count=sum(int(quantity(n["status"]["capacity"]["cpu"], "Node status.capacity.cpu")) for n in nodes),
            pods=usages,
        ).to_dict()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for follower in self._watches:
            follower.stop()
        self.api.close()


def _last_manager(obj: dict) -> str:
    """Which field manager changed the object last: "kube-controller-manager" is the HPA."""
    entries = [m for m in obj["metadata"].get("managedFields") or [] if m.get("time")]
    return max(entries, key=lambda m: m["time"])["manager"] if entries else "unknown"


_KIND_WORDS = {
    word: pair
    for pair, words in {
        ("Deployment", "apps/v1"): ("deployment", "deployments", "deploy"),
        ("Service", "v1"): ("service", "services", "svc"),
        ("HorizontalPodAutoscaler", "autoscaling/v2"): ("hpa", "horizontalpodautoscaler", "horizontalpodautoscalers"),
        ("Pod", "v1"): ("pod", "pods", "po"),
        ("Job", "batch/v1"): ("job", "jobs"),
    }.items()
    for word in words
}
