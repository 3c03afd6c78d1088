"""`python -m servelab.backends.local.proxy`: one Service's proxy, until its owner goes away.

It prints "listening PORT" once it accepts connections (or "error ..." and exits 1), then
follows the control channel (control.py) on stdin.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvloop

from servelab.backends.local.proxy import MODES, control
from servelab.backends.local.proxy.balancer import ClientConnection, preopen
from servelab.backends.local.proxy.forwarder import ClientSplice
from servelab.backends.local.proxy.hop import Hop
from servelab.backends.local.proxy.round_trip import RoundTrip


async def serve(name: str, host: str, port: int, mode: str, round_trip: RoundTrip) -> None:
    hop = Hop(name, round_trip)
    if mode == "per-request":
        protocol, on_new = ClientConnection, lambda new: preopen(hop, new)
    else:
        protocol, on_new = ClientSplice, lambda new: None
    server = await hop.loop.create_server(lambda: protocol(hop), host, port, backlog=1024, reuse_address=True)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    await control.follow(hop.endpoints, on_new)
    # The owner closed the pipe: stop now, without waiting for (or logging) open connections.
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The local backend's Service proxy (started by the cluster).")
    parser.add_argument("--name", default="service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, default="per-request")
    parser.add_argument("--round-trip-ms", type=float, default=0.0, help="added to every request (see delay.py)")
    parser.add_argument("--round-trip-jitter-ms", type=float, default=0.0, help="each round trip within +- this")
    args = parser.parse_args(argv)
    round_trip = RoundTrip(args.round_trip_ms, args.round_trip_jitter_ms)
    try:
        uvloop.run(serve(args.name, args.host, args.port, args.mode, round_trip))
    except OSError as error:
        print(f"error {error}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
