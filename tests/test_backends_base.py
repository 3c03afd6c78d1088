"""The Cluster base class's own behaviour: rolling out a changed Deployment."""

from __future__ import annotations

from servelab.backends import base
from servelab.backends.manifests import deployment


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
