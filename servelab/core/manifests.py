"""Reading Kubernetes manifests: the documents, their resource quantities, and checking them.

Shared by every backend (and the labs), so that `cluster.apply(...)` accepts the same sources
everywhere: a path, a folder, YAML text, a dict or a list of them; and refuses, before anything
is created, what a Kubernetes API server would refuse, with the field named as kubectl names it.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import yaml

from servelab.core import repo

# The schemas manifests are checked against (shipped by kubernetes-validate, so offline too): the
# oldest of the versions tests/test_manifests.py validates the kit for.
KUBERNETES_VERSION = "1.35.0"
INT32_MAX = 2**31 - 1


class InvalidManifest(ValueError):
    """A manifest an API server would refuse; the message names each object and field."""


def load_documents(source: str | Path | dict | list) -> list[dict]:
    """Manifests from a path, YAML text, one dict or a list of dicts (empty documents dropped).

    Nothing at all (an empty file, only comments) is an error, as `kubectl apply` says
    "no objects passed to apply": a lab that applies an empty file has the wrong file.
    """
    docs = _documents(source)
    if not docs:
        raise InvalidManifest(f"no objects in {_describe(source)}: it is empty or only comments "
                              "(give a manifest with kind, apiVersion and metadata.name)")
    return docs


def _documents(source: str | Path | dict | list) -> list[dict]:
    if isinstance(source, dict):
        docs = [source]
    elif isinstance(source, list):
        docs = [d for item in source for d in _documents(item)]
    else:
        text = str(source)
        looks_like_yaml = "\n" in text or text.lstrip().startswith(("apiVersion", "kind", "{"))
        if isinstance(source, Path) or not looks_like_yaml:
            path = Path(text).expanduser()
            if path.is_dir():
                return [d for p in sorted(path.glob("*.y*ml")) for d in _documents(p)]
            if not path.is_file():
                raise FileNotFoundError(f"no manifest file {path} (give a path, YAML text or a dict)")
            text = path.read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "name" not in (doc.get("metadata") or {}):
            raise InvalidManifest(f"not a Kubernetes object (needs kind and metadata.name): {str(doc)[:200]}")
    return [copy.deepcopy(d) for d in docs]


def _describe(source: object) -> str:
    if isinstance(source, (dict, list)):
        return "the objects given"
    text = str(source)
    return "the YAML text given" if "\n" in text else text


# -- quantities -----------------------------------------------------------------------------------

# The API server's grammar (k8s.io/apimachinery resource.Quantity). Written out here because the
# official client's parse_quantity accepts what the server refuses ("inf", "1_000", " 1") and
# importing it loads the whole client (1.6 s).
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_SUFFIX = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60), "n": Decimal("1e-9"), "u": Decimal("1e-6"),
    "m": Decimal("1e-3"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18), None: Decimal(1),
}


def quantity(value: str | int | float, field: str = "quantity") -> Decimal:
    """A Kubernetes quantity ('500m', '1.5', '256Mi', '1e3') as an exact number.

    Raises InvalidManifest naming `field` (e.g. spec.template.spec.containers[0].resources.limits.cpu)
    for anything the API server would refuse.
    """
    text = value if isinstance(value, str) else repr(value) if isinstance(value, (int, float)) else None
    match = _QUANTITY.fullmatch(text) if text is not None and not isinstance(value, bool) else None
    if match is None:
        raise InvalidManifest(f"{field}: {_show(value)} is not a quantity "
                              "(write e.g. 500m or 0.5 for CPU, 256Mi or 1Gi for memory)")
    number, suffix = Decimal(match.group(1)), match.group(2)
    if suffix in _SUFFIX:
        return number * _SUFFIX[suffix]
    return number.scaleb(int(suffix[1:]))  # a decimal exponent: 1e3


def cpu_cores(value: str | int | float | None, field: str = "cpu") -> float | None:
    """Kubernetes CPU quantity -> cores: '500m' -> 0.5, '2' -> 2.0 (rounded up to 1m, as the API server does)."""
    if value is None:
        return None
    return math.ceil(quantity(value, field) * 1000) / 1000


def memory_bytes(value: str | int | float | None, field: str = "memory") -> int | None:
    """Kubernetes memory quantity -> bytes: '256Mi' -> 268435456 (rounded up to a whole byte)."""
    if value is None:
        return None
    return math.ceil(quantity(value, field))


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


# -- checking, before anything is created ----------------------------------------------------------

def check(docs: list[dict]) -> None:
    """Refuse the lot if any document is invalid, naming every problem found (nothing is applied).

    Each document is validated against the Kubernetes schema of its kind (unknown fields, wrong
    types, missing required fields, as `kubectl apply` validates strictly), then for what the
    schema cannot say: quantities, non-negative replica counts, requests within limits.
    """
    problems = [p for doc in docs for p in problems_of(doc)]
    if problems:
        raise InvalidManifest("\n".join(problems))


def problems_of(doc: dict) -> list[str]:
    """What an API server would refuse in one document, as kubectl prints it ('The Deployment "x" is invalid: ...')."""
    prefix = f'The {doc.get("kind")} "{(doc.get("metadata") or {}).get("name")}" is invalid: '
    if not isinstance(doc.get("apiVersion"), str):
        return [prefix + "apiVersion: Required value: say which API it belongs to (e.g. apps/v1 for a Deployment)"]
    schema_problem = _schema_problem(doc)
    if schema_problem:
        return [prefix + schema_problem]
    return [prefix + p for p in _value_problems(doc)]


def _schema_problem(doc: dict) -> str | None:
    import kubernetes_validate  # imported here: it loads jsonschema, which costs a second at first use

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return (f'apiVersion: no kind "{doc["kind"]}" in version "{doc["apiVersion"]}" '
                f"(Kubernetes {KUBERNETES_VERSION[:-2]})")
    except kubernetes_validate.ValidationError as error:
        path = field_path(error.absolute_path)
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            return "; ".join(f'unknown field "{field_path([*error.absolute_path, u])}"' for u in unknown)
        if error.validator == "type":
            expected = [_TYPES.get(t, t) for t in error.validator_value if t != "null"]
            return f"{path}: Invalid value: {_show(error.instance)}: must be {' or '.join(expected)}"
        if error.validator == "required":
            return f"{path}: {error.message}"
        return f"{path}: Invalid value: {_show(error.instance)}: {error.message}"
    return None


_TYPES = {"integer": "a whole number", "number": "a number", "string": "a string", "boolean": "true or false",
          "object": "a mapping (key: value lines)", "array": "a list"}


def field_path(parts: Iterable[str | int]) -> str:
    """['spec', 'containers', 0, 'resources'] -> 'spec.containers[0].resources', kubectl's spelling."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(the object)"


