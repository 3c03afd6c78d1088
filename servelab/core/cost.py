"""What a run cost, computed from the pods that ran, not guessed.

The rule is OpenCost's (spec/opencost-specv01.md, "Workload Costs"): a pod pays for the greater
of what it requested and what it used, per resource, for as long as it lived, at a list price:

    dollars = sum over pods of max(request, usage) x hours x price      (CPU and memory each)

The part of those dollars that bought capacity the pod did not use is the idle share ("workload
idle" in the spec). Prices come from `servelab/data/pricing.yaml`, each with its source and the
day it was read; a learner adds offerings with a YAML file or a dict.

A prediction made on the user's device costs the cloud nothing, but the device is bought for it:
its price, spread over the years it serves and the predictions it makes in them, is the edge's
cost per prediction (`Device.per_million`). The example devices are in the same file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import pandas as pd

    from servelab.core.result import Result

PRICING_FILE = Path(__file__).resolve().parents[1] / "data" / "pricing.yaml"
DEFAULT_OFFERING = "opencost-default"
DEFAULT_DEVICE = "raspberry-pi-5-8gb"
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class Price:
    """USD per vCPU-hour and per GiB-hour for one offering, with where the figures came from."""

    offering: str
    spot: bool
    cpu_core_hour: float
    memory_gib_hour: float
    source: str
    read_on: str
    region: str = ""
    note: str = ""


def offerings(extra: str | Path | dict | None = None) -> dict[str, dict]:
    """The built-in offerings, with `extra` (a YAML path or a dict, shaped like pricing.yaml) over them."""
    table = dict(yaml.safe_load(PRICING_FILE.read_text())["offerings"])
    if extra is not None:
        doc = yaml.safe_load(Path(extra).read_text()) if isinstance(extra, (str, Path)) else extra
        table.update(doc.get("offerings", doc))
    return table


def load_pricing(offering: str = DEFAULT_OFFERING, spot: bool = False, extra: str | Path | dict | None = None) -> Price:
    """The on-demand (or spot) price of one offering, e.g. load_pricing("aws-fargate", spot=True)."""
    table = offerings(extra)
    if offering not in table:
        raise ValueError(f"unknown offering {offering!r}; known: {', '.join(table)} (add one with extra=)")
    entry = table[offering]
    kind = "spot" if spot else "on_demand"
    rates = entry.get(kind)
    if not rates:
        raise ValueError(f"offering {offering!r} has no {kind} price; see its note: {entry.get('note', '')}")
    return Price(
        offering=offering,
        spot=spot,
        cpu_core_hour=float(rates["cpu_core_hour"]),
        memory_gib_hour=float(rates["memory_gib_hour"]),
        source=str(entry.get("source", "")),
        read_on=str(entry.get("read_on", "")),
        region=str(entry.get("region", "")),
        note=str(entry.get("note", "")),
    )


@dataclass(frozen=True)
class Device:
    """An edge device bought to make predictions: its list price, the years it is expected to serve
    (an assumption of whoever buys it, not a property of the board), and where the price came from."""

    name: str
    price_usd: float
    life_years: float
    source: str
    read_on: str
    note: str = ""

    def per_million(self, predictions_per_day: float) -> float:
        """$ per 1M predictions: the price amortised over the predictions made in the device's life,
        price / (life_years x 365 x predictions_per_day) x 1e6. The fewer predictions a device makes,
        the more each one carries of its price; electricity and upkeep are left out."""
        if predictions_per_day <= 0:
            raise ValueError(f"predictions_per_day must be > 0 to spread {self.name}'s price over; got {predictions_per_day}")
        return self.price_usd / (self.life_years * DAYS_PER_YEAR * predictions_per_day) * 1e6


def load_device(name: str = DEFAULT_DEVICE, extra: str | Path | dict | None = None) -> Device:
    """An example edge device from pricing.yaml's `devices:`, with `extra` (a YAML path or a dict shaped like it) over them."""
    table = dict(yaml.safe_load(PRICING_FILE.read_text())["devices"])
    if extra is not None:
        doc = yaml.safe_load(Path(extra).read_text()) if isinstance(extra, (str, Path)) else extra
        table.update(doc.get("devices", doc))
    if name not in table:
        raise ValueError(f"unknown device {name!r}; known: {', '.join(table)} (add one with extra=)")
    entry = table[name]
    return Device(name, float(entry["price_usd"]), float(entry["life_years"]), str(entry.get("source", "")),
                  str(entry.get("read_on", "")), str(entry.get("note", "")))


