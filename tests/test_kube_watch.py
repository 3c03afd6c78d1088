"""Following a kind of object (kube_watch.py) through failures, against recorded API responses."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from kube_fixtures import FIXTURES, RecordedAPI
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from servelab.backends import kube_watch
from servelab.backends.kube_watch import ObjectWatch, backoff

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def api():
    server = RecordedAPI()
    server.add_discovery()
    yield server
    server.close()


def follow(api: RecordedAPI, handle, tmp_path) -> ObjectWatch:
    api_client = client.ApiClient(client.Configuration(host=api.url))
    dynamic = DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))
    pods = dynamic.resources.get(prefix="api", api_version="v1", kind="Pod")
    follower = ObjectWatch(dynamic, pods, "default", handle)
    follower.start()
    return follower


def follow_until(done: threading.Event, api: RecordedAPI, handle, tmp_path, caplog) -> ObjectWatch:
    """Follow the pods until the handler sets `done` (at most 10 s), capturing the watch's log; then stop."""
    with caplog.at_level(logging.WARNING, logger="servelab.backends.kube_watch"):
        follower = follow(api, handle, tmp_path)
        try:
            assert done.wait(10)
        finally:
            follower.stop()
    return follower


def test_a_failing_handler_is_logged_each_time_with_its_traceback_and_relists_back_off(api, tmp_path, caplog,
                                                                                      monkeypatch):
    monkeypatch.setattr(kube_watch, "BACKOFF_FIRST_S", 0.2)
    api.add("GET", PODS, (200, "pods.json"))
    api.add("GET", PODS, (200, b""), watch=True)
    failures, handled, done = [], [], threading.Event()

    def handle(kind: str, pod: dict) -> None:
        if len(failures) < 2:
            failures.append(kind)
            raise RuntimeError(f"handler bug {len(failures)}")
        handled.append((kind, pod["metadata"]["name"]))
        if len(handled) == 3:
            done.set()

    follower = follow_until(done, api, handle, tmp_path, caplog)

    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(records) == 2
    for number, record in enumerate(records, 1):
        assert str(record.exc_info[1]) == f"handler bug {number}"  # the handler's own traceback
        assert "listing again" in record.getMessage()
    assert caplog.text.count("Traceback (most recent call last)") == 2
    assert caplog.text.count('in handle\n    raise RuntimeError(f"handler bug') == 2
    assert follower.errors == [f"pods: the handler failed on EXISTING model-serving-deployment-6b9f7c8d4-x7k2p: "
                               f"RuntimeError: handler bug {n}" for n in (1, 2)]
    assert {kind for kind, _ in handled} == {"EXISTING"}  # the starting state, taken once it went through
    lists = [s.at for s in api.requests("GET", PODS) if "watch" not in s.query]
    assert len(lists) == 3
    assert lists[1] - lists[0] >= 0.2 and lists[2] - lists[1] >= 0.4  # doubled after the second failure


def test_a_broken_watch_resumes_from_the_last_version_without_relisting(api, tmp_path, caplog):
    api.add("GET", PODS, (200, "pods.json"))  # resourceVersion 1200
    api.add("GET", PODS, (500, b'{"kind": "Status", "code": 500, "message": "etcd hiccup"}'), (200, "watch-pods.jsonl"),
            (200, b""), watch=True)
    seen, done = [], threading.Event()

    def handle(kind: str, pod: dict) -> None:
        seen.append(kind)
        if kind == "DELETED":
            done.set()

    follow_until(done, api, handle, tmp_path, caplog)
    watches = [s.query for s in api.requests("GET", PODS) if s.query.get("watch") == "true"]
    assert [w["resourceVersion"] for w in watches[:2]] == ["1200", "1200"]  # the same place, not a relist
    assert len([s for s in api.requests("GET", PODS) if "watch" not in s.query]) == 1
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING and warning.exc_info is None  # the cluster's doing: one line
    assert "(pods: InternalServerError: 500 etcd hiccup); resuming from resourceVersion 1200" in warning.getMessage()
    last = json.loads((FIXTURES / "watch-pods.jsonl").read_text().splitlines()[-1])
    assert seen[:3] == ["EXISTING"] * 3 and seen[-1] == last["type"]


def test_backoff_doubles_up_to_a_cap():
    assert [backoff(n) for n in (1, 2, 3)] == [kube_watch.BACKOFF_FIRST_S * f for f in (1, 2, 4)]
    assert backoff(50) == kube_watch.BACKOFF_MAX_S
