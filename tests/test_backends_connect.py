"""connect() picks a backend and says which and why, in one line."""

from __future__ import annotations

import pytest

from servelab.backends import connect, kube_problem


def test_auto_without_kubeconfig_is_local_and_says_why(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("SERVELAB_BACKEND", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with connect(service_port=0) as cluster:
        assert cluster.backend == "local"
    (line,) = [text for text in capsys.readouterr().out.splitlines() if text.startswith("servelab:")]
    assert "local backend" in line and f"no kubeconfig at {tmp_path / 'missing'}" in line


def test_a_kubeconfig_without_the_context_is_named(monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: other, context: {cluster: c, user: u}}]\n"
        "current-context: other\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert "no context 'kind-servelab'" in kube_problem("kind-servelab")
    assert "did not answer" in kube_problem("other", timeout=0.5)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="choose 'auto', 'local' or 'kube'"):
        connect("docker")
