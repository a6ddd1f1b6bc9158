"""The servability check before the push: InfraValidator on Kubeflow (what its
executor needs from the KFP 2 task pod) and the local pipeline's stand-in."""

import glob
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.components import InfraValidator
from tfx.types import standard_component_specs

from models.taxi import features
from taxi_pipeline.modeling.examples import to_tf_example
from taxi_pipeline.kubeflow.infra_validator import ClusterExecutor, ClusterInfraValidator, _ensure_kfp_pod_env
from taxi_pipeline.pipeline.servability import serving_problem


def test_same_spec_and_executor_as_tfx_infra_validator():
    # Same contract as TFX's component; only the class differs, so KubeflowV2DagRunner compiles it.
    assert ClusterInfraValidator.SPEC_CLASS is InfraValidator.SPEC_CLASS
    assert issubclass(ClusterExecutor, InfraValidator.EXECUTOR_SPEC.executor_class)
    assert not issubclass(ClusterInfraValidator, InfraValidator)
    assert standard_component_specs.BLESSING_KEY in ClusterInfraValidator.SPEC_CLASS.OUTPUTS


def test_kfp2_pod_env_is_completed(tmp_path):
    namespace = tmp_path / "namespace"
    namespace.write_text("team-a\n")
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "pipeline-abc-123", "KFP_POD_NAME": "pipeline-abc-123"}
    _ensure_kfp_pod_env(environ, str(namespace))
    assert environ["KFP_NAMESPACE"] == "team-a"
    del environ["KFP_POD_NAME"], environ["KFP_NAMESPACE"]
    _ensure_kfp_pod_env(environ, str(namespace))
    assert environ["KFP_POD_NAME"] == "pipeline-abc-123", "Kubernetes names the pod's host after the pod"


def test_outside_a_cluster_the_error_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="needs a Kubernetes cluster: it starts TF Serving as a pod"):
        _ensure_kfp_pod_env({"HOSTNAME": "laptop"}, str(tmp_path / "namespace"))
    with pytest.raises(RuntimeError, match="KFP_NAMESPACE is unset and .*namespace is unreadable"):
        _ensure_kfp_pod_env({"KFP_POD_NAME": "p", "KUBERNETES_SERVICE_HOST": "h"}, str(tmp_path / "namespace"))


def test_executor_checks_the_pod_before_touching_artifacts(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KFP_POD_NAME", raising=False)
    with pytest.raises(RuntimeError, match="needs a Kubernetes cluster"):
        ClusterExecutor().Do({}, {}, {})


def test_local_check_passes_a_pushed_model_and_names_what_breaks_one(taxi_run, taxi_frame, tmp_path):
    output_dir, summary = taxi_run
    # As ExampleGen stored them (types inferred from the data), which score_stored_examples takes.
    (stored,) = glob.glob(f"{output_dir}/pipelines/chicago-taxi/CsvExampleGen/examples/*/Split-eval/*")
    records = tf.data.TFRecordDataset(stored, compression_type="GZIP").take(3)
    batch = np.array([r.numpy() for r in records], dtype=object)
    assert serving_problem(summary.pushed_model, "score_stored_examples", batch) == ""
    assert '"nope" not found' in serving_problem(summary.pushed_model, "nope", batch)
    # serving_default takes the data's own types, as stored or as the client builds them ...
    declared = [to_tf_example(r, features.RAW_COLUMNS).SerializeToString() for _, r in taxi_frame.head(3).iterrows()]
    assert serving_problem(summary.pushed_model, "serving_default", np.array(declared, dtype=object)) == ""
    assert serving_problem(summary.pushed_model, "serving_default", batch) == ""
    # ... and names a feature of a type it does not take.
    wrong = tf.train.Example()
    wrong.features.feature["company"].float_list.value.append(1.0)
    problem = serving_problem(summary.pushed_model, "serving_default", np.array([wrong.SerializeToString()], dtype=object))
    assert "company" in problem and "Data types don't match" in problem

    broken = tmp_path / "broken"
    shutil.copytree(summary.pushed_model, broken)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert serving_problem(str(broken), "score_stored_examples", batch).startswith("it does not load: ")
