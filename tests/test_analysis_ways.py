"""Lab 06's judges: a claim holds only past its stated threshold."""

from __future__ import annotations

import pytest

from servelab.analysis import ways


class Run:
    """The two things a judge reads of a load run: its late share and its offered rate."""

    def __init__(self, late: float, rate: float = 700.0) -> None:
        self.late = late
        self.rate = rate

    def late_share(self, slo_ms: float) -> float:
        return self.late

    def summary(self) -> dict:
        return {"offered_rate": self.rate}


@pytest.mark.parametrize(("small", "big", "holds"), [
    (0.60, 0.05, True),  # the small pod drowns, the big one keeps up
    (0.15, 0.10, False),  # both late about as often: not the big pod's doing
    (0.08, 0.00, False),  # twice as often, but too few requests to matter
])
def test_big_pod_busy_needs_a_gap_and_a_share(small: float, big: float, holds: bool):
    found = ways.big_pod_busy(Run(small), Run(big), slo_ms=50)
    assert found.id == "06-big-pod-high-traffic" and found.holds is holds
    assert f"{100 * small:.0f}% over 50 ms or failed on the small pod" in found.evidence
    assert "700 req/s" in found.claim
