"""The kube backend: the labs' manifests on a real Kubernetes cluster, through the official client.

- `apply` uses server-side apply (PATCH application/apply-patch+yaml, field manager "servelab"),
  so applying the same file twice is a no-op and a lab's apply never fights `make deploy`.
- `scale` goes through the Deployment's scale subresource, as `kubectl scale` and the HPA do.
- Pods, Deployments and HPAs are watched from the moment the object is created; every change
  becomes an `Event` of the shared timeline (pod created/running/ready/gone, scaled, HPA decision).
- The Service is reached through its NodePort as kind maps it to this machine
  (cluster/kind-config.yaml: 30501 -> 127.0.0.1:8501), never through a port-forward.
- `kubectl(...)` runs the real kubectl binary with `--context`.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from servelab.backends import base
from servelab.backends.kube_objects import PodTracker, age_s, hpa_info, pod_info, unix_time
from servelab.backends.manifests import load_documents

ROOT = Path(__file__).resolve().parents[2]
KIND_CONFIG = ROOT / "cluster" / "kind-config.yaml"
FIELD_MANAGER = "servelab"
WATCH_TIMEOUT_S = 300  # the API server ends a watch after this; the watcher then resumes it
CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "StorageClass", "PriorityClass", "ClusterRole",
    "ClusterRoleBinding", "APIService", "CustomResourceDefinition",
}


def kind_port_map(path: Path = KIND_CONFIG) -> dict[int, tuple[str, int]]:
    """nodePort -> (host address, host port), from a kind config's extraPortMappings."""
    if not path.is_file():
        return {}
    mapping = {}
    for node in yaml.safe_load(path.read_text()).get("nodes", []):
        for m in node.get("extraPortMappings", []):
            mapping[int(m["containerPort"])] = (m.get("listenAddress", "127.0.0.1"), int(m["hostPort"]))
    return mapping


def api_path(doc: dict, namespace: str) -> tuple[str, str]:
    """REST path of an object and kubectl's name for its resource ("deployment.apps").

    Built from apiVersion and kind without discovery: plural is kind lowercased + "s" ("es"
    after s, "ies" for a final y), which holds for every kind the labs apply.
    """
    kind, api_version = doc["kind"], doc["apiVersion"]
    lower = kind.lower()
    plural = lower + "es" if lower.endswith("s") else lower[:-1] + "ies" if lower.endswith("y") else lower + "s"
    group = api_version.split("/")[0] if "/" in api_version else ""
    prefix = f"/apis/{api_version}" if group else f"/api/{api_version}"
    if kind not in CLUSTER_SCOPED:
        prefix += f"/namespaces/{doc['metadata'].get('namespace', namespace)}"
    return f"{prefix}/{plural}/{doc['metadata']['name']}", f"{lower}.{group}" if group else lower