def _value_problems(doc: dict) -> list[str]:
    """Checks the schema cannot express, on a document the schema accepted."""
    spec = doc.get("spec") or {}
    lowest = {"replicas": 0, "minReplicas": 1, "maxReplicas": max(1, spec.get("minReplicas") or 1)}
    problems = []
    for field, low in lowest.items():
        value = spec.get(field)
        if isinstance(value, int) and value < low:
            problems.append(f"spec.{field}: Invalid value: {value}: must be greater than or equal to "
                            f"{'minReplicas' if field == 'maxReplicas' and low > 1 else low}")
        elif isinstance(value, int) and value > INT32_MAX:
            problems.append(f"spec.{field}: Invalid value: {value}: must be less than or equal to {INT32_MAX}")
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    for i, container in enumerate(pod_spec.get("containers") or []):
        path = f"spec.template.spec.containers[{i}].resources"
        problems += _resource_problems(container.get("resources") or {}, path)
    return problems


def _resource_problems(resources: dict, path: str) -> list[str]:
    """Requests and limits: quantities, not negative, each request within its limit."""
    problems, values = [], {}
    for kind in ("requests", "limits"):
        for name, value in (resources.get(kind) or {}).items():
            field = f"{path}.{kind}.{name}"
            try:
                amount = quantity(value, field)
            except InvalidManifest as error:
                problems.append(str(error))
                continue
            if amount < 0:
                problems.append(f"{field}: Invalid value: {_show(value)}: must be greater than or equal to 0")
            values[kind, name] = (amount, value)
    for (kind, name), (amount, value) in values.items():
        limit = values.get(("limits", name))
        if kind == "requests" and limit is not None and amount > limit[0]:
            problems.append(f"{path}.requests: Invalid value: {_show(value)}: must be less than or equal to "
                            f"{name} limit of {limit[1]}")
    return problems


DEPLOYMENT_FILE = "cluster/model-serving-deployment.yaml"
SERVICE_FILE = "cluster/model-serving-service.yaml"


def container(manifest: dict) -> dict:
    """The one container of a Deployment's or Job's pod template, to change its args or resources in place."""
    return manifest["spec"]["template"]["spec"]["containers"][0]


def deployment(*, model: str | None = None, replicas: int | None = None) -> dict:
    """The lesson's Deployment manifest as a dict, serving `model` and/or with `replicas` changed.

    Apply it with `cluster.apply(...)`; the file itself stays as the lesson has it.
    """
    manifest = load_documents(repo.path(DEPLOYMENT_FILE))[0]
    if replicas is not None:
        manifest["spec"]["replicas"] = int(replicas)
    if model is not None:
        args = container(manifest)["args"]
        args[args.index("--model") + 1] = model
    return manifest


def service() -> dict:
    """The lesson's Service manifest as a dict."""
    return load_documents(repo.path(SERVICE_FILE))[0]
