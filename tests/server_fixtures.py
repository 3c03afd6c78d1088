"""Helpers for the server tests: a plain HTTP call that never raises on 4xx/5xx, and scraping /metrics."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def call(method: str, url: str, body: bytes | str | None = None, headers: dict | None = None, timeout: float = 30) -> Reply:
    """One HTTP request on a fresh connection; any status comes back as a Reply."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def metric(base_url: str, name: str, labels: str = "") -> float:
    """The value of one sample on /metrics, e.g. metric(url, "servelab_requests_in_flight")."""
    text = call("GET", f"{base_url}/metrics").body.decode()
    pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.M)
    if found is None:
        raise AssertionError(f"{name}{{{labels}}} not on /metrics:\n{text[:3000]}")
    return float(found.group(1))
