"""A compiled Kubeflow package, executed task by task as KFP's launcher would."""

import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from google.protobuf import text_format

import kubeflow_runner
from taxi_pipeline import settings
from taxi_pipeline.kubeflow.local_tasks import TaskError, run_package

pytestmark = pytest.mark.e2e  # runs whole pipelines


@pytest.fixture(scope="module")
def taxi_package(tmp_path_factory, taxi_frame):
    data = tmp_path_factory.mktemp("kfp_data")
    taxi_frame.head(300).to_csv(data / "data.csv", index=False)
    root = tmp_path_factory.mktemp("kfp_root")
    (path,) = kubeflow_runner.run(
        ["--pipeline", "taxi", "--data", str(data), "--pipeline_root", str(root),
         "--output_dir", str(tmp_path_factory.mktemp("kfp_out"))]
    )
    return path, str(root)


def test_tasks_run_from_the_compiled_spec_through_the_data_gate(taxi_package, monkeypatch):
    path, root = taxi_package
    # The pipeline image puts this package on PYTHONPATH; so does this test.
    monkeypatch.setenv("PYTHONPATH", settings.REPO_ROOT)
    produced = run_package(path, os.path.join(root, "run"), until="DataGate")
    assert set(produced) == {"CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate"}

    examples = produced["CsvExampleGen"]["examples"]
    assert examples["metadata"]["split_names"] == '["train", "eval"]'
    records = sum(
        1
        for split in ("train", "eval")
        for f in tf.io.gfile.glob(os.path.join(examples["uri"], f"Split-{split}", "*"))
        for _ in tf.data.TFRecordDataset(f, compression_type="GZIP")
    )
    assert records == 300

    stats_dir = produced["StatisticsGen"]["statistics"]["uri"]
    assert tf.io.gfile.exists(os.path.join(stats_dir, "Split-train", "FeatureStats.pb"))

    schema = schema_pb2.Schema()
    with open(os.path.join(produced["SchemaGen"]["schema"]["uri"], "schema.pbtxt")) as f:
        text_format.Parse(f.read(), schema)
    assert {"fare", "payment_type", "tips"} <= {feature.name for feature in schema.feature}


def test_resolver_tasks_say_why_they_need_a_cluster(taxi_package):
    path, root = taxi_package
    with pytest.raises(TaskError, match="resolves against the cluster's ML Metadata"):
        run_package(path, os.path.join(root, "resolver"), until="latest_blessed_model_resolver-model-resolver")
