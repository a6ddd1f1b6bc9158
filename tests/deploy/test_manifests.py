"""deploy/tf-serving.yaml as a careful operator writes it, and its readiness
probe run for real: the probe's own shell command against the local server
(TF Serving's REST API), ready only when every model has a version available."""

import os
import shutil
import subprocess

import pytest
import tensorflow as tf
import yaml

import models
from taxi_pipeline import settings
from taxi_pipeline.serving.server import Server


@pytest.fixture(scope="module")
def manifest():
    with open(os.path.join(settings.REPO_ROOT, "deploy", "tf-serving.yaml")) as f:
        return {d["kind"]: d for d in yaml.safe_load_all(f)}


def test_kubernetes_manifests_serve_the_pushed_layout(manifest):
    assert set(manifest) == {"PersistentVolumeClaim", "Deployment", "Service"}
    container = manifest["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("tensorflow/serving:")
    assert "--model_config_file=/models/models.config" in container["args"]
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert container["volumeMounts"][0]["mountPath"] == settings.CONTAINER_MODELS_ROOT
    assert {p["port"] for p in manifest["Service"]["spec"]["ports"]} == {8500, 8501}


def test_pods_run_unprivileged_without_a_token_and_with_bounded_resources(manifest):
    pod = manifest["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, f"{container['name']} {kind}"


def _probe(manifest):
    (probe,) = [c["readinessProbe"]["exec"]["command"]
                for c in manifest["Deployment"]["spec"]["template"]["spec"]["containers"] if "readinessProbe" in c]
    return probe


class _Echo(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def echo(self, x):
        return {"y": x}


@pytest.mark.skipif(shutil.which("wget") is None, reason="the probe runs busybox's wget; GNU wget stands in")
def test_the_readiness_probe_waits_for_every_model(manifest, tmp_path):
    names = [models.get(n).serving_name for n in models.available()]
    module = _Echo()
    for name in names:
        tf.saved_model.save(module, str(tmp_path / name / "1"), signatures=module.echo)

    def ready(served_names):
        server = Server({n: str(tmp_path / n) for n in served_names}, port=0, rest_api_port=0, poll_seconds=0)
        server.start()
        try:
            command = [part.replace("127.0.0.1:8501", f"127.0.0.1:{server.rest_api_port}") for part in _probe(manifest)]
            return subprocess.run(command, timeout=30).returncode == 0
        finally:
            server.stop()

    assert ready(names)
    for missing in names:
        assert not ready([n for n in names if n != missing]), f"ready without {missing}"
