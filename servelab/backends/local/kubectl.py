"""The lesson's kubectl commands, answered by the local cluster with kubectl's own columns and words.

Understood: apply -f, delete -f / delete KIND NAME, get pods|deployment|svc|hpa [NAME] [-l k=v],
describe pod [NAME] [-l k=v], scale deployment NAME --replicas=N,
autoscale deployment NAME --cpu-percent=P --min=A --max=B, rollout status deployment/NAME, top pods,
logs POD [--tail=N].
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from servelab.backends import kubectl_format as fmt
from servelab.backends.local.validation import kind_of

if TYPE_CHECKING:
    from servelab.backends.local.local_cluster import LocalCluster

Row = TypeVar("Row")

USAGE = ("apply -f FILE | delete -f FILE | delete KIND NAME | get pods|deployment|svc|hpa [NAME] [-l k=v] | "
         "describe pod [NAME] [-l k=v] | scale deployment NAME --replicas=N | "
         "autoscale deployment NAME --cpu-percent=P --min=A --max=B | "
         "rollout status deployment/NAME | top pods | logs POD [--tail=N]")


class KubectlError(ValueError):
    """A command line the local backend does not understand; says what it does understand."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl", add_help=False, exit_on_error=False)
    parser.add_argument("verb")
    parser.add_argument("words", nargs="*")
    parser.add_argument("-f", "--filename", action="append", default=[])
    parser.add_argument("-l", "--selector")
    parser.add_argument("-o", "--output")
    parser.add_argument("-n", "--namespace")
    parser.add_argument("--replicas", type=int)
    parser.add_argument("--cpu-percent", type=int)
    parser.add_argument("--min", type=int)
    parser.add_argument("--max", type=int)
    parser.add_argument("--name")
    parser.add_argument("--timeout")
    parser.add_argument("--tail", type=int)
    return parser


def _kind_and_name(words: list[str]) -> tuple[str, str | None]:
    """["deployment", "x"] or ["deployment/x"] or ["pods"] -> (Kind, name or None)."""
    if not words:
        raise KubectlError(f"say which resource type; understood: {USAGE}")
    first, rest = words[0], words[1:]
    if "/" in first:
        kind, name = first.split("/", 1)
        return kind_of(kind), name
    return kind_of(first), (rest[0] if rest else None)


def run(cluster: LocalCluster, command: str) -> str:
    """Run one kubectl command line (with or without the leading word `kubectl`) on `cluster`."""
    argv = shlex.split(command)
    if argv[:1] == ["kubectl"]:
        argv = argv[1:]
    try:
        args = _parser().parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as error:
        raise KubectlError(f"cannot read kubectl {command!r}: {error}; understood: {USAGE}") from None
    handler = _VERBS.get(args.verb)
    if handler is None:
        raise KubectlError(f"the local backend does not run 'kubectl {args.verb}'; understood: {USAGE}")
    return handler(cluster, args)


def _apply(cluster: LocalCluster, args: argparse.Namespace) -> str:
    if not args.filename:
        raise KubectlError("kubectl apply needs -f FILE")
    return "\n".join(line for f in args.filename for line in cluster.apply(f))


def _delete(cluster: LocalCluster, args: argparse.Namespace) -> str:
    if args.filename:
        return "\n".join(line for f in args.filename for line in cluster.delete(f))
    kind, name = _kind_and_name(args.words)
    if name is None:
        raise KubectlError("kubectl delete needs -f FILE or KIND NAME")
    return "\n".join(cluster.delete(kind, name))


def _selector(args: argparse.Namespace) -> dict[str, str] | None:
    return dict(kv.split("=", 1) for kv in args.selector.split(",")) if args.selector else None


def _get(cluster: LocalCluster, args: argparse.Namespace) -> str:
    kind, name = _kind_and_name(args.words)
    selector = _selector(args)
    if kind == "Pod":
        rows = [p for p in cluster.pods(selector) if name in (None, p.name)]
        return _found(rows, name, "pods", fmt.pods_table)
    if kind == "Deployment":
        rows = [d for d in cluster.deployments() if name in (None, d.name)]
        return _found(rows, name, "deployments.apps", fmt.deployments_table)
    if kind == "Service":
        rows = [s for s in cluster.services() if name in (None, s.name)]
        return _found(rows, name, "services", fmt.services_table)
    rows = [h for h in cluster.hpas() if name in (None, h.name)]
    return _found(rows, name, "horizontalpodautoscalers.autoscaling", fmt.hpas_table)