def _resolve(source: Any) -> Any:
    """A relative manifest path that exists only under the repository (labs/ cwd) -> that file."""
    if isinstance(source, (str, Path)) and "\n" not in str(source):
        path = Path(source)
        if not path.exists() and (ROOT / path).exists():
            return ROOT / path
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
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watchers: dict[str, watch.Watch] = {}
        self.watch_errors: list[str] = []  # why a watch had to be resumed (the timeline may miss a beat)
        self._pods = PodTracker()
        self._replicas: dict[str, int] = {}
        self._hpa_status: dict[str, tuple] = {}
        self._pod_life: dict[str, dict] = {}
        if watch_objects:
            self._start_watch(self.core.list_namespaced_pod, self._on_pod)
            self._start_watch(self.apps.list_namespaced_deployment, self._on_deployment)
            self._start_watch(self.autoscaling.list_namespaced_horizontal_pod_autoscaler, self._on_hpa)

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
        return {m["metadata"]["name"]: sum(float(parse_quantity(c["usage"]["cpu"])) for c in m["containers"])
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
        path, resource = api_path(doc, self.namespace)
        before = self._request("GET", path, missing_ok=True)
        after = self._request("PATCH", path, body=doc, query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                              content_type="application/apply-patch+yaml")
        if before is None:
            verb = "created"
        elif before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]:
            verb = "unchanged"
        else:
            verb = "configured"
        return f"{resource}/{doc['metadata']['name']} {verb}"

    def delete(self, source_or_kind: str | Path | dict | list, name: str | None = None) -> list[str]:
        if name is not None:
            kind, api_version = _KIND_WORDS[source_or_kind.lower()]
            docs = [{"kind": kind, "apiVersion": api_version, "metadata": {"name": name}}]
        else:
            docs = load_documents(_resolve(source_or_kind))
        lines = []
        for doc in docs:
            path, resource = api_path(doc, self.namespace)
            gone = self._request("DELETE", path, missing_ok=True) is None
            lines.append(f'{resource} "{doc["metadata"]["name"]}" {"not found" if gone else "deleted"}')
        return lines

    def _request(self, method: str, path: str, *, body: dict | None = None, query: list | None = None,
                 content_type: str = "application/json", missing_ok: bool = False) -> dict | None:
        """One REST call through the client's ApiClient (auth, TLS, host from the kubeconfig)."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self.api.param_serialize(method, path, query_params=query or [], header_params=headers,
                                           body=json.dumps(body) if body is not None else None,
                                           auth_settings=["BearerToken"])
        response = self.api.call_api(*request)
        response.read()
        if missing_ok and response.status == 404:
            return None
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(response.data)

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

    def _start_watch(self, list_method: Callable, handle: Callable[[str, dict], None]) -> None:
        thread = threading.Thread(target=self._watch_loop, args=(list_method, handle), daemon=True,
                                  name=f"servelab-watch-{list_method.__name__}")
        thread.start()
        self._threads.append(thread)

    def _watch_loop(self, list_method: Callable, handle: Callable[[str, dict], None]) -> None:
        """List, then watch from the list's resourceVersion, resuming where the last change left off.

        The first list is the starting state, not news ("EXISTING"). After an error (including 410
        Gone) the loop lists again and hands each object over as "RESYNC", which the handlers diff
        like a MODIFIED event, so a change missed while disconnected still reaches the timeline.
        """
        version, first = None, True
        while not self._closed.is_set():
            received = 0
            try:
                if version is None:
                    listing = self._json(list_method, self.namespace)
                    for item in listing["items"]:
                        handle("EXISTING" if first else "RESYNC", item)
                    version, first = listing["metadata"]["resourceVersion"], False
                watcher = watch.Watch()
                self._watchers[list_method.__name__] = watcher  # the current one per watch loop
                for change in watcher.stream(list_method, self.namespace, resource_version=version,
                                             timeout_seconds=WATCH_TIMEOUT_S, deserialize=False):
                    if self._closed.is_set():
                        watcher.stop()
                        break
                    received += 1
                    version = change["object"]["metadata"].get("resourceVersion", version)
                    handle(change["type"], change["object"])
            except Exception as error:  # keep watching through API hiccups; say so once
                if self._closed.is_set():
                    return
                self._watch_error(list_method.__name__, error)
                version = None
            if not received:
                self._closed.wait(1.0)

    def _watch_error(self, what: str, error: Exception) -> None:
        """Remember a broken watch (the loop relists); print only the first, not one per retry."""
        message = f"{what}: {type(error).__name__}: {str(error)[:160]}"
        if not self.watch_errors:
            print(f"servelab: a watch of the cluster broke and is being resumed ({message})", file=sys.stderr)
        self.watch_errors.append(message)

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
        from servelab.doctor import check_kubectl, find_tool

        binary = find_tool("kubectl")
        if binary is None:
            raise RuntimeError(f"kubectl is not installed: {check_kubectl().fix}")
        cwd = ROOT if not Path("cluster").is_dir() and (ROOT / "cluster").is_dir() else None
        done = subprocess.run([binary, "--context", self.context, *shlex.split(command)], cwd=cwd,
                              capture_output=True, text=True)
        output = (done.stdout + done.stderr).rstrip("\n")
        print(output)
        return output

    def run_metadata(self, start_unix_s: float | None = None, end_unix_s: float | None = None) -> dict:
        """Same keys as the local backend's; pods are those the watch saw, clipped to the window."""
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
        return {
            "backend": self.backend,
            "context": self.context,
            "replicas": first.replicas if first else 0,
            "ready_replicas": first.ready if first else 0,
            "cpu_request_cores": pod.cpu_request_cores if pod else None,
            "cpu_limit_cores": pod.cpu_limit_cores if pod else None,
            "memory_request_gib": pod.memory_request_gib if pod else None,
            "memory_limit_gib": pod.memory_limit_gib if pod else None,
            "limits_enforced": True,  # the kubelet enforces limits through cgroups on every node
            "limits_note": "",
            "cpu_count": sum(int(float(parse_quantity(n["status"]["capacity"]["cpu"]))) for n in nodes),
            "pods": usages,
        }

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for watcher in list(self._watchers.values()):  # unblock a stream waiting for the server's next change
            watcher.stop()
            response = getattr(watcher, "_resp", None)
            if response is not None:
                response.close()
        for thread in self._threads:
            thread.join(timeout=2.0)
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
