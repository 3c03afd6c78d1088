"""The deployment controller, the ReplicaSet controller and the scheduler of the local cluster, in one.

It makes each Deployment's pods match its replicas and template (rolling out a changed template as
upstream does), then places Pending pods on the one node, oldest first, where their requests fit.
"""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import replace
from pathlib import Path

from servelab import limits
from servelab.backends import base
from servelab.backends.local.node import Allocatable
from servelab.backends.local.objects import Deployment, Objects
from servelab.backends.local.pod_size import scaled
from servelab.backends.local.pod_template import ContainerSpec, pod_suffix, pod_template_hash
from servelab.backends.local.pods import Owner, Pod
from servelab.backends.local.validation import replicas_problem
from servelab.core.manifests import InvalidManifest

TICK_S = 1.0  # how often pods' CPU is sampled and desired state is re-checked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deletion_order(pod: Pod) -> tuple:
    """Which pods a scale-down removes first, as the ReplicaSet controller ranks them: unscheduled,
    then not running, then unready, then the youngest."""
    return (pod.scheduled_s is not None, pod.status == "Running", pod.ready, -pod.created_s)


def _without_pre_stop(spec: ContainerSpec) -> ContainerSpec:
    return replace(spec, pre_stop=None)


class DeploymentController:
    """Deployments' pods, from creation (Pending) through scheduling to termination."""

    def __init__(self, objects: Objects, owner: Owner, node: Allocatable, held: limits.Ladder, log_dir: Path,
                 rng: random.Random, cpu_scale: float) -> None:
        self.objects, self.owner, self.node, self.limits = objects, owner, node, held
        self.log_dir, self.rng, self.cpu_scale = log_dir, rng, cpu_scale
        self._lock = asyncio.Lock()  # binds to the cluster's loop on first use

    async def tick(self) -> None:
        """Sample every pod's CPU and re-check desired state, every TICK_S, until cancelled."""
        while True:
            for pod in self.objects.pods():
                if pod.status != "Gone":
                    pod.sample_cpu()
            await self.reconcile()
            await asyncio.sleep(TICK_S)

    async def apply(self, doc: dict, old: Deployment | None) -> None:
        template = doc["spec"]["template"]
        spec = scaled(ContainerSpec.from_template(template), self.cpu_scale)
        replicas = int(doc["spec"].get("replicas", 1))
        name = doc["metadata"]["name"]
        if old is None:
            self.objects.deployments[name] = Deployment(doc, replicas, pod_template_hash(template), spec,
                                                        self.objects.now())
            self.objects.record(base.SCALED, f"deployment/{name}", f"created with {replicas} replicas",
                                old=0, new=replicas, by="apply")
            return
        if replicas != old.replicas:
            self.objects.record(base.SCALED, f"deployment/{name}", f"replicas {old.replicas} -> {replicas}",
                                old=old.replicas, new=replicas, by="apply")
        old.manifest, old.replicas = doc, replicas
        old.template_hash, old.spec = pod_template_hash(template), spec

    async def delete(self, d: Deployment) -> None:
        """`d`, already out of the table. As with kubectl's default (background) deletion, the Deployment is
        gone at once and its pods terminate after it, each within its grace period: still costed, and
        holding their share of the node until they are gone."""
        self.objects.record(base.SCALED, f"deployment/{d.name}", "deleted", old=d.replicas, new=0, by="delete")
        for p in d.pods:
            p.terminate()
        self.objects.finished.extend(d.pods)

    async def delete_pod(self, name: str) -> None:
        pod = next((p for p in self.objects.pods() if p.name == name), None)
        if pod is None:
            raise KeyError(f'pods "{name}" not found')
        await pod.terminate()

    async def scale(self, name: str, replicas: int) -> str:
        d = self.objects.deployments.get(name)
        if d is None:
            raise KeyError(f'deployments.apps "{name}" not found')
        problem = (f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0" if replicas < 0
                   else replicas_problem(replicas, "spec.replicas", d.spec, self.node))
        if problem:
            raise InvalidManifest(f'The Deployment "{name}" is invalid: {problem}')
        if replicas != d.replicas:
            self.objects.record(base.SCALED, f"deployment/{name}", f"replicas {d.replicas} -> {replicas}",
                                old=d.replicas, new=replicas, by="scale")
            d.replicas = replicas
        await self.reconcile()
        return f"deployment.apps/{name} scaled"

    async def reconcile(self) -> None:
        """Make every deployment's pods match its desired replicas and template, then place the Pending ones."""
        async with self._lock:
            for d in self.objects.deployments.values():
                current = [p for p in d.live() if p.template_hash == d.template_hash]
                for _ in range(d.replicas - len(current)):
                    self._create_pod(d)
                outdated = [p for p in d.live() if p.template_hash != d.template_hash]
                if outdated:
                    self._roll(d, current, outdated)
                if len(current) > d.replicas:
                    self._terminate(sorted(current, key=_deletion_order)[: len(current) - d.replicas])
                self.objects.finished.extend(p for p in d.pods if p.status == "Gone")
                d.pods = [p for p in d.pods if p.status != "Gone"]
            self._schedule()

    async def terminate_all(self) -> None:
        """Closing: every pod is stopped within its grace period, without preStop or the server's drain
        delay (nobody is routed to them any more)."""
        pods = [p for p in [*self.objects.pods(), *self.objects.finished] if p.status != "Gone"]
        for p in pods:
            p.spec = _without_pre_stop(p.spec)
        await asyncio.gather(*(p.terminate(closing=True) for p in pods))

    def _roll(self, d: Deployment, current: list[Pod], outdated: list[Pod]) -> None:
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

    def _create_pod(self, d: Deployment) -> None:
        """A new pod, Pending until `_schedule` finds it room."""
        pod = Pod(self.owner, f"{d.name}-{d.template_hash}-{pod_suffix(self.rng)}", d.name, d.template_hash, d.spec,
                  self.log_dir)
        d.pods.append(pod)
        pod.created()

    def _schedule(self) -> None:
        """Start each Pending pod, oldest first, whose requests fit next to the pods already placed
        (terminating ones hold theirs until gone); the others stay Pending, saying why."""
        pods = [p for p in [*self.objects.pods(), *self.objects.finished] if p.status != "Gone"]
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
