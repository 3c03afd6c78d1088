"""The servelab repository's own files that the package reads: the manifests in `cluster/`, the
quiz banks in `quizzes/`.

They are not package data: a learner opens, edits and applies them (`kubectl apply -f cluster/...`),
so they sit beside the package in a clone of the repository, and `make setup` installs the package
from that clone in editable mode. An install without the clone has none of them. Every module finds
them here, so a missing one always fails the same way: naming the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def path(relative: str | Path) -> Path:
    """`relative` (e.g. "cluster/kind-config.yaml") inside the repository; it must exist."""
    found = ROOT / relative
    if not found.exists():
        raise FileNotFoundError(
            f"{relative} is missing from the servelab repository at {ROOT}. It ships with the repository, "
            f"not with the package: restore it (git checkout -- {relative}), or work from a clone of the "
            "repository set up with `make setup`, which installs this package from it.")
    return found
