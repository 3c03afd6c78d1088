"""The embedded cluster does what the lesson's kubectl commands show on a real one (issue 4, Must show 1-3),
and, like one, refuses invalid manifests before creating anything and leaves pods Pending when
this machine has no room for their requests (issue 12, item 4).

One cluster serves most of this module's tests (each test first sets the replica count it
needs), on a free port, never 8501. Its node holds the five pods the lesson scales to whatever
this machine's cores (those tests are about kubectl's behaviour); scheduling is tested on nodes
of a given size and on this machine's own.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import time

import pytest
from local_fixtures import (
    DEPLOYMENT,
    HPA,
    SERVICE,
    OpenLoad,
    deployment,
    failures,
    manifest,
    wait_for,
)

from servelab.backends.local import (
    LocalCluster,
    PortInUseError,
    Unschedulable,
    allocatable,
)
from servelab.backends.local.node import Allocatable
from servelab.core.manifests import InvalidManifest

NAME = "model-serving-deployment"
POD_NAME = re.compile(rf"^{NAME}-[bcdfghjklmnpqrstvwxz2456789]+-[bcdfghjklmnpqrstvwxz2456789]{{5}}$")


GIB = 2**30


def node(cpu: float) -> Allocatable:
    """A node with `cpu` cores and plenty of memory."""
    return Allocatable(cpu, 64 * GIB, cpu_source="test", memory_source="test")


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(service_port=0, node=node(max(2.5, allocatable().cpu_cores))) as c:
        yield c


@pytest.fixture(scope="module")
def deployed(cluster):
    cluster.kubectl(f"apply -f {SERVICE}")
    cluster.kubectl(f"apply -f {DEPLOYMENT}")
    return cluster


def predict_url(cluster) -> str:
    return cluster.service_url() + "/v1/models/my-model:predict"


def test_apply_one_replica_becomes_1_1_running(cluster):
    # The 5 s target of the issue is measured by bench/local.py (timing is noisy on a shared
    # machine: a pod limited to 0.5 CPU needs ~1.1 CPU-seconds to import and load its model).
    lines = cluster.apply(SERVICE) + cluster.apply(DEPLOYMENT)
    assert lines == ["service/model-serving created", f"deployment.apps/{NAME} created"]
    cluster.wait_ready(NAME, timeout=30)
    table = cluster.kubectl("get pods")
    header, row = table.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    name, ready, status, restarts, age = row.split()
    assert POD_NAME.match(name), name
    assert (ready, status, restarts) == ("1/1", "Running", "0")
    assert re.fullmatch(r"\d+s", age)
    assert cluster.apply(DEPLOYMENT) == [f"deployment.apps/{NAME} unchanged"]


def test_scale_to_five_gives_five_ready_pods_and_kubectl_columns(deployed):
    assert deployed.kubectl(f"scale deployment {NAME} --replicas=5") == f"deployment.apps/{NAME} scaled"
    deployed.wait_ready(NAME, timeout=40)
    header, row = deployed.kubectl(f"get deployment {NAME}").splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == [NAME, "5/5", "5", "5"]
    pods = deployed.pods()
    assert len(pods) == 5 and all(p.ready and p.status == "Running" for p in pods)
    assert len({p.port for p in pods}) == 5, "each pod listens on its own port"
    assert len({p.name.rsplit("-", 1)[0] for p in pods}) == 1, "one template hash for one template"
    svc_header, svc_row = deployed.kubectl("get svc").splitlines()
    assert svc_header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc_row.split()[:5][::4] == ["model-serving", "8501:30501/TCP"]


def test_scale_five_to_one_under_open_loop_load_fails_no_request(deployed):
    deployed.scale(NAME, 5)
    deployed.wait_ready(NAME, timeout=40)
    with OpenLoad(predict_url(deployed), rate=60) as load:
        wait_for(lambda: load.count() > 60, 10, "load to start")
        deployed.kubectl(f"scale deployment {NAME} --replicas=1")
        deployed.wait_ready(NAME, replicas=1, timeout=30)
        wait_for(lambda: all(p.status != "Terminating" for p in deployed.pods()), 20, "terminating pods to go")
        n = load.count()
        wait_for(lambda: load.count() > n + 60, 10, "more load after the scale-down")
    outcomes = load.outcomes
    assert failures(outcomes) == [], failures(outcomes)[:5]
    assert len({o.replica for o in outcomes}) == 5, "the Service spread the load over all five pods first"
    kinds = [e.kind for e in deployed.events()]
    assert kinds.count("pod-gone") >= 4


def test_kill_9_one_of_three_pods_under_load(deployed):
    deployed.scale(NAME, 3)
    deployed.wait_ready(NAME, timeout=30)
    victim = deployed.pods()[0]
    with OpenLoad(predict_url(deployed), rate=60) as load:
        wait_for(lambda: load.count() > 60, 10, "load to start")
        os.kill(victim.pid, signal.SIGKILL)
        # The 5 s target is measured by bench/local.py; a shared test machine can be slower.
        wait_for(lambda: [p for p in deployed.pods() if p.name == victim.name and p.restarts == 1 and p.ready],
                 30, "the killed pod to be restarted and Ready again")
        n = load.count()
        wait_for(lambda: load.count() > n + 30, 10, "more load after the restart")
    failed = failures(load.outcomes)
    # Only requests the pod was serving at the moment of the kill may fail (60/s, ~ms each).
    assert len(failed) <= 3, failed
    row = next(line for line in deployed.kubectl("get pods").splitlines() if line.startswith(victim.name))
    assert row.split()[1:4] == ["1/1", "Running", "1"]
    assert re.search(r"1 \(\d+s ago\)", row)
    kinds = [e.kind for e in deployed.events() if e.object == f"pod/{victim.name}"]
    assert "pod-exited" in kinds and "pod-restarted" in kinds


def replicas_over_one_connection(service_url: str, n: int = 6) -> set[str]:
    """Which pods answered `n` requests sent over one kept-alive connection."""
    keepalive = http.client.HTTPConnection("127.0.0.1", int(service_url.rsplit(":", 1)[1]))
    replicas = set()
    for _ in range(n):
        keepalive.request("GET", "/v2/health/ready")
        response = keepalive.getresponse()
        response.read()
        replicas.add(response.getheader("x-servelab-replica"))
    keepalive.close()
    return replicas


def test_per_connection_mode_pins_a_keepalive_client_to_one_pod(deployed):
    with LocalCluster(service_port=0, service_mode="per-connection") as other:
        other.apply(SERVICE)
        other.apply(DEPLOYMENT)
        other.scale(NAME, 2)
        other.wait_ready(NAME, timeout=30)
        replicas = replicas_over_one_connection(other.service_url())
    assert len(replicas) == 1
    # Per request (the default), one kept-alive client reaches every Ready pod in turn.
    deployed.scale(NAME, 2)
    deployed.wait_ready(NAME, timeout=30)
    assert len(replicas_over_one_connection(deployed.service_url())) == 2


def test_port_in_use_names_the_port_and_its_holder(deployed):
    port = int(deployed.service_url().rsplit(":", 1)[1])
    with LocalCluster(service_port=port) as other:
        # Another cluster of this same process holding the port is closed for us (re-running a lab).
        other.apply(SERVICE)
        assert other.service_url().endswith(f":{port}")
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with LocalCluster(service_port=taken) as blocked:
            with pytest.raises(PortInUseError, match=rf"port {taken} is already in use by pid {os.getpid()}"):
                blocked.apply(SERVICE)


def test_autoscale_rollout_delete_and_metadata():
    with LocalCluster(service_port=0) as c:
        c.kubectl(f"apply -f {DEPLOYMENT}")
        out = c.kubectl(f"autoscale deployment {NAME} --cpu-percent=50 --min=1 --max=3")
        assert out == f"horizontalpodautoscaler.autoscaling/{NAME} autoscaled"
        assert c.kubectl(f"rollout status deployment/{NAME} --timeout=30s").endswith(
            f'deployment "{NAME}" successfully rolled out')
        header, row = c.kubectl("get hpa").splitlines()
        assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
        assert row.split()[:7] == [NAME, f"Deployment/{NAME}", "cpu:", "<unknown>/50%", "1", "3", "1"]
        meta = c.run_metadata()
        assert meta["backend"] == "local" and meta["replicas"] == 1
        assert meta["cpu_request_cores"] == 0.5 and meta["memory_request_gib"] == 0.25
        assert meta["limits_enforced"] in ("cgroup-v1", "cgroup-v2", "user-scope", "userspace", False)
        (pod,) = meta["pods"]
        assert set(pod) == {"name", "start_s", "end_s", "cpu_request_cores", "memory_request_gib", "cpu_used_core_s",
                            "limits_enforced"}
        assert pod["end_s"] > pod["start_s"] and pod["cpu_used_core_s"] > 0
        assert "my-model" in c.kubectl(f"logs {pod['name']} --tail=5")
        # A changed template rolls out: new pods (new hash) first, the old one goes once they are Ready.
        assert c.apply(deployment(cpu_limit="1")) == [f"deployment.apps/{NAME} configured"]
        c.kubectl(f"rollout status deployment/{NAME}")
        (new,) = [p for p in c.pods() if p.status != "Terminating"]
        assert new.name.rsplit("-", 2)[1] != pod["name"].rsplit("-", 2)[1] and new.cpu_limit_cores == 1.0
        assert c.kubectl(f"delete -f {DEPLOYMENT}") == f'deployment.apps "{NAME}" deleted'
        assert c.pods() == []  # the Deployment is gone at once, as with kubectl; its pods terminate after it
        deadline = time.monotonic() + 15  # the pods' grace period, and then some
        while "pod-gone" not in set(c.timeline()["kind"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        timeline = c.timeline()
        assert {"pod-created", "pod-running", "pod-ready", "pod-terminating", "pod-gone"} <= set(timeline["kind"])
        assert timeline["t_s"].is_monotonic_increasing


def server_processes() -> list:
    import psutil

    return [c for c in psutil.Process().children(recursive=True) if "servelab.cli" in " ".join(c.cmdline())]


def test_invalid_manifests_are_refused_before_anything_is_created(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here yet\n")
    with LocalCluster(service_port=0) as c:
        assert c.node == allocatable()
        refused = {
            "replicas: -3": (deployment(replicas=-3),
                             r"spec\.replicas: Invalid value: -3: must be greater than or equal to 0"),
            "replicas: many": (deployment(replicas="many"),
                               r'spec\.replicas: Invalid value: "many": must be a whole number'),
            "replicas: 1.5": (deployment(replicas=1.5), r"spec\.replicas: Invalid value: 1\.5: must be a whole number"),
            "cpu: abc": (deployment(cpu_limit="abc"),
                         r'spec\.template\.spec\.containers\[0\]\.resources\.limits\.cpu: "abc" is not a quantity'),
            "replicas: 1000": (deployment(replicas=1000),
                               r"spec\.replicas: Invalid value: 1000: the local cluster is one node, which runs at "
                               r"most 110 pods .* room for \d+ pods"),
        }
        for what, (bad, message) in refused.items():
            with pytest.raises(InvalidManifest, match=message):
                c.apply([manifest(SERVICE), bad])  # the valid Service first: it must not be created either
            assert c.services() == [] and c.deployments() == [] and c.pods() == [], what
        with pytest.raises(InvalidManifest, match=rf"no objects in {re.escape(str(empty))}: it is empty"):
            c.kubectl(f"apply -f {empty}")
        c.apply(deployment(replicas=0))
        with pytest.raises(InvalidManifest, match="spec.replicas: Invalid value: -1: must be greater than or equal"):
            c.kubectl(f"scale deployment {NAME} --replicas=-1")
        with pytest.raises(InvalidManifest, match="at most 110 pods"):
            c.scale(NAME, 1000)
        assert c.pods() == [] and server_processes() == []


def test_pods_that_do_not_fit_stay_pending_and_start_when_room_appears():
    with LocalCluster(service_port=0, node=node(1.0)) as c:
        c.apply([manifest(SERVICE), deployment(replicas=c.node.pods)])
        pods = c.pods()  # apply returned without waiting for any pod: two start, the others wait
        running = [p for p in pods if p.status != "Pending"]
        waiting = {p.name for p in pods if p.status == "Pending"}
        created = [e.object.removeprefix("pod/") for e in c.events() if e.kind == "pod-created"]
        pending = [next(p for p in pods if p.name == name) for name in created if name in waiting]  # oldest first
        assert (len(running), len(pending)) == (2, 108), "1 CPU holds two pods requesting 0.5 CPU"
        assert len(server_processes()) == 2, "a Pending pod runs no process"
        assert all(p.pending_reason == "0/1 nodes are available: 1 Insufficient cpu." for p in pending)
        assert all(p.url is None for p in pending)
        rows = [line.split() for line in c.kubectl("get pods").splitlines()[1:]]
        assert sum(row[1:4] == ["0/1", "Pending", "0"] for row in rows) == 108
        described = c.kubectl(f"describe pod {pending[0].name}")
        assert re.search(r"Status:\s+Pending", described) and re.search(r"Node:\s+<none>", described)
        assert re.search(r"PodScheduled\s+False", described)
        assert re.search(r"Warning\s+FailedScheduling\s+\d+s\s+default-scheduler\s+0/1 nodes are available: "
                         r"1 Insufficient cpu\.", described)
        with pytest.raises(Unschedulable, match=r"108 of its 110 pods are Pending: 0/1 nodes are available: 1 "
                                                r"Insufficient cpu\. This machine holds 2 pods requesting 0\.5 CPU"):
            c.wait_ready(NAME, timeout=60)
        assert {p["name"] for p in c.run_metadata()["pods"]} <= {p.name for p in running}, "Pending pods cost nothing"

        # Room appears when a pod is gone: the oldest Pending pod starts; the replacement waits behind it.
        c.kubectl(f"delete pod {running[0].name}")
        wait_for(lambda: any(p.name == pending[0].name and p.ready for p in c.pods()), 60,
                 "the oldest Pending pod to be scheduled and Ready")
        # A scale-down removes Pending pods first, as the ReplicaSet controller does.
        c.scale(NAME, 2)
        assert {p.name for p in c.pods() if p.status != "Terminating"} == {running[1].name, pending[0].name}
        c.wait_ready(NAME, timeout=60)
        kinds = [e.kind for e in c.events() if e.object == f"pod/{pending[0].name}"]
        assert kinds[:3] == ["pod-created", "pod-unschedulable", "pod-running"]


def test_an_hpa_asking_for_more_than_fits_leaves_the_extra_pods_pending():
    hpa = manifest(HPA)
    hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"] = 3, 4
    with LocalCluster(service_port=0, node=node(1.0), sync_period_s=0.5) as c:
        c.apply([deployment(replicas=1), hpa])
        wait_for(lambda: c.deployments()[0].replicas == 3, 20, "the HPA to raise the replicas to its minimum")
        wait_for(lambda: sum(p.ready for p in c.pods()) == 2, 60, "the two pods that fit to be Ready")
        syncs = len([e for e in c.events() if e.kind == "hpa-decision"])
        wait_for(lambda: len([e for e in c.events() if e.kind == "hpa-decision"]) >= syncs + 3, 20, "more HPA syncs")
        (pending,) = [p for p in c.pods() if p.status == "Pending"]
        assert pending.pending_reason == "0/1 nodes are available: 1 Insufficient cpu."
        header, row = c.kubectl("get hpa").splitlines()
        assert row.split()[4:7] == ["3", "4", "3"], "MINPODS MAXPODS REPLICAS: the Pending pod counts"
        decisions = [e for e in c.events() if e.kind == "hpa-decision"]
        # With no CPU metrics yet the HPA holds at its minimum; a Pending pod never raises it further.
        assert all(e.data["desired"] == 3 for e in decisions[1:]), [e.message for e in decisions]


def test_a_rollout_on_a_full_machine_makes_room_one_old_pod_at_a_time():
    old = deployment(replicas=2)
    old["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    new = deployment(replicas=2, cpu_limit="1")
    new["spec"]["strategy"] = old["spec"]["strategy"]
    with LocalCluster(service_port=0, node=node(1.0)) as c:
        c.apply(old)
        c.wait_ready(NAME, timeout=60)
        before = {p.name for p in c.pods()}
        c.apply(new)  # two new pods, no room for either: one old pod goes (maxUnavailable 1) to make some
        pods = c.pods()
        assert sum(p.status == "Terminating" for p in pods) == 1 and sum(p.status == "Pending" for p in pods) == 2
        c.wait_ready(NAME, timeout=90)
        wait_for(lambda: not {p.name for p in c.pods()} & before, 30, "the old pods to be gone")
        assert all(p.cpu_limit_cores == 1.0 and p.ready for p in c.pods())
