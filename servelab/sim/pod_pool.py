"""The pods of one simulation: routing, queues, HPA syncs, and undoing a stretch a sync cut short."""

from __future__ import annotations

import heapq
import math

import numpy as np

from servelab.core import hpa
from servelab.core.cost import PodUsage
from servelab.sim.policies import Autoscaled, Batch, Static
from servelab.sim.queues import Quota, fifo_finish
from servelab.sim.service_times import PodSize

ROUTINGS = ("round-robin", "random", "least-outstanding")
SPECULATE_SYNCS = 40


class Pods:
    """The pods of one simulation and their queues."""

    def __init__(self, size: PodSize, concurrency: int, routing: str, startup_s: float, rng: np.random.Generator):
        self.size, self.concurrency, self.routing, self.startup_s, self.rng = size, concurrency, routing, startup_s, rng
        self.quota = Quota(size) if size.throttles else None
        self.names: list[str] = []
        self.created: list[float] = []
        self.ready_at: list[float] = []
        self.ended: list[float | None] = []
        self.live: list[int] = []  # pods not scaled away, oldest first
        self.free_at = np.zeros(0)  # one slot per pod: when its queue empties
        self.slots: list[list[float]] = []  # several slots per pod: a heap of free times each
        self.outstanding: list[list[float]] = []  # least-outstanding: finish times still ahead, per pod
        self.used_s = np.zeros(0)  # seconds of service per pod (x slots in use)
        self.last_finish = np.zeros(0)
        self.busy: np.ndarray | None = None  # [pod, sync bin] seconds of service, for the HPA's CPU
        self.bin_s = hpa.SYNC_PERIOD_S
        self.rr = 0
        self.initial = 0
        self.timeline: list[dict] = []

    # -- pods ---------------------------------------------------------------------------------------

    def add_pods(self, count: int, now: float, ready_at: float) -> None:
        for _ in range(count):
            self.names.append(f"model-serving-sim-{len(self.names)}")
            self.created.append(now)
            self.ready_at.append(ready_at)
            self.ended.append(None)
            self.live.append(len(self.names) - 1)
            self.slots.append([ready_at] * self.concurrency)
            self.outstanding.append([])
        self.free_at = np.concatenate((self.free_at, np.full(count, ready_at)))
        self.used_s = np.concatenate((self.used_s, np.zeros(count)))
        self.last_finish = np.concatenate((self.last_finish, np.full(count, ready_at)))
        if self.quota is not None:
            self.quota.add(count)
        if self.busy is not None:
            self.busy = np.vstack((self.busy, np.zeros((count, self.busy.shape[1]))))

    def ready(self, now: float) -> np.ndarray:
        """Pods a Service would route to at `now`; if none is Ready yet, the starting ones (requests wait)."""
        ready = [i for i in self.live if self.ready_at[i] <= now]
        return np.array(ready or self.live, dtype=np.int64)

    def next_ready_after(self, now: float) -> float:
        return min((self.ready_at[i] for i in self.live if self.ready_at[i] > now), default=math.inf)

    def remove_pods(self, count: int, now: float) -> None:
        """Scale down as a ReplicaSet does: not-yet-Ready pods first, then the newest."""
        leaving = sorted(self.live, key=lambda i: (self.ready_at[i] <= now, -self.created[i]))[:count]
        for i in leaving:
            self.ended[i] = now  # out of the Service now; its queue still drains
        self.live = [i for i in self.live if i not in leaving]

    def pod_usages(self, end: float) -> list[dict]:
        usages = []
        for i, name in enumerate(self.names):
            stop = self.ended[i] if self.ended[i] is not None else end
            usages.append(PodUsage(
                name=name,
                start_s=self.created[i],
                end_s=float(max(stop, self.last_finish[i])),
                cpu_request_cores=self.size.cpu_request_cores,
                memory_request_gib=self.size.memory_request_gib,
                cpu_used_core_s=float(self.used_s[i] * self.size.cpu_busy_cores),
            ).to_dict())
        return usages

    # -- policies -----------------------------------------------------------------------------------

    def run_online(self, arrivals: np.ndarray, busy_s: np.ndarray, policy: Static | Autoscaled,
                   end: float) -> tuple[np.ndarray, np.ndarray]:
        """Static or HPA: serve stretch by stretch between syncs and pods becoming Ready."""
        autoscaler = None
        if isinstance(policy, Autoscaled):
            autoscaler = hpa.Autoscaler(policy.spec, metric_window_s=policy.sync_period_s)
            self.bin_s = policy.sync_period_s
            self.busy = np.zeros((0, int(end // self.bin_s) + 2))
            self.initial = policy.initial_replicas or policy.spec.min_replicas
        else:
            self.initial = policy.replicas
        if self.initial < 1:
            raise ValueError("the simulation needs at least one pod to start with")
        self.add_pods(self.initial, 0.0, 0.0)
        # One-slot round-robin/random queues are solved many syncs ahead, betting that the replica
        # count holds; at the first sync that changes it, the requests after that sync are undone.
        ahead = SPECULATE_SYNCS if self.concurrency == 1 and self.routing != "least-outstanding" else 1
        pod_ids = np.zeros(len(arrivals), dtype=np.int64)
        finish = np.zeros(len(arrivals))
        t0, k = 0.0, 1  # k: the next sync, at k * bin_s
        while t0 < end:
            last_sync = (k + ahead - 1) * self.bin_s if autoscaler else math.inf
            t1 = min(last_sync, self.next_ready_after(t0), end)
            i0, i1 = np.searchsorted(arrivals, [t0, t1])
            stretch = self.serve(t0, arrivals[i0:i1], busy_s[i0:i1])
            cut = t1
            while autoscaler and k * self.bin_s <= t1 and k * self.bin_s < end:
                changed = self.sync(autoscaler, k * self.bin_s, k, stretch)
                k += 1
                if changed:
                    cut = (k - 1) * self.bin_s
                    break
            kept = int(np.searchsorted(arrivals[i0:i1], cut)) if cut < t1 else i1 - i0
            pod_ids[i0:i0 + kept], finish[i0:i0 + kept] = self.commit(stretch, kept)
            t0 = cut
        return pod_ids, finish

    def run_batch(self, arrivals: np.ndarray, busy_s: np.ndarray, policy: Batch,
                  end: float) -> tuple[np.ndarray, np.ndarray]:
        """Each request waits for the next run; each run starts its pods and drains the queue."""
        self.initial = policy.replicas
        runs = policy.run_at_s + np.ceil((arrivals - policy.run_at_s) / policy.period_s) * policy.period_s
        pod_ids = np.zeros(len(arrivals), dtype=np.int64)
        finish = np.zeros(len(arrivals))
        for run_s in np.unique(runs):
            i0, i1 = np.searchsorted(runs, [run_s, np.nextafter(run_s, np.inf)])
            first = len(self.names)
            start = run_s + self.startup_s
            self.add_pods(policy.replicas, run_s, start)
            queued = np.full(i1 - i0, start)
            pod_ids[i0:i1], finish[i0:i1] = self.commit(self.serve(start, queued, busy_s[i0:i1]), i1 - i0)
            for i in range(first, len(self.names)):
                self.ended[i] = float(self.last_finish[i])
            self.live = []
        return pod_ids, finish

    def sync(self, autoscaler: hpa.Autoscaler, now: float, k: int, stretch: Stretch) -> bool:
        """One HPA sync: each pod's CPU over the last period, a decision, pods added or removed.

        Returns whether the replica count changed."""
        live = list(self.live)
        samples = []
        for i in live:
            ready = self.ready_at[i] <= now
            busy_s = self.busy[i, k - 1] + stretch.busy_in(i, k - 1)
            cpu = busy_s / self.bin_s * self.size.cpu_busy_cores if ready else 0.0
            samples.append(hpa.PodSample(self.names[i], ready, cpu, self.size.cpu_request_cores, self.ready_at[i]))
        decision = autoscaler.decide(now, len(live), samples)
        change = decision.desired_replicas - len(live)
        if change > 0:
            self.add_pods(change, now, now + self.startup_s)
        elif change < 0:
            self.remove_pods(-change, now)
        self.timeline.append({
            "t_s": now,
            "replicas": len(live),
            "ready": sum(s.ready for s in samples),
            "desired": decision.desired_replicas,
            "utilization_pct": decision.utilization_pct,
            "reason": decision.reason,
        })
        return change != 0

    # -- queues -------------------------------------------------------------------------------------

    def serve(self, t0: float, arrivals: np.ndarray, busy_s: np.ndarray) -> Stretch:
        """Route a stretch of arrivals (all at or after t0, same Ready pods) and queue them."""
        targets = self.ready(t0)
        saved = (self.free_at[targets].copy(), self.rr, self.quota.save(targets) if self.quota else None)
        if self.concurrency == 1 and self.routing != "least-outstanding":
            pods = self._route_vector(targets, len(arrivals))
            finish = fifo_finish(arrivals, busy_s, pods, self.free_at, t0, self.quota) if len(arrivals) else np.zeros(0)
        else:
            pods, finish = self._serve_one_by_one(targets, arrivals, busy_s)
        stretch = Stretch(targets, pods, finish, busy_s, saved)
        stretch.t0, stretch.arrivals = t0, arrivals
        if self.busy is not None and len(pods):
            stretch.grid, stretch.low = busy_grid(self.bin_s, self.busy.shape[1] - 1, targets, pods, finish - busy_s, finish)
        return stretch

    def commit(self, stretch: Stretch, kept: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep the stretch's first `kept` requests; undo the queueing of the rest (fast path only)."""
        pods, finish, busy_s = stretch.pods[:kept], stretch.finish[:kept], stretch.busy_s[:kept]
        if kept < len(stretch.pods):
            free, rr, quota = stretch.saved
            self.free_at[stretch.targets] = free
            if self.quota is None:
                np.maximum.at(self.free_at, pods, finish)  # a queue's last finish is its latest
            else:  # the quota left in each pod's last period: serve the kept requests again (same finishes)
                self.quota.restore(stretch.targets, quota)
                if kept:
                    fifo_finish(stretch.arrivals[:kept], busy_s, pods, self.free_at, stretch.t0, self.quota)
            self.rr = (rr + kept) % len(stretch.targets)
            if len(pods):
                stretch.grid, stretch.low = busy_grid(
                    self.bin_s, self.busy.shape[1] - 1, stretch.targets, pods, finish - busy_s, finish
                )
            else:
                stretch.grid = None
        self.used_s += np.bincount(pods, weights=busy_s, minlength=len(self.names))
        np.maximum.at(self.last_finish, pods, finish)
        if stretch.grid is not None:
            self.busy[stretch.targets[:, None], stretch.low + np.arange(stretch.grid.shape[1])] += stretch.grid
        return pods, finish

    def _route_vector(self, targets: np.ndarray, k: int) -> np.ndarray:
        if self.routing == "random":
            return targets[self.rng.integers(len(targets), size=k)]
        picks = targets[(self.rr + np.arange(k)) % len(targets)]
        self.rr = (self.rr + k) % len(targets)
        return picks

    def _serve_one_by_one(self, targets: np.ndarray, arrivals: np.ndarray,
                          busy_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Several slots per pod, or least-outstanding routing: a heap of slot free times per pod."""
        least = self.routing == "least-outstanding"
        chosen = None if least else self._route_vector(targets, len(arrivals)).tolist()
        candidates = targets.tolist()
        pods, finish = [], []
        for j, (t, s) in enumerate(zip(arrivals.tolist(), busy_s.tolist())):
            p = min(candidates, key=lambda i: _outstanding(self.outstanding[i], t)) if least else chosen[j]
            slots = self.slots[p]
            start = max(t, slots[0])
            done = self.quota.serve_one(p, start, s) if self.quota else start + s
            heapq.heapreplace(slots, done)
            if least:
                heapq.heappush(self.outstanding[p], done)
            pods.append(p)
            finish.append(done)
        return np.array(pods, dtype=np.int64), np.array(finish)


def _outstanding(heap: list[float], now: float) -> int:
    """Requests a pod has not finished at `now` (drops the finished ones from its heap)."""
    while heap and heap[0] <= now:
        heapq.heappop(heap)
    return len(heap)


def busy_grid(bin_s: float, last: int, targets: np.ndarray, pods: np.ndarray, start: np.ndarray,
              finish: np.ndarray) -> tuple[np.ndarray, int]:
    """Seconds of service per pod per sync bin: a grid over (targets, bins low..) and its first bin.

    Bins past `last` fold into it (they lie beyond the run and only add to a total).
    """
    b0 = np.minimum((start // bin_s).astype(np.int64), last)
    b1 = np.minimum((finish // bin_s).astype(np.int64), last)
    edge = (b0 + 1) * bin_s  # the bin edge a request crosses, if it crosses one
    crosses = b1 > b0
    rows = np.searchsorted(targets, pods)  # targets are pod ids in creation order, so sorted
    low, span = int(b0.min()), int(b1.max() - b0.min() + 1)
    cells = np.concatenate((rows * span + b0 - low, rows * span + b1 - low))
    seconds = np.concatenate((np.minimum(finish, edge) - start, np.where(crosses, finish - edge, 0.0)))
    grid = np.bincount(cells, weights=seconds, minlength=len(targets) * span).reshape(len(targets), span)
    wide = b1 > b0 + 1  # longer than a bin: the second part above also counted the middle bins
    for row, lo, hi in zip(rows[wide], b0[wide] - low, b1[wide] - low):
        grid[row, lo + 1:hi] += bin_s
        grid[row, hi] -= (hi - lo - 1) * bin_s
    return grid, low


class Stretch:
    """Requests routed and queued between two events, not yet committed to the pods' totals."""

    def __init__(self, targets: np.ndarray, pods: np.ndarray, finish: np.ndarray, busy_s: np.ndarray,
                 saved: tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray] | None]) -> None:
        self.targets, self.pods, self.finish, self.busy_s, self.saved = targets, pods, finish, busy_s, saved
        self.grid: np.ndarray | None = None
        self.low = 0
        self._rows = {int(p): r for r, p in enumerate(targets)}

    def busy_in(self, pod: int, column: int) -> float:
        """This stretch's service seconds on `pod` in sync bin `column`."""
        row = self._rows.get(pod)
        if self.grid is None or row is None or not 0 <= column - self.low < self.grid.shape[1]:
            return 0.0
        return float(self.grid[row, column - self.low])
