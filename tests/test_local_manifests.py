"""Reading the manifests in cluster/ into what the local backend runs, and refusing, before anything
is created, what an API server would refuse (issue 12, item 4)."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from decimal import Decimal

import pytest
from kubernetes.utils.quantity import parse_quantity
from local_fixtures import DEPLOYMENT, HPA, SERVICE, deployment, manifest

from servelab.backends.local.node import Allocatable
from servelab.backends.local.pod_template import (
    SAFE_ALPHABET,
    ContainerSpec,
    pod_suffix,
    pod_template_hash,
)
from servelab.backends.local.validation import check_local
from servelab.core.manifests import (
    InvalidManifest,
    check,
    cpu_cores,
    load_documents,
    memory_bytes,
    quantity,
)

CONTAINER = "spec.template.spec.containers[0]"


def test_quantities():
    assert cpu_cores("500m") == 0.5 and cpu_cores("2") == 2.0 and cpu_cores(1) == 1.0 and cpu_cores(0.25) == 0.25
    assert cpu_cores("0.0001") == 0.001, "rounded up to 1m, as the API server does"
    assert memory_bytes("256Mi") == 256 * 2**20 and memory_bytes("1G") == 10**9 and memory_bytes("1e3") == 1000
    with pytest.raises(InvalidManifest, match=r'memory: "lots" is not a quantity \(write e.g. 500m .* 256Mi'):
        memory_bytes("lots")


VALID = ["500m", "1", "0.5", ".5", "5.", "+1", "-1", "1e3", "1E-3", "1.5Gi", "1Ki", "100n", "1u", "2k", "3M",
         "1.0e+2", "7Ei"]
# The official client's parse_quantity accepts these; the API server's grammar does not.
REFUSED = ["abc", "", "1.5.5", "1ki", "1K", "1mi", "inf", "nan", "1_000", " 1", "1 ", "0x10", "1e", "1e1.5", "1 Gi"]


@pytest.mark.parametrize("text", VALID)
def test_quantity_agrees_with_the_official_client_where_both_accept(text):
    assert quantity(text) == Decimal(parse_quantity(text))


@pytest.mark.parametrize("text", REFUSED)
def test_quantity_refuses_what_the_api_server_refuses(text):
    with pytest.raises(InvalidManifest, match="x.cpu: .* is not a quantity"):
        quantity(text, "x.cpu")


@pytest.mark.parametrize("value", [True, None, [1], float("inf")])
def test_quantity_refuses_values_that_are_not_numbers_or_text(value):
    with pytest.raises(InvalidManifest, match="is not a quantity"):
        quantity(value)


def invalid(doc: dict) -> str:
    with pytest.raises(InvalidManifest) as error:
        check([doc])
    return str(error.value)


def test_the_refused_manifests_of_the_issue_name_their_field():
    assert invalid(deployment(replicas=-3)) == (
        'The Deployment "model-serving-deployment" is invalid: spec.replicas: Invalid value: -3: '
        "must be greater than or equal to 0")
    assert "spec.replicas: Invalid value: \"many\": must be a whole number" in invalid(deployment(replicas="many"))
    assert "spec.replicas: Invalid value: 2.5: must be a whole number" in invalid(deployment(replicas=2.5))
    assert f'{CONTAINER}.resources.limits.cpu: "abc" is not a quantity' in invalid(deployment(cpu_limit="abc"))
    with pytest.raises(InvalidManifest, match="no objects in the YAML text given: it is empty or only comments"):
        load_documents("# a comment\n---\n")


def test_what_else_an_api_server_refuses():
    doc = deployment()
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert invalid(doc).endswith(f'unknown field "{CONTAINER}.readinesProbe"')
    doc = deployment()
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2"
    assert invalid(doc).endswith(f'{CONTAINER}.resources.requests: Invalid value: "2": must be less than or '
                                 "equal to cpu limit of 500m")
    doc = deployment()
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "-1Gi"
    assert "must be greater than or equal to 0" in invalid(doc)
    doc = deployment()
    del doc["spec"]["selector"]
    assert invalid(doc).endswith("spec: 'selector' is a required property")
    doc = deployment()
    doc["apiVersion"] = "apps/v9"
    assert invalid(doc).endswith('apiVersion: no kind "Deployment" in version "apps/v9" (Kubernetes 1.35)')
    doc = deployment()
    doc["spec"]["replicas"] = 2**31
    assert invalid(doc).endswith("must be less than or equal to 2147483647")
    hpa = manifest(HPA)
    hpa["spec"]["minReplicas"] = 0
    assert invalid(hpa).endswith("spec.minReplicas: Invalid value: 0: must be greater than or equal to 1")
    hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"] = 3, 2
    assert invalid(hpa).endswith("spec.maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas")


def test_every_problem_of_every_document_is_named_at_once():
    bad = deployment(replicas=-1, cpu_limit="abc")
    service = manifest(SERVICE)
    service["spec"]["ports"][0]["port"] = "http"
    lines = invalid_all([bad, service])
    assert len(lines) == 3 and lines[0].startswith('The Deployment "model-serving-deployment"')
    assert lines[2].startswith('The Service "model-serving" is invalid: spec.ports[0].port')


def invalid_all(docs: list[dict]) -> list[str]:
    with pytest.raises(InvalidManifest) as error:
        check(docs)
    return str(error.value).splitlines()


def test_the_kit_passes_and_the_local_backend_says_what_it_cannot_run():
    check(load_documents([DEPLOYMENT, SERVICE, HPA]))
    small = Allocatable(1.0, 2**32)
    check_local(load_documents([DEPLOYMENT, SERVICE, HPA]), small)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "scoring"}}
    with pytest.raises(InvalidManifest, match="runs Deployment, Service and HorizontalPodAutoscaler, not Job"):
        check_local([job], small)
    with pytest.raises(InvalidManifest, match=r"at most 110 pods .* room for 2 pods of this template \(each requests "
                                              r"0.5 CPU and 256Mi; allocatable: 1 CPU, 4.0 GiB\)"):
        check_local([deployment(replicas=111)], small)
    check_local([deployment(replicas=110)], small)  # beyond the 2 that fit: Pending, not refused
    hpa = manifest(HPA)
    hpa["spec"]["maxReplicas"] = 200
    with pytest.raises(InvalidManifest, match="spec.maxReplicas: Invalid value: 200: the local cluster is one node"):
        check_local([hpa], small)


@pytest.mark.skipif(shutil.which("unshare") is None or sys.platform != "linux", reason="needs unshare (Linux)")
def test_validation_works_offline():
    """kubernetes-validate ships its schemas: checking needs no network (here: a namespace with none)."""
    code = (f"from servelab.core.manifests import check, load_documents; "
            f"check(load_documents([{str(DEPLOYMENT)!r}, {str(SERVICE)!r}, {str(HPA)!r}])); print('checked')")
    run = subprocess.run(["unshare", "--net", "--map-root-user", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=120)
    if run.returncode and "unshare" in run.stderr and "Operation not permitted" in run.stderr:
        pytest.skip(f"this machine does not allow a network namespace: {run.stderr.strip()}")
    assert run.stdout.strip() == "checked", run.stderr


def test_template_hash_is_stable_and_changes_with_the_template():
    template = deployment()["spec"]["template"]
    assert pod_template_hash(template) == pod_template_hash(deployment()["spec"]["template"])
    assert pod_template_hash(template) != pod_template_hash(deployment(cpu_limit="1")["spec"]["template"])
    assert set(pod_template_hash(template)) <= set(SAFE_ALPHABET)
    suffix = pod_suffix(random.Random(0))
    assert len(suffix) == 5 and set(suffix) <= set(SAFE_ALPHABET)


def test_the_repo_deployment_becomes_a_servelab_process_on_its_own_port():
    (doc,) = load_documents(DEPLOYMENT)
    spec = ContainerSpec.from_template(doc["spec"]["template"])
    argv = spec.argv(40123)
    assert argv[:3] == [sys.executable, "-m", "servelab.cli"]
    args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--port") + 1] == "8501"
    assert argv[3:] == [("40123" if a == "8501" else a) for a in args]
    assert spec.environment("pod-a") == {"POD_NAME": "pod-a"}
    assert (spec.cpu_request, spec.cpu_limit, spec.memory_limit) == (0.5, 0.5, 512 * 2**20)
    assert spec.readiness.path == "/v2/health/ready" and spec.readiness.period_s == 1
    assert spec.pre_stop == ["sleep", "2"] and spec.grace_period_s == 10


def test_documents_from_text_dict_and_bad_input():
    assert [d["kind"] for d in load_documents("kind: Service\nmetadata: {name: s}\n---\n")] == ["Service"]
    with pytest.raises(FileNotFoundError, match="no manifest file"):
        load_documents("cluster/nope.yaml")
    with pytest.raises(InvalidManifest, match="needs kind and metadata.name"):
        load_documents({"kind": "Service"})


def test_an_emulated_slower_pod_stalls_as_long_as_the_manifest_s_limit_makes_it():
    """SERVELAB_CPU_SCALE below 1 shortens the period so the stall after a spent quota stays (1 - L) x 100 ms."""
    from servelab.backends.local.pod_size import scaled

    spec = ContainerSpec.from_template(deployment()["spec"]["template"])
    assert spec.cpu_limit == 0.5 and spec.cpu_period_s == 0.1
    slower = scaled(spec, 1 / 3)
    assert slower.cpu_limit == pytest.approx(0.5 / 3) and slower.cpu_request == pytest.approx(0.5 / 3)
    stall = lambda s: (1 - s.cpu_limit) * s.cpu_period_s  # noqa: E731
    assert stall(slower) == pytest.approx(stall(spec)) and slower.cpu_period_s == pytest.approx(0.06)
    faster = scaled(spec, 3)
    assert faster.cpu_limit == 1.5 and faster.cpu_request == 0.5 and faster.cpu_period_s == 0.1
