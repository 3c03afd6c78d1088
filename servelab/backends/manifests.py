"""Reading Kubernetes manifests: the documents themselves and their resource quantities.

Shared by every backend (and the labs), so that `cluster.apply(...)` accepts the same sources
everywhere: a path, a folder, YAML text, a dict or a list of them.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml


def load_documents(source: str | Path | dict | list) -> list[dict]:
    """Manifests from a path, YAML text, one dict or a list of dicts (empty documents dropped)."""
    if isinstance(source, dict):
        docs = [source]
    elif isinstance(source, list):
        docs = [d for item in source for d in load_documents(item)]
    else:
        text = str(source)
        looks_like_yaml = "\n" in text or text.lstrip().startswith(("apiVersion", "kind", "{"))
        if isinstance(source, Path) or not looks_like_yaml:
            path = Path(text).expanduser()
            if path.is_dir():
                return [d for p in sorted(path.glob("*.y*ml")) for d in load_documents(p)]
            if not path.is_file():
                raise FileNotFoundError(f"no manifest file {path} (give a path, YAML text or a dict)")
            text = path.read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "name" not in doc.get("metadata", {}):
            raise ValueError(f"not a Kubernetes object (needs kind and metadata.name): {str(doc)[:200]}")
    return [copy.deepcopy(d) for d in docs]


def cpu_cores(quantity: str | int | float | None) -> float | None:
    """Kubernetes CPU quantity -> cores: '500m' -> 0.5, '2' -> 2.0."""
    if quantity is None:
        return None
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


_MEMORY_UNITS = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "": 1,
}


def memory_bytes(quantity: str | int | None) -> int | None:
    """Kubernetes memory quantity -> bytes: '256Mi' -> 268435456."""
    if quantity is None:
        return None
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity))
    if not match or match.group(2) not in _MEMORY_UNITS:
        raise ValueError(f"cannot read memory quantity {quantity!r} (use e.g. 256Mi or 1Gi)")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT_FILE = "cluster/model-serving-deployment.yaml"
SERVICE_FILE = "cluster/model-serving-service.yaml"


def container(manifest: dict) -> dict:
    """The one container of a Deployment's or Job's pod template, to change its args or resources in place."""
    return manifest["spec"]["template"]["spec"]["containers"][0]


def deployment(*, model: str | None = None, replicas: int | None = None) -> dict:
    """The lesson's Deployment manifest as a dict, serving `model` and/or with `replicas` changed.

    Apply it with `cluster.apply(...)`; the file itself stays as the lesson has it.
    """
    manifest = load_documents(ROOT / DEPLOYMENT_FILE)[0]
    if replicas is not None:
        manifest["spec"]["replicas"] = int(replicas)
    if model is not None:
        args = container(manifest)["args"]
        args[args.index("--model") + 1] = model
    return manifest


def service() -> dict:
    """The lesson's Service manifest as a dict."""
    return load_documents(ROOT / SERVICE_FILE)[0]
