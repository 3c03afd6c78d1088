"""One-slot FIFO queues solved for all requests at once, and CFS quota throttling on top of them."""

from __future__ import annotations

import bisect
import itertools

import numpy as np

from servelab.sim.service_times import PodSize


def fifo_finish(arrivals: np.ndarray, busy_s: np.ndarray, pods: np.ndarray, free_at: np.ndarray, t0: float,
                quota: Quota | None = None) -> np.ndarray:
    """Finish times of one-slot FIFO queues, all pods at once; updates `free_at` per pod.

    For one queue, finish_i = S_i + max(free, max over j <= i of (a_j - S_j-1)) where S is the
    running sum of service times: Lindley's recursion unrolled. Grouping the requests by pod and
    offsetting each group makes one cumulative maximum serve every pod. Times are taken relative to
    t0 to keep the offsets small. With a `quota`, the queues are then throttled (`_throttle`).
    """
    order = np.argsort(pods.astype(np.int32), kind="stable")
    p, a, s = pods[order], arrivals[order] - t0, busy_s[order]
    first = np.flatnonzero(np.concatenate(([True], p[1:] != p[:-1])))
    counts = np.diff(np.append(first, len(p)))
    groups = p[first]
    g = np.repeat(np.arange(len(groups)), counts)
    total = np.cumsum(s)
    before = (total - s)[first]  # service summed over earlier groups
    running = total - before[g]  # S_i within the group
    x = a - (running - s)
    offset = (x.max() - x.min() + 1.0) * g
    best = np.maximum.accumulate(x + offset) - offset
    done = running + np.maximum(best, (free_at[groups] - t0)[g]) + t0
    if quota is not None:
        _throttle(arrivals[order], s, done, g, first, counts, groups, free_at[groups], quota)
    free_at[groups] = done[first + counts - 1]
    finish = np.empty_like(done)
    finish[order] = done
    return finish


