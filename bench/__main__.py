"""`make bench`: every speed comparison, each measured side by side in one run and printed as ratios.

Each area keeps its benchmark in bench/<area>.py with a `main()` that prints its own table.
"""

from __future__ import annotations

import importlib
import sys
import time

# Run in this order: each one leaves the machine idle for the next.
AREAS = ["server", "overload", "workers", "load", "local", "chaos", "quota", "sim", "sim_live"]


def main() -> int:
    only = sys.argv[1:]
    for area in AREAS:
        if only and area not in only:
            continue
        print(f"\n=== bench/{area}.py", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"bench.{area}").main()
        print(f"(bench/{area}.py took {time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
