"""A network round trip a Service adds to every request: so distance shows, not only the hop.

Set on the Service manifest, so that an annotated copy of the same Service shows the same
Deployment as seen from farther away, e.g. from another continent:

    metadata:
      name: model-serving-far
      annotations:
        servelab/added-round-trip: "150ms"
        servelab/added-round-trip-jitter: "15ms"   # optional: each round trip within 150 +- 15 ms

How it is added, and the jitter's distribution, are in delay.py. The local backend applies it;
Kubernetes ignores unknown annotations, so on a real cluster the distance has to be real (a
client in another region) or made with `tc netem` on the client machine (see README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANNOTATION = "servelab/added-round-trip"
JITTER_ANNOTATION = "servelab/added-round-trip-jitter"
MAX_MS = 10_000.0  # more is a typo ("150s"), not a network: the farthest paths are under a second
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)\s*")
_FORM = 'a number with ms or s, e.g. "150ms" or "0.15s"'


@dataclass(frozen=True)
class RoundTrip:
    """Milliseconds added to each request's round trip, and how far each may stray (+-)."""

    ms: float = 0.0
    jitter_ms: float = 0.0

    @classmethod
    def of_service(cls, manifest: dict) -> RoundTrip:
        """The Service manifest's annotations, checked; ValueError names the annotation and the form."""
        name = manifest["metadata"]["name"]
        annotations = manifest["metadata"].get("annotations") or {}
        ms = _milliseconds(name, ANNOTATION, annotations.get(ANNOTATION, "0ms"))
        jitter = _milliseconds(name, JITTER_ANNOTATION, annotations.get(JITTER_ANNOTATION, "0ms"))
        if jitter > ms:
            raise ValueError(
                f"service {name}: annotation {JITTER_ANNOTATION}={annotations[JITTER_ANNOTATION]!r} is larger than "
                f"{ANNOTATION}={annotations.get(ANNOTATION, '0ms')!r}; a round trip of R +- J needs J <= R, "
                f"e.g. {ANNOTATION}: \"150ms\" and {JITTER_ANNOTATION}: \"15ms\""
            )
        return cls(ms, jitter)

    def argv(self) -> list[str]:
        """The proxy's command-line options for this round trip (none when nothing is added)."""
        if not self.ms:
            return []
        return ["--round-trip-ms", repr(self.ms), "--round-trip-jitter-ms", repr(self.jitter_ms)]

    def metadata(self) -> dict:
        return {"added_round_trip_ms": self.ms, "added_round_trip_jitter_ms": self.jitter_ms}


def _milliseconds(service: str, key: str, value: object) -> float:
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"service {service}: annotation {key}={value!r} is not a duration; write {_FORM} "
                         f"(quoted in YAML)")
    ms = float(match[1]) * (1.0 if match[2] == "ms" else 1000.0)
    if ms > MAX_MS:
        raise ValueError(f"service {service}: annotation {key}={value!r} is over {MAX_MS / 1000:g} s, longer than "
                         f"any network round trip; write {_FORM}")
    return ms