class Quota:
    """CFS bandwidth control for one-slot pods: each period a pod may burn `budget` CPU-seconds.

    Per pod it keeps the period of its last work (`k`, in periods since 0) and the CPU-seconds used
    in that period so far (`used`): all a queue needs to carry from one stretch to the next.
    """

    def __init__(self, size: PodSize):
        self.period, self.inv = size.cfs_period_s, 1.0 / size.cfs_period_s
        self.rate = size.cpu_busy_cores  # CPU-seconds burnt per second of service
        self.budget = size.cpu_limit_cores * size.cfs_period_s
        self.k = np.zeros(0, dtype=np.int64)
        self.used = np.zeros(0)

    def add(self, count: int) -> None:
        self.k = np.concatenate((self.k, np.full(count, -1, dtype=np.int64)))
        self.used = np.concatenate((self.used, np.zeros(count)))

    def save(self, pods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.k[pods].copy(), self.used[pods].copy()

    def restore(self, pods: np.ndarray, saved: tuple[np.ndarray, np.ndarray]) -> None:
        self.k[pods], self.used[pods] = saved

    def serve_one(self, pod: int, start: float, busy: float) -> float:
        """Serve one request on `pod` from `start`; returns when it finishes."""
        k, used = int(self.k[pod]), float(self.used[pod])
        if int(start * self.inv) > k:
            k, used = int(start * self.inv), 0.0
        t, self.k[pod], self.used[pod] = self.run(start, busy * self.rate, k, used)
        return t

    def run(self, t: float, need: float, k: int, used: float) -> tuple[float, int, float]:
        """Burn `need` CPU-seconds from `t`, in period `k` with `used` spent: (end, its period, used there).

        Full speed while the period has quota; once it is spent, nothing until the next period.
        """
        while True:
            end = (k + 1) * self.period
            run = min(need, self.budget - used, (end - t) * self.rate)
            if run > 0:
                t, used, need = t + run / self.rate, used + run, need - run
            if need <= 0:
                return t, k, used
            t, k, used = end, k + 1, 0.0


def _throttle(arrivals: np.ndarray, s: np.ndarray, done: np.ndarray, g: np.ndarray, first: np.ndarray,
              counts: np.ndarray, groups: np.ndarray, free0: np.ndarray, quota: Quota) -> None:
    """Throttle one-slot FIFO queues solved without a quota (`done`, sorted by pod; fixed in place).

    Where no period of a pod's unthrottled schedule burns more than the quota, that schedule is
    exact, and that is most of a run below capacity: periods' usage is summed for all requests at
    once. From the start of the first period over quota, the pod's requests are served one at a
    time until one arrives in a later period than the last one's work (its queue empty, its quota
    fresh); from there the unthrottled schedule holds again, up to the next period over quota.
    `free0` is each pod's free time before this stretch; `quota.k/used` its quota so far.
    """
    P, r, budget = quota.period, quota.rate, quota.budget
    start = done - s
    ks = np.floor(start * quota.inv).astype(np.int64)
    kf = np.maximum(np.ceil(done * quota.inv).astype(np.int64) - 1, ks)  # a finish on a boundary: the earlier period
    one = kf == ks
    # CPU per (pod, period): each request's part in its first and its last period, in queue order.
    keys = np.empty(2 * len(s), dtype=np.int64)
    keys[0::2], keys[1::2] = ks, kf
    pods2 = np.repeat(g, 2)
    cpu = np.empty(2 * len(s))
    cpu[0::2] = np.where(one, s, (ks + 1) * P - start) * r
    cpu[1::2] = np.where(one, 0.0, done - kf * P) * r
    new = np.ones(len(keys), dtype=bool)
    new[1:] = (keys[1:] != keys[:-1]) | (pods2[1:] != pods2[:-1])
    runs = np.flatnonzero(new)
    run_pod, run_k = pods2[runs], keys[runs]
    k0, u0 = quota.k[groups], quota.used[groups]
    usage = np.add.reduceat(cpu, runs) + np.where(run_k == k0[run_pod], u0[run_pod], 0.0)
    # Each pod's quota after its last request, if nothing below changes it.
    last_run = np.searchsorted(run_pod, np.arange(len(groups)), side="right") - 1
    quota.k[groups], quota.used[groups] = run_k[last_run], usage[last_run]
    over = usage > budget * (1 + 1e-9)
    spans = kf - ks >= 2  # busy through a whole period at more than the limit: over by construction
    bad_pod = np.concatenate((run_pod[over], g[spans]))
    bad_k = np.concatenate((run_k[over], ks[spans] + 1))
    if not len(bad_pod):
        return
    order = np.lexsort((bad_k, bad_pod))
    bad_pod, bad_k = bad_pod[order], bad_k[order]
    edges = np.flatnonzero(np.concatenate(([True], bad_pod[1:] != bad_pod[:-1], [True])))
    for lo, hi in itertools.pairwise(edges):
        i = bad_pod[lo]
        a, b = first[i], first[i] + counts[i]
        end = _throttled_queue(arrivals[a:b], s[a:b], done[a:b], np.unique(bad_k[lo:hi]).tolist(),
                               free0[i], int(k0[i]), float(u0[i]), quota)
        if end is not None:
            quota.k[groups[i]], quota.used[groups[i]] = end


def _throttled_queue(arrivals: np.ndarray, busy: np.ndarray, done: np.ndarray, over: list[int], free0: float,
                     k0: int, u0: float, quota: Quota) -> tuple[int, float] | None:
    """One pod's queue, throttled from each period in `over` until it is back on its unthrottled
    schedule; `done` (unthrottled on entry) is fixed in place. Returns the quota state (k, used)
    after the last request if that one was served here, else None."""
    unthrottled = done.copy()
    P, inv, r, budget = quota.period, quota.inv, quota.rate, quota.budget
    n, i, v = len(arrivals), 0, 0
    while v < len(over):
        if i == 0 and over[v] <= k0:  # the period the last stretch left part-used: from the first request
            j, t, k, used, rest = 0, free0, k0, u0, None
        else:  # from the period's start: nothing before it changes
            k = over[v]
            t, used = k * P, 0.0
            j = i + int(np.searchsorted(unthrottled[i:], t, side="right"))  # the first not finished by then
            rest = unthrottled[j] - t if unthrottled[j] - busy[j] < t else None
        fresh = rest is None  # its first request is served here whatever; after it, only until the queue is idle
        if rest is not None:  # under way at the period's start: the rest of it
            t, k, used = quota.run(t, rest * r, k, used)
            done[j] = t
            j += 1
        chunk = 16
        while j < n:  # Python floats in growing chunks: an episode is usually a few periods long
            a, s = arrivals[j:j + chunk].tolist(), busy[j:j + chunk].tolist()
            served = []
            for begin, dur in zip(a, s):
                if not fresh and begin >= (k + 1) * P:  # an arrival in a fresh period, queue idle
                    break
                fresh = False
                if begin < t:
                    begin = t
                elif int(begin * inv) > k:
                    k, used = int(begin * inv), 0.0
                if used + dur * r <= budget and begin + dur <= (k + 1) * P:
                    t, used = begin + dur, used + dur * r
                else:
                    t, k, used = quota.run(begin, dur * r, k, used)
                served.append(t)
            done[j:j + len(served)] = served
            j += len(served)
            if len(served) < len(a):
                break
            chunk *= 4
        if j >= n:
            return k, used
        i = j
        v = bisect.bisect_left(over, int(arrivals[j] * inv), v)
    return None
