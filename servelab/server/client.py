"""Asking a running model server for one prediction, as the lesson's curl does, from Python."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def post_json(url: str, body: str | bytes, timeout: float = 10.0) -> dict:
    """POST a JSON body and return the decoded reply; an HTTP error raises with the server's message."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{url} answered {error.code}: {error.read().decode(errors='replace')}") from None
