"""Shared pytest set-up: make `tests/` importable for helper modules like tests/tools.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