@dataclass(frozen=True)
class PodUsage:
    """One pod's life: when it ran, what it requested and what it used.

    `cpu_used_core_s` is CPU time consumed over the whole life (core-seconds); `memory_used_gib`
    the average memory in use. Either may be None when it was not measured: the pod then pays its
    request, and its idle share for that resource cannot be known.
    """

    name: str
    start_s: float
    end_s: float
    cpu_request_cores: float
    memory_request_gib: float
    cpu_used_core_s: float | None = None
    memory_used_gib: float | None = None

    @classmethod
    def from_dict(cls, d: dict) -> PodUsage:
        """From a `meta["pods"]` entry; keys this class does not know (e.g. a node name) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hours(self) -> float:
        return max(self.end_s - self.start_s, 0.0) / 3600.0


@dataclass(frozen=True)
class CostReport:
    """Dollars for a run, per hour of it, per million successful predictions, and the idle share."""

    dollars: float
    per_hour: float
    per_million: float | None  # None when nothing succeeded
    idle_share: float | None  # None when no usage was measured
    hours: float  # from the first pod's start to the last pod's end
    predictions_ok: int
    price: Price
    breakdown: pd.DataFrame  # one row per pod
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The headline numbers, for a results table."""
        return {
            "dollars": self.dollars,
            "per_hour": self.per_hour,
            "per_million": self.per_million,
            "idle_share": self.idle_share,
            "hours": self.hours,
            "predictions_ok": self.predictions_ok,
            "offering": self.price.offering,
            "spot": self.price.spot,
        }

    def __str__(self) -> str:
        per_million = "n/a" if self.per_million is None else f"${self.per_million:.4f}"
        idle = "n/a" if self.idle_share is None else f"{self.idle_share:.0%}"
        kind = "spot" if self.price.spot else "on-demand"
        return (
            f"${self.dollars:.6f} over {self.hours:.3f} h (${self.per_hour:.4f}/h), {per_million} per 1M predictions, "
            f"idle {idle} [{self.price.offering} {kind}, read {self.price.read_on}]"
        )


def cost(pods: list[PodUsage], price: Price, predictions_ok: int) -> CostReport:
    """Apply max(request, usage) x hours x price to every pod and add up."""
    import pandas as pd

    if not pods:
        raise ValueError("no pods to price: a run's meta['pods'] lists the pods that served it")
    rows = [_pod_row(pod, price) for pod in pods]
    frame = pd.DataFrame(rows)
    dollars = float(frame["dollars"].sum())
    hours = (max(p.end_s for p in pods) - min(p.start_s for p in pods)) / 3600.0
    measured = frame["idle_dollars"].notna()
    notes = []
    if not measured.all():
        notes.append(f"{int((~measured).sum())} of {len(pods)} pods had no measured usage; idle share covers the rest")
    if any(p.memory_used_gib is None for p in pods):
        notes.append("memory usage was not measured: memory is priced at its request and counted as used")
    idle = float(frame.loc[measured, "idle_dollars"].sum()) if measured.any() else None
    paid = float(frame.loc[measured, "dollars"].sum())
    return CostReport(
        dollars=dollars,
        per_hour=dollars / hours if hours > 0 else 0.0,
        per_million=dollars / predictions_ok * 1e6 if predictions_ok else None,
        idle_share=idle / paid if idle is not None and paid > 0 else None,
        hours=hours,
        predictions_ok=int(predictions_ok),
        price=price,
        breakdown=frame,
        notes=notes,
    )


def _pod_row(pod: PodUsage, price: Price) -> dict:
    """One pod's allocated core-hours and GiB-hours (OpenCost's max rule), dollars and idle dollars."""
    hours = pod.hours
    cpu_used_h = None if pod.cpu_used_core_s is None else pod.cpu_used_core_s / 3600.0
    cpu_h = max(pod.cpu_request_cores * hours, cpu_used_h or 0.0)
    mem_used_h = None if pod.memory_used_gib is None else pod.memory_used_gib * hours
    mem_h = max(pod.memory_request_gib * hours, mem_used_h or 0.0)
    cpu_dollars, mem_dollars = cpu_h * price.cpu_core_hour, mem_h * price.memory_gib_hour
    idle = None
    if cpu_used_h is not None:
        idle = (cpu_h - cpu_used_h) * price.cpu_core_hour
        if mem_used_h is not None:
            idle += (mem_h - mem_used_h) * price.memory_gib_hour
    return {
        "pod": pod.name,
        "hours": hours,
        "cpu_core_hours": cpu_h,
        "memory_gib_hours": mem_h,
        "cpu_dollars": cpu_dollars,
        "memory_dollars": mem_dollars,
        "dollars": cpu_dollars + mem_dollars,
        "idle_dollars": idle,
    }


def cost_of_result(result_or_dir: Result | str | Path, price: Price | None = None) -> CostReport:
    """The cost of a saved run (a directory with requests.csv + meta.json) or of a Result.

    Uses the pods in `meta["pods"]` (backends and the simulator record them). A run without them
    (e.g. against a bare server) is priced as `meta["replicas"]` pods of the recorded requests for
    the run's duration, and the report's notes say so.
    """
    from servelab.core.result import Result

    result = Result.load(result_or_dir) if isinstance(result_or_dir, (str, Path)) else result_or_dir
    meta = result.meta
    notes = []
    if meta.get("pods"):
        pods = [PodUsage.from_dict(p) for p in meta["pods"]]
    else:
        pods = _assumed_pods(meta, result.duration_s)
        notes.append(
            f"no per-pod timeline in this run's metadata: priced as {len(pods)} pod(s) of "
            f"{pods[0].cpu_request_cores} vCPU / {pods[0].memory_request_gib} GiB for the run's "
            f"{result.duration_s:.1f} s, usage unknown"
        )
    report = cost(pods, price or load_pricing(), result.ok_count)
    return replace(report, notes=notes + report.notes)


def _assumed_pods(meta: dict, duration_s: float) -> list[PodUsage]:
    replicas, cpu, memory = meta.get("replicas"), meta.get("cpu_request_cores"), meta.get("memory_request_gib")
    if not replicas or cpu is None or memory is None:
        raise ValueError(
            "this run records neither meta['pods'] nor replicas with cpu/memory requests, so its cost "
            "cannot be computed: run the load with cluster=<your Cluster> so the pods are recorded"
        )
    return [PodUsage(f"replica-{i}", 0.0, duration_s, float(cpu), float(memory)) for i in range(int(replicas))]
