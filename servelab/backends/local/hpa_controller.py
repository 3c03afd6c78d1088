"""The HPA controller of the local cluster: one task per HorizontalPodAutoscaler, syncing every sync period.

Each sync feeds the target's pods' CPU to `core.hpa.Autoscaler` (upstream's algorithm), records its
decision on the timeline and sets the Deployment's replicas; the deployment controller does the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from servelab.backends import base
from servelab.backends.local.objects import HPA, Objects
from servelab.core import hpa


class HPAController:
    def __init__(self, objects: Objects, reconcile: Callable[[], Awaitable[None]], sync_period_s: float,
                 metrics_window_s: float) -> None:
        self.objects, self.reconcile = objects, reconcile
        self.sync_period_s, self.metrics_window_s = sync_period_s, metrics_window_s

    async def apply(self, doc: dict, old: HPA | None) -> None:
        spec = hpa.HPASpec.from_manifest(doc)
        if old is not None and old.task is not None:
            old.task.cancel()
        autoscaler = hpa.Autoscaler(spec, metric_window_s=self.metrics_window_s)
        entry = HPA(doc, autoscaler, old.created_s if old else self.objects.now())
        entry.task = asyncio.create_task(self._loop(entry))
        self.objects.hpas[doc["metadata"]["name"]] = entry

    async def delete(self, entry: HPA) -> None:
        entry.task.cancel()

    def tasks(self) -> list[asyncio.Task]:
        return [h.task for h in self.objects.hpas.values()]

    async def _loop(self, entry: HPA) -> None:
        while True:
            await asyncio.sleep(self.sync_period_s)
            self._sync(entry)
            await self.reconcile()

    def _sync(self, entry: HPA) -> None:
        spec = entry.autoscaler.spec
        d = self.objects.deployments.get(spec.target_name)
        if d is None:
            return
        samples = [
            hpa.PodSample(p.name, p.ready, p.cpu_usage_cores(self.metrics_window_s), p.spec.cpu_request,
                          started_s=p.ready_since_s, deleting=p.deleting,
                          phase="Running" if p.status in ("Running", "Terminating") else "Pending")
            for p in d.pods
        ]
        decision = entry.autoscaler.decide(self.objects.now(), d.replicas, samples)
        entry.last = decision
        util = decision.utilization_pct
        self.objects.record(
            base.HPA_DECISION, f"horizontalpodautoscaler/{spec.name}",
            f"cpu {'<unknown>' if util is None else f'{util:.0f}%'}/{decision.target_pct}%: "
            f"{decision.current_replicas} -> {decision.desired_replicas} ({decision.reason})",
            utilization_pct=util, target_pct=decision.target_pct, current=decision.current_replicas,
            desired=decision.desired_replicas, raw_desired=decision.raw_desired, reason=decision.reason,
            pod_cpu_cores={s.name: s.cpu_usage_cores for s in samples},
        )
        if decision.desired_replicas != d.replicas:
            self.objects.record(base.SCALED, f"deployment/{d.name}",
                                f"replicas {d.replicas} -> {decision.desired_replicas} by HPA",
                                old=d.replicas, new=decision.desired_replicas, by="hpa")
            d.replicas = decision.desired_replicas