def _describe(cluster: LocalCluster, args: argparse.Namespace) -> str:
    kind, name = _kind_and_name(args.words)
    if kind != "Pod":
        raise KubectlError("the local backend runs 'describe pod [NAME]' only")
    pods = [p for p in cluster.pods(_selector(args)) if name in (None, p.name)]
    if name is not None and not pods:
        return f'Error from server (NotFound): pods "{name}" not found'
    events, now = cluster.events(), time.time()
    texts = []
    for pod in pods:
        try:
            spec = cluster.pod_spec(pod.name)
        except KeyError:
            continue  # gone since it was listed
        texts.append(fmt.describe_pod(pod, spec.name, spec.image, events, now))
    return "\n\n".join(texts) or "No resources found in default namespace."


def _found(rows: list[Row], name: str | None, resource: str, table: Callable[[Sequence[Row]], str]) -> str:
    if name is not None and not rows:
        return f'Error from server (NotFound): {resource} "{name}" not found'
    return table(rows)


def _scale(cluster: LocalCluster, args: argparse.Namespace) -> str:
    kind, name = _kind_and_name(args.words)
    if kind != "Deployment" or name is None or args.replicas is None:
        raise KubectlError("usage: scale deployment NAME --replicas=N")
    return cluster.scale(name, args.replicas)


def _autoscale(cluster: LocalCluster, args: argparse.Namespace) -> str:
    kind, name = _kind_and_name(args.words)
    if kind != "Deployment" or name is None or args.max is None:
        raise KubectlError("usage: autoscale deployment NAME --cpu-percent=P --min=A --max=B")
    hpa_name = args.name or name
    manifest = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": hpa_name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": args.min or 1,
            "maxReplicas": args.max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": args.cpu_percent or 80}}}],
        },
    }
    cluster.apply(manifest)
    return f"horizontalpodautoscaler.autoscaling/{hpa_name} autoscaled"


def _rollout(cluster: LocalCluster, args: argparse.Namespace) -> str:
    if args.words[:1] != ["status"]:
        raise KubectlError("the local backend runs 'rollout status deployment/NAME' only")
    kind, name = _kind_and_name(args.words[1:])
    timeout = float(args.timeout.rstrip("s")) if args.timeout else 300.0
    state = next((d for d in cluster.deployments() if d.name == name), None)
    if state is None:
        return f'Error from server (NotFound): deployments.apps "{name}" not found'
    try:
        cluster.wait_ready(name, timeout=0)
        return f'deployment "{name}" successfully rolled out'
    except TimeoutError:
        pass
    pods = [p for p in cluster.pods() if p.deployment == name and p.status != "Terminating"]
    newest = min(pods, key=lambda p: p.age_s).labels.get("pod-template-hash") if pods else None
    available = sum(p.ready for p in pods if p.labels.get("pod-template-hash") == newest)
    print(f'Waiting for deployment "{name}" rollout to finish: {available} of {state.replicas} updated replicas '
          "are available...")
    cluster.wait_ready(name, timeout=timeout)
    return f'deployment "{name}" successfully rolled out'


def _top(cluster: LocalCluster, args: argparse.Namespace) -> str:
    kind, _ = _kind_and_name(args.words)
    if kind != "Pod":
        raise KubectlError("the local backend runs 'top pods' only")
    rows = [
        (name, "<unknown>" if cpu is None else f"{round(cpu * 1000)}m",
         "<unknown>" if memory is None else f"{round(memory / 2**20)}Mi")
        for name, cpu, memory in cluster.top_pods()
    ]
    return fmt.table(("NAME", "CPU(cores)", "MEMORY(bytes)"), rows)


def _logs(cluster: LocalCluster, args: argparse.Namespace) -> str:
    if len(args.words) != 1:
        raise KubectlError("usage: logs POD [--tail=N]")
    lines = cluster.logs(args.words[0]).splitlines()
    return "\n".join(lines[-args.tail:] if args.tail else lines)


_VERBS = {
    "apply": _apply, "delete": _delete, "get": _get, "describe": _describe, "scale": _scale,
    "autoscale": _autoscale, "rollout": _rollout, "top": _top, "logs": _logs,
}
