"""What the local backend refuses in a manifest that a real API server would accept, and the kinds it knows.

One node runs it all, so a replica count beyond kubelet's pod limit, a second container or a probe other
than httpGet is refused up front, naming the problem; the documents' own schema and quantities are
checked by servelab/core/manifests.py, shared with kube.py.
"""

from __future__ import annotations

from servelab.backends.local.node import Allocatable
from servelab.backends.local.pod_template import ContainerSpec
from servelab.core import hpa
from servelab.core.manifests import InvalidManifest

# Confirmation words: kind -> the resource.group kubectl prints.
KIND_RESOURCE = {
    "Deployment": "deployment.apps",
    "Service": "service",
    "HorizontalPodAutoscaler": "horizontalpodautoscaler.autoscaling",
}
KIND_ALIASES = {
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "service": "Service", "services": "Service", "svc": "Service",
    "hpa": "HorizontalPodAutoscaler", "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "pod": "Pod", "pods": "Pod", "po": "Pod",
}


def kind_of(word: str) -> str:
    """'deploy' / 'deployments' / 'Deployment' -> 'Deployment'."""
    kind = KIND_ALIASES.get(word.lower())
    if kind is None:
        raise ValueError(f"unknown resource type {word!r}; known: deployment, service, hpa, pod")
    return kind


def local_problems(doc: dict, node: Allocatable) -> list[str]:
    """What the local cluster cannot run in a document that a real API server would accept."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    prefix = f'The {kind} "{name}" is invalid: '
    if kind not in KIND_RESOURCE:
        return [f"{kind}/{name}: the local backend runs Deployment, Service and HorizontalPodAutoscaler, not {kind} "
                "(a real cluster runs it: servelab.connect('kube'))"]
    try:
        if kind == "Deployment":
            spec = ContainerSpec.from_template(doc["spec"]["template"])
            problem = replicas_problem(doc["spec"].get("replicas", 1), "spec.replicas", spec, node)
        elif kind == "HorizontalPodAutoscaler":
            hpa.HPASpec.from_manifest(doc)
            problem = replicas_problem(doc["spec"]["maxReplicas"], "spec.maxReplicas", None, node)
        else:
            problem = None
    except ValueError as error:
        problem = str(error)
    return [prefix + problem] if problem else []


def replicas_problem(replicas: int, field: str, spec: ContainerSpec | None, node: Allocatable) -> str | None:
    """A replica count one node can never run (beyond kubelet's pod limit), with what this machine holds.

    Counts that fit the pod limit but not the machine's CPU or memory are accepted: the pods
    that do not fit stay Pending, as a scheduler leaves them.
    """
    if replicas <= node.pods:
        return None
    room = ""
    if spec is not None:
        room = (f"; this machine has room for {node.fits(spec.cpu_request, spec.memory_request)} pods of this "
                f"template (each requests {spec.cpu_request:g} CPU and {spec.memory_request / 2**20:g}Mi; "
                f"allocatable: {node.cpu_cores:g} CPU, {node.memory_bytes / 2**30:.1f} GiB)")
    return (f"{field}: Invalid value: {replicas}: the local cluster is one node, which runs at most {node.pods} "
            f"pods (kubelet's --max-pods){room}. Ask for {node.pods} or fewer: pods that do not fit stay Pending")


def check_local(docs: list[dict], node: Allocatable) -> None:
    """Refuse the lot if the local cluster cannot run any of `docs`, naming every problem."""
    problems = [p for doc in docs for p in local_problems(doc, node)]
    if problems:
        raise InvalidManifest("\n".join(problems))
