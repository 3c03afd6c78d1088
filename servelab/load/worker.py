"""A generator worker process: `python -m servelab.load.worker FD`.

Started by `servelab.load.runner` when one core cannot send a schedule on time. It is a fresh
interpreter (not a fork and not multiprocessing's spawn, which re-runs the caller's main
script), talking to its parent over the socket FD with `multiprocessing.connection` messages:

  parent -> worker: ("shard", Shard), then ("start", t_monotonic), then optionally ("stop",)
  worker -> parent: ("ready",), ("progress", n_done, n_ok, fresh), then ("done", ShardRecord)
                    or ("error", text)

The worker stops early when the parent says so or goes away (the socket closes).
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection

from servelab.load import generator


def main(fd: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it tells us to stop
    conn = Connection(fd)
    stop = threading.Event()
    lock = threading.Lock()
    started = threading.Event()
    start = {}

    def send(*msg) -> None:
        with lock:
            try:
                conn.send(msg)
            except OSError:  # the parent is gone or stopped listening: nobody to tell
                stop.set()

    def listen() -> None:
        """Receive the start time, then wait for a stop (or the parent closing the socket)."""
        try:
            while True:
                msg = conn.recv()
                if msg[0] == "start":
                    start["t"] = msg[1]
                    started.set()
                elif msg[0] == "stop":
                    break
        except (EOFError, OSError):
            pass
        stop.set()
        started.set()

    _, shard = conn.recv()
    threading.Thread(target=listen, daemon=True).start()

    def start_at() -> float:
        send("ready")
        started.wait()
        return start.get("t", 0.0)

    try:
        record = generator.run_shard(shard, start_at, lambda *a: send("progress", *a), stop)
        send("done", record)
    except Exception:
        send("error", traceback.format_exc())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
