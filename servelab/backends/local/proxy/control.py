"""The endpoint control channel: the owner says which pods are Ready, the proxy confirms.

JSON lines on stdin, {"seq": N, "endpoints": [[host, port], ...]}; the proxy answers "ok N" on
stdout once it routes only to those. The owner waits for that before it terminates a removed
pod, so no new request reaches a pod on its way out. When stdin closes (the owner exited or was
killed) `follow` returns and the proxy exits: it never outlives its cluster.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

from servelab.backends.local.proxy.endpoints import Endpoint, Endpoints


async def follow(endpoints: Endpoints, on_new: Callable[[list[Endpoint]], None]) -> None:
    """Apply each endpoint list as it comes and confirm it; call `on_new` with the pods that joined."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        message = json.loads(line)
        new = endpoints.update([(host, int(port)) for host, port in message["endpoints"]])
        print(f"ok {message['seq']}", flush=True)
        on_new(new)
