"""The cluster/ kit: every manifest passes strict Kubernetes schema validation for two minor
versions, and the kit keeps the promises the kube path depends on (probes, graceful stop, pinned
tags, NodePort mapped by kind, insecure kubelet TLS for metrics-server, a reproducible image).

The local backend runs the same Deployment, Service and HPA files in tests/test_local_cluster.py.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from servelab import doctor
from servelab.core import manifests
from servelab.core.manifests import deployment

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
KUBERNETES_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")
MANIFESTS = sorted(p.name for p in CLUSTER.glob("*.yaml") if p.name != "kind-config.yaml")


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d]


def by_kind(kind: str) -> list[dict]:
    return [d for name in MANIFESTS for d in documents(name) if d["kind"] == kind]


def our_workloads() -> list[dict]:
    return [d for d in by_kind("Deployment") + by_kind("Job") if d["metadata"].get("namespace") != "kube-system"]


def test_the_kit_has_every_manifest_the_issue_names():
    assert {"model-serving-deployment.yaml", "model-serving-service.yaml", "model-serving-hpa.yaml",
            "batch-scoring-job.yaml", "metrics-server.yaml"} <= set(MANIFESTS)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_in_strict_mode(name, version):
    for doc in documents(name):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_local_backend_checks_manifests_against_a_version_the_kit_is_validated_for():
    assert manifests.KUBERNETES_VERSION in KUBERNETES_VERSIONS
    for name in MANIFESTS:
        manifests.check(documents(name))


def test_strict_validation_rejects_an_unknown_field():
    (deployment,) = documents("model-serving-deployment.yaml")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSIONS[0], strict=True)


def test_every_container_of_ours_has_requests_limits_and_a_pinned_image():
    for workload in our_workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            for field in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[field]), (workload["metadata"]["name"], field)
            repo, _, tag = container["image"].rpartition(":")
            assert repo == "servelab/model-server" and tag == "0.1.0", container["image"]
            assert container["imagePullPolicy"] == "IfNotPresent"


def test_the_server_is_probed_and_stops_gracefully():
    (deployment,) = documents("model-serving-deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(command[1])
    assert container["args"][0] == "serve"  # the image's ENTRYPOINT is `servelab`


def test_hpa_is_autoscaling_v2_on_cpu_with_a_lab_sized_behavior():
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "model-serving-deployment"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] < 300


def test_kind_maps_the_services_node_port_to_localhost_8501():
    config = yaml.safe_load((CLUSTER / "kind-config.yaml").read_text())
    assert (config["kind"], config["apiVersion"], config["name"]) == ("Cluster", "kind.x-k8s.io/v1alpha4", "servelab")
    (node,) = config["nodes"]
    (mapping,) = node["extraPortMappings"]
    (service,) = documents("model-serving-service.yaml")
    assert mapping["containerPort"] == service["spec"]["ports"][0]["nodePort"] == 30501
    assert (mapping["hostPort"], mapping["listenAddress"]) == (8501, "127.0.0.1")
    assert doctor.SERVICE_PORT == mapping["hostPort"]  # the port make doctor checks is the one kind binds
    assert "HOST_PORT    ?= 8501" in (CLUSTER / "cluster.mk").read_text()


def test_metrics_server_is_pinned_and_trusts_kinds_kubelets():
    (deployment,) = [d for d in documents("metrics-server.yaml") if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.k8s.io/metrics-server/metrics-server:v0.8.1"
    assert "--kubelet-insecure-tls" in container["args"]
    kinds = {d["kind"] for d in documents("metrics-server.yaml")}
    assert {"APIService", "ServiceAccount", "ClusterRole", "Service", "Deployment"} <= kinds


def dockerfile() -> list[str]:
    """Dockerfile instructions, one per entry, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (CLUSTER / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_is_pinned_non_root_with_models_baked_in_and_exec_form():
    lines = dockerfile()
    bases = {line.split()[1] for line in lines if line.startswith("FROM ")}
    (base,) = bases  # the build stage and the runtime share one pinned base
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    build, runtime = lines[stages[0]:stages[1]], lines[stages[1]:]
    build_text = " ".join(" ".join(build).split())
    assert "--no-deps --only-binary :all: --requirement cluster/requirements.lock" in build_text
    assert "--requirement cluster/build-requirements.lock" in build_text  # onnx, for the model files
    assert "models.path(n) for n in models.MODEL_NAMES" in build_text
    assert [line for line in runtime if line.startswith("COPY")] == ["COPY --from=build /opt/servelab /opt/servelab"]
    assert not any("pip" in line for line in runtime if line.startswith("RUN"))  # nothing installed in the image
    (user,) = [line for line in lines if line.startswith("USER ")]
    assert int(user.split()[1]) > 0  # numeric, so the kubelet can check runAsNonRoot
    assert [line for line in lines if line.startswith("ENTRYPOINT")] == ['ENTRYPOINT ["servelab"]']
    assert not any(line.startswith("HEALTHCHECK") for line in lines)


def test_build_context_admits_only_what_the_image_needs():
    allowed = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert allowed == ["!pyproject.toml", "!README.md", "!servelab/", "!cluster/requirements.lock",
                       "!cluster/build-requirements.lock"]


def test_ci_workflow_creates_the_cluster_make_cluster_reuses():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "kind.yml").read_text())
    steps = workflow["jobs"]["labs-on-kind"]["steps"]
    (kind,) = [s for s in steps if s.get("uses", "").startswith("helm/kind-action@")]
    assert kind["with"]["config"] == "cluster/kind-config.yaml" and kind["with"]["cluster_name"] == "servelab"
    runs = [s.get("run", "") for s in steps]
    assert runs.index("make cluster") < next(i for i, r in enumerate(runs) if "test_notebooks.py" in r)
    (labs,) = [s for s in steps if "test_notebooks.py" in s.get("run", "")]
    assert labs["env"]["SERVELAB_BACKEND"] == "kube"


def test_in_the_image_the_server_listens_on_the_pods_ip(monkeypatch):
    """The Deployment's args have no --host: the image's SERVELAB_HOST makes kubelet probes reach it."""
    import argparse

    from servelab.server import serve_cli as server_cli

    assert "SERVELAB_HOST=0.0.0.0" in " ".join(line for line in dockerfile() if line.startswith("ENV "))
    (deployment,) = documents("model-serving-deployment.yaml")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    monkeypatch.setenv("SERVELAB_HOST", "0.0.0.0")
    parser = argparse.ArgumentParser()
    server_cli.add_arguments(parser)
    assert parser.parse_args(args[1:]).host == "0.0.0.0"


def test_deployment_changes_model_and_replicas_only():
    original = deployment()
    changed = deployment(model="large", replicas=3)
    args = changed["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "large" and changed["spec"]["replicas"] == 3
    changed["spec"]["template"]["spec"]["containers"][0]["args"] = original["spec"]["template"]["spec"]["containers"][0]["args"]
    changed["spec"]["replicas"] = original["spec"]["replicas"]
    assert changed == original
