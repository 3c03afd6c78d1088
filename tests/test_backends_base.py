"""The Cluster base class's own behaviour: rolling out a changed Deployment."""

from __future__ import annotations

import pytest

from servelab.backends import base
from servelab.core.manifests import deployment


class RollingCluster:
    """A cluster whose one pod is replaced by a new one a few polls after apply (unless unchanged)."""

    wait_until = base.Cluster.wait_until

    def __init__(self, answer: str) -> None:
        self.answer, self.polls = answer, 0

    def apply(self, manifest) -> list[str]:
        self.polls = 0
        return [f"deployment.apps/model-serving-deployment {self.answer}"]

    def pods(self):
        from types import SimpleNamespace

        self.polls += 1
        return [SimpleNamespace(name="old", ready=True)] if self.polls < 3 else [SimpleNamespace(name="new", ready=True)]


def test_roll_out_waits_for_only_new_pods_and_not_for_an_unchanged_deployment():
    rolling = RollingCluster("configured")
    assert base.Cluster.roll_out(rolling, deployment(), timeout_s=5) == ["deployment.apps/model-serving-deployment configured"]
    assert rolling.polls >= 3
    unchanged = RollingCluster("unchanged")
    base.Cluster.roll_out(unchanged, deployment(), timeout_s=5)
    assert unchanged.polls == 0, "no poll after an apply that changed nothing"


class BusyCluster:
    """Pods whose CPU counters rise by `burn` core-seconds per poll for `busy_polls` polls, then stop."""

    wait_idle = base.Cluster.wait_idle

    def __init__(self, busy_polls: int, burn: float = 0.5, known: bool = True) -> None:
        self.polls, self.busy_polls, self.burn, self.known, self.used = 0, busy_polls, burn, known, 0.0

    def pods(self):
        from types import SimpleNamespace

        self.polls += 1
        if self.polls <= self.busy_polls:
            self.used += self.burn
        return [SimpleNamespace(name="a", cpu_used_core_s=self.used if self.known else None)]


def test_wait_idle_returns_once_the_pods_stop_burning_cpu():
    cluster = BusyCluster(busy_polls=3)
    cluster.wait_idle(timeout_s=5, every_s=0.01)
    assert cluster.polls == 4  # three busy polls, then the first one whose counter did not move


def test_wait_idle_says_which_pods_stayed_busy():
    with pytest.raises(TimeoutError, match="pods still busy after 0.05 s: \\['a'\\]"):
        BusyCluster(busy_polls=10**6).wait_idle(timeout_s=0.05, every_s=0.01)


def test_run_metadata_keeps_only_its_backend_s_keys_and_reads_back_from_a_result_s_meta():
    """A kube record says nothing about Services (a load run labels a run by distance only when "services" is
    there); the record comes back from a result's meta, which also holds the load run's own keys."""
    kube = base.RunMetadata(backend="kube", replicas=2, ready_replicas=2, cpu_request_cores=0.5, cpu_limit_cores=0.5,
                            memory_request_gib=0.25, memory_limit_gib=0.5, limits_enforced=True, limits_note="",
                            cpu_count=4, pods=[{"name": "p", "start_s": 1.0, "end_s": 2.0}], context="kind-servelab")
    meta = kube.to_dict()
    assert "services" not in meta and "cpu_scale" not in meta and meta["context"] == "kind-servelab"
    assert base.RunMetadata.from_dict({**meta, "url": "http://127.0.0.1:8501", "mode": "open"}) == kube
    local = base.RunMetadata(backend="local", replicas=0, ready_replicas=0, cpu_request_cores=None,
                             cpu_limit_cores=None, memory_request_gib=None, memory_limit_gib=None,
                             limits_enforced=False, limits_note="why", cpu_count=2, service_mode="per-request",
                             services=[], cpu_scale=1.0)
    assert local.to_dict()["services"] == [] and "context" not in local.to_dict()
