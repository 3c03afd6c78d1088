"""A Deployment's pod template: what one pod runs (container, requests and limits, probes) and the names its pods get.

Only what the labs' manifests use is understood; anything else in them is ignored, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass, field

from servelab.core.manifests import cpu_cores, memory_bytes
from servelab.limits.cgroupfs import PERIOD_S

# Kubernetes' "safe" alphabet for generated names (no vowels, no 0/1/3): k8s.io/apimachinery rand.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def pod_template_hash(template: dict) -> str:
    """A stable hash of the pod template, spelled like Kubernetes' pod-template-hash label.

    Upstream hashes the Go object with FNV-32a and encodes its decimal digits with the safe
    alphabet; we hash canonical JSON instead (same idea: same template, same name).
    """
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = str(int.from_bytes(digest[:4], "big"))
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in number)


def pod_suffix(rng: random.Random) -> str:
    return "".join(rng.choice(SAFE_ALPHABET) for _ in range(5))


@dataclass
class Probe:
    """An httpGet probe: path on the pod's port, every period_s, failing after failure_threshold."""

    path: str
    period_s: float = 10.0
    timeout_s: float = 1.0
    initial_delay_s: float = 0.0
    failure_threshold: int = 3
    success_threshold: int = 1

    @classmethod
    def from_manifest(cls, d: dict | None) -> Probe | None:
        if not d:
            return None
        if "httpGet" not in d:
            raise ValueError(f"the local backend runs httpGet probes only; got {sorted(d)}")
        return cls(
            path=d["httpGet"].get("path", "/"),
            period_s=float(d.get("periodSeconds", 10)),
            timeout_s=float(d.get("timeoutSeconds", 1)),
            initial_delay_s=float(d.get("initialDelaySeconds", 0)),
            failure_threshold=int(d.get("failureThreshold", 3)),
            success_threshold=int(d.get("successThreshold", 1)),
        )


@dataclass
class ContainerSpec:
    """What it takes to run one pod of a Deployment as a process."""

    args: list[str]
    env: list[dict]
    container_port: int | None
    cpu_request: float
    cpu_limit: float | None
    memory_request: int
    memory_limit: int | None
    readiness: Probe | None
    liveness: Probe | None
    pre_stop: list[str] | None
    grace_period_s: float
    labels: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    name: str = ""  # the container's, for kubectl describe
    image: str | None = None  # not pulled: the local backend runs `servelab` from this Python
    cpu_period_s: float = PERIOD_S  # the CPU quota's period: CFS's default, as the kubelet sets it

    @classmethod
    def from_template(cls, template: dict) -> ContainerSpec:
        spec = template.get("spec", {})
        containers = spec.get("containers") or []
        if len(containers) != 1:
            raise ValueError(f"spec.template.spec.containers: the local backend runs one container per pod, "
                             f"not {len(containers)}")
        c = containers[0]
        resources = c.get("resources", {})
        requests, limits = resources.get("requests", {}), resources.get("limits", {})
        ports = c.get("ports") or []
        pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command")
        return cls(
            args=[str(a) for a in c.get("args", [])],
            env=list(c.get("env", [])),
            container_port=int(ports[0]["containerPort"]) if ports else None,
            # Kubernetes defaults a missing request to the limit.
            cpu_request=cpu_cores(requests.get("cpu", limits.get("cpu"))) or 0.0,
            cpu_limit=cpu_cores(limits.get("cpu")),
            memory_request=memory_bytes(requests.get("memory", limits.get("memory"))) or 0,
            memory_limit=memory_bytes(limits.get("memory")),
            readiness=Probe.from_manifest(c.get("readinessProbe")),
            liveness=Probe.from_manifest(c.get("livenessProbe")),
            pre_stop=[str(x) for x in pre_stop] if pre_stop else None,
            grace_period_s=float(spec.get("terminationGracePeriodSeconds", 30)),
            labels=dict(template.get("metadata", {}).get("labels", {})),
            command=[str(x) for x in c["command"]] if c.get("command") else None,
            name=str(c.get("name", "")),
            image=c.get("image"),
        )

    def argv(self, port: int) -> list[str]:
        """The process to run: `servelab ...` becomes this Python's `-m servelab.cli ...`.

        The containerPort in the args (`--port 8501`) becomes the pod's own port, as each pod
        of a real cluster has its own IP but here all share 127.0.0.1.
        """
        args, old = list(self.args), str(self.container_port)
        for i, arg in enumerate(args):
            if arg == old and i > 0 and args[i - 1] == "--port":
                args[i] = str(port)
            elif arg == f"--port={old}":
                args[i] = f"--port={port}"
        command = self.command or []
        if command[:1] in ([], ["servelab"]):
            return [sys.executable, "-m", "servelab.cli", *command[1:], *args]
        return [*command, *args]

    def environment(self, pod_name: str) -> dict[str, str]:
        """The container's env: plain values and the fieldRefs a pod can know about itself."""
        fields = {"metadata.name": pod_name, "metadata.namespace": "default", "status.podIP": "127.0.0.1"}
        env = {}
        for item in self.env:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "fieldRef" in item.get("valueFrom", {}):
                env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        return env
