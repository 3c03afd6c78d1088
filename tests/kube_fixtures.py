"""A tiny Kubernetes API server on 127.0.0.1 that answers from tests/fixtures/kube.

The kube backend's tests point the real `kubernetes` client (and kubectl) at it, so every request
goes through the client's serialization, HTTP, discovery and watch code; only the cluster is
recorded. `add_discovery()` serves what the DynamicClient asks before its first apply or delete.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "kube"


@dataclass
class Reply:
    status: int
    body: bytes


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self):
        return json.loads(self.body)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class RecordedAPI:
    """Routes (method, path, watch?) to recorded replies; the last reply of a route repeats."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str, bool], list[Reply]] = {}
        self.seen: list[Seen] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                api.seen.append(Seen(self.command, parts.path, query, self.headers.get("Content-Type", ""), body,
                                     time.monotonic()))
                reply = api.reply(self.command, parts.path, query.get("watch") == "true")
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes, like a watch
                self.wfile.write(reply.body)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def add(self, method: str, path: str, *replies: tuple[int, str | bytes], watch: bool = False) -> None:
        """Replies are (status, fixture file name or raw bytes), served in order."""
        self.routes[(method, path, watch)] = [
            Reply(status, body if isinstance(body, bytes) else fixture(body)) for status, body in replies
        ]

    def add_discovery(self) -> None:
        """The discovery documents of a kind cluster: /version, the API groups, their resources."""
        self.add("GET", "/version", (200, "discovery-version.json"))
        self.add("GET", "/apis", (200, "discovery-apis.json"))
        for path in ("/api/v1", "/apis/apps/v1", "/apis/autoscaling/v2", "/apis/batch/v1"):
            self.add("GET", path, (200, f"discovery{path.replace('/', '-')}.json"))

    def reply(self, method: str, path: str, watch: bool) -> Reply:
        queue = self.routes.get((method, path, watch))
        if not queue:
            return Reply(404, fixture("not-found.json"))
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
