"""Following one kind of Kubernetes object for as long as a cluster is open: list, then watch.

The DynamicClient's `watch` makes one watch request and hands over each object as the API's JSON,
with kubectl's field names, which is what the handlers read. A timeline needs more, and the
client has no informer for it, so it is written here: the first list is the
starting state; the watch resumes from the last resourceVersion it saw when a stream ends or
breaks; only a 410 Gone (that version has left the API server's history) relists, and the
relisted objects go to the handler as "RESYNC" so that a change missed meanwhile still reaches
the timeline. A failure waits before the next try, doubling up to a cap, and is logged: a
handler's with its traceback, since it is a bug here, an API server's in one line, since it says
what the cluster did.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator

from kubernetes import watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient, Resource
from kubernetes.dynamic.exceptions import DynamicApiError

log = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 300  # the API server ends a watch after this; it is then resumed
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
QUIET_PAUSE_S = 1.0  # after a stream that ended with nothing in it, so a server that ends them at once is not hammered
GONE = 410

Handler = Callable[[str, dict], None]


def backoff(failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row: doubling from the first, capped."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (failures - 1))


class HandlerError(Exception):
    """The handler raised on one object: a bug in servelab, not a problem of the cluster."""


class ObjectWatch:
    """Calls `handle(kind, object)` for every object of `resource` in `namespace`, then every change.

    `kind` is "EXISTING" for the first list, "RESYNC" for a relist, then the watch's "ADDED",
    "MODIFIED" or "DELETED". Objects are the API's JSON (kubectl's field names). Runs on a
    daemon thread from `start()` until `stop()`.
    """

    def __init__(self, dynamic: DynamicClient, resource: Resource, namespace: str, handle: Handler) -> None:
        self.dynamic, self.resource, self.namespace, self.handle = dynamic, resource, namespace, handle
        self.what = resource.name
        self.errors: list[str] = []  # one line per failure: the timeline may have missed a beat there
        self._stopped = threading.Event()
        self._watcher: watch.Watch | None = None
        self._thread = threading.Thread(target=self.run, daemon=True, name=f"servelab-watch-{self.what}")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """End the loop, unblocking a stream that is waiting for the server's next change."""
        self._stopped.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.stop()
            response = getattr(watcher, "_resp", None)
            if response is not None:
                response.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run(self) -> None:
        version: str | None = None
        first, failures = True, 0
        while not self._stopped.is_set():
            received = 0
            try:
                if version is None:
                    version = self._list("EXISTING" if first else "RESYNC")
                    first = False
                for change in self._stream(version):
                    received += 1
                    obj = change["raw_object"]
                    version = obj["metadata"].get("resourceVersion", version)  # a failing handler does not replay it
                    self._deliver(change["type"], obj)
                failures, pause = 0, 0.0 if received else QUIET_PAUSE_S
            except Exception as error:
                if self._stopped.is_set():
                    return
                failures += 1
                pause = backoff(failures)
                if isinstance(error, ApiException) and error.status == GONE:
                    version = None
                self._report(error, pause, version)
            self._stopped.wait(pause)

    def _list(self, kind: str) -> str:
        """Hand every listed object over; the list's resourceVersion, to watch from."""
        listing = json.loads(self.dynamic.get(self.resource, namespace=self.namespace, serialize=False).data)
        for item in listing["items"]:
            self._deliver(kind, item)
        return listing["metadata"]["resourceVersion"]

    def _stream(self, version: str) -> Iterator[dict]:
        self._watcher = watch.Watch()
        for change in self.dynamic.watch(self.resource, namespace=self.namespace, resource_version=version,
                                         timeout=WATCH_TIMEOUT_S, watcher=self._watcher):
            if self._stopped.is_set():
                return
            yield change

    def _deliver(self, kind: str, obj: dict) -> None:
        try:
            self.handle(kind, obj)
        except Exception as error:
            name = obj.get("metadata", {}).get("name")
            raise HandlerError(f"{self.what}: the handler failed on {kind} {name}") from error

    def _report(self, error: Exception, pause: float, version: str | None) -> None:
        then = f"resuming from resourceVersion {version}" if version else "listing again"
        if isinstance(error, HandlerError):
            message = f"{error}: {type(error.__cause__).__name__}: {error.__cause__}"
            log.error("servelab: %s; %s in %.1f s", message, then, pause, exc_info=error.__cause__)
        else:
            message = f"{self.what}: {type(error).__name__}: {_reason(error)}"
            log.warning("servelab: a watch of the cluster broke (%s); %s in %.1f s", message, then, pause)
        self.errors.append(message)


def _reason(error: Exception) -> str:
    """One line: the API server's status and message, not the client's dump of headers."""
    if isinstance(error, DynamicApiError):
        return f"{error.status} {error.summary()}"[:160]
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"[:160]
    return str(error).splitlines()[0][:160] if str(error) else ""
