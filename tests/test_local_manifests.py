"""Reading the manifests in cluster/ into what the local backend runs."""

from __future__ import annotations

import random
import sys

import pytest

from local_fixtures import DEPLOYMENT, deployment
from servelab.backends.local.manifests import SAFE_ALPHABET, ContainerSpec, pod_suffix, pod_template_hash
from servelab.backends.manifests import cpu_cores, load_documents, memory_bytes


def test_quantities():
    assert cpu_cores("500m") == 0.5 and cpu_cores("2") == 2.0 and cpu_cores(1) == 1.0
    assert memory_bytes("256Mi") == 256 * 2**20 and memory_bytes("1G") == 10**9
    with pytest.raises(ValueError, match="256Mi"):
        memory_bytes("lots")


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
    with pytest.raises(ValueError, match="needs kind and metadata.name"):
        load_documents({"kind": "Service"})
