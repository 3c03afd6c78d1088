"""How many pods exist: a fixed count, the HPA, or a scheduled batch job."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from servelab.core import hpa


@dataclass(frozen=True)
class Static:
    """A fixed number of pods, all Ready from the start."""

    replicas: int = 1

    def to_dict(self) -> dict:
        return {"kind": "static", "replicas": self.replicas}


@dataclass(frozen=True)
class Autoscaled:
    """Pods managed by the HPA algorithm, synced every `sync_period_s` on each pod's busy CPU."""

    spec: hpa.HPASpec
    initial_replicas: int | None = None  # default: spec.min_replicas
    sync_period_s: float = hpa.SYNC_PERIOD_S

    @classmethod
    def from_manifest(cls, path: str | Path, **kwargs) -> Autoscaled:
        """From an HPA manifest file, e.g. cluster/model-serving-hpa.yaml."""
        return cls(hpa.HPASpec.from_manifest(yaml.safe_load(Path(path).read_text())), **kwargs)

    def to_dict(self) -> dict:
        spec = asdict(self.spec)
        return {"kind": "hpa", "spec": spec, "initial_replicas": self.initial_replicas, "sync_period_s": self.sync_period_s}


@dataclass(frozen=True)
class Batch:
    """A scheduled job: requests wait for the next run (at `run_at_s`, then every `period_s`), which
    starts `replicas` pods that work through the queue and stop when it is empty."""

    replicas: int = 1
    period_s: float = 86400.0
    run_at_s: float = 0.0

    def to_dict(self) -> dict:
        return {"kind": "batch", **asdict(self)}
