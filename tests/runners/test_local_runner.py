"""The whole local pipeline on a data slice: run, push, serve, re-run, bad input."""

import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.config import model_server_config_pb2

import local_runner
from models.taxi import features
from taxi_pipeline.records import metadata
from taxi_pipeline.explore import data, outputs
from taxi_pipeline.modeling import binary_metrics
from taxi_pipeline.modeling.examples import to_tf_example
from taxi_pipeline.runs.layout import OutputLayout
from taxi_pipeline.pipeline.data_validation import InputDataError
from taxi_pipeline.runs.progress import PipelineFailed


def test_run_blesses_and_pushes_a_model_that_scores_raw_examples(taxi_run, taxi_frame):
    output_dir, summary = taxi_run
    assert summary.blessed is True
    assert summary.metrics["auc"] >= 0.75
    assert 0 < summary.metrics["binary_accuracy"] <= 1
    assert summary.metrics["example_count"] > 0
    serving_dir = os.path.join(output_dir, "serving_model", "chicago_taxi")
    assert os.path.dirname(summary.pushed_model) == serving_dir
    assert os.path.basename(summary.pushed_model).isdigit(), "TF Serving needs a numeric version"
    with open(os.path.join(output_dir, "serving_model", "models.config")) as f:  # as TF Serving reads it
        (entry,) = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig()).model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("chicago_taxi", "/models/chicago_taxi", "tensorflow")

    model = tf.saved_model.load(summary.pushed_model)
    rows = taxi_frame.head(200)
    serialized = [to_tf_example(r, features.RAW_COLUMNS).SerializeToString() for _, r in rows.iterrows()]
    scores = model.signatures["serving_default"](examples=tf.constant(serialized))["probabilities"]
    scores = scores.numpy().reshape(-1)
    assert scores.shape == (200,) and np.all((scores >= 0) & (scores <= 1))
    fare = rows["fare"].astype(float)
    labels = (rows["tips"].astype(float) > 0.2 * fare).to_numpy()
    # The served model separates the classes on these rows.
    assert scores[labels].mean() > scores[~labels].mean() + 0.2


def test_evaluation_summary_for_the_kubeflow_run_page(taxi_run):
    output_dir, summary = taxi_run
    # This run's artifacts (a re-run into the same folder may have recorded its own).
    (run,) = [r for r in metadata.pipeline_runs(OutputLayout(output_dir).metadata_path, summary.pipeline_name)
              if r.run_id == summary.run_id]
    metrics, markdown = run.latest("system.Metrics"), run.latest("system.Markdown")
    assert metrics.custom_properties["auc"].double_value == pytest.approx(summary.metrics["auc"], abs=1e-5)
    with open(os.path.join(markdown.uri, "summary.md")) as f:
        text = f.read()
    assert text.startswith("## Model BLESSED")
    assert "| Overall |" in text and "| trip_start_hour = 0 |" in text and "| payment_type = Cash |" in text


def _rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The exact ROC AUC (Mann-Whitney, ties counted half)."""
    positive, negative = scores[labels], scores[~labels]
    below = np.searchsorted(np.sort(negative), positive, side="left")
    ties = np.searchsorted(np.sort(negative), positive, side="right") - below
    return float((below + ties / 2).sum() / (len(positive) * len(negative)))


def test_the_evaluators_metrics_are_those_of_the_model_on_the_eval_split(taxi_run):
    """The Evaluator (batches grouped by slice, not single examples) against
    the trained model scoring the eval split in-process, slice by slice."""
    import glob

    import tensorflow_model_analysis as tfma

    found = outputs.find(taxi_run[0], "taxi")
    model = tf.saved_model.load(os.path.join(found.latest_artifact("Model").uri, "Format-Serving"))
    (examples,) = glob.glob(os.path.join(taxi_run[0], "pipelines", "chicago-taxi", "CsvExampleGen", "examples", "*"))
    files = glob.glob(os.path.join(examples, "Split-eval", "*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    scores = model.signatures["score_stored_examples"](examples=tf.constant(records))["probabilities"]
    scores = scores.numpy().reshape(-1)
    parsed = [tf.train.Example.FromString(r).features.feature for r in records]
    fare, tips = (np.array([(f[k].float_list.value or [0.0])[0] for f in parsed], np.float32) for k in ("fare", "tips"))
    labels = tips > fare * np.float32(0.2)  # the label's definition, in the model's float32
    payment = np.array([(f["payment_type"].bytes_list.value or [b""])[0].decode() for f in parsed])

    result = tfma.load_eval_result(found.latest_evaluation().uri)
    by_slice = {key: m[""][""] for key, m in result.slicing_metrics}
    assert len(by_slice) > 3, "overall and per slice"
    for key, rows in [((), np.ones(len(labels), bool))] + [
        ((("payment_type", kind),), payment == kind) for kind in sorted(set(payment) - {""})
    ]:
        metrics = {name: value["doubleValue"] for name, value in by_slice[key].items()}
        assert metrics["example_count"] == rows.sum(), key
        called = scores[rows] > 0.5
        assert metrics["binary_accuracy"] == pytest.approx(np.mean(called == labels[rows]), abs=1e-9), key
        if 0 < labels[rows].sum() < rows.sum():
            # TFMA's AUC (its 10,000 score buckets: test_fast_evaluation.py) is
            # within a few thousandths of the exact one.
            tfma_auc = binary_metrics.tfma_auc(labels[rows].astype(np.float32), scores[rows])
            assert metrics["auc"] == pytest.approx(tfma_auc, abs=1e-9), key
            assert metrics["auc"] == pytest.approx(_rank_auc(labels[rows], scores[rows]), abs=5e-3), key


def _states_of_latest_run(metadata_path):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    run_id = metadata.latest_run(metadata_path, "chicago-taxi")
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    types = {t.id: t.name for t in store.get_execution_types()}
    return {
        types[e.type_id].split(".")[-1]: metadata_store_pb2.Execution.State.Name(e.last_known_state)
        for e in store.get_executions_by_context(run.id)
    }


def test_rerun_with_unchanged_inputs_reuses_the_cache(taxi_rerun):
    output_dir, first, second = taxi_rerun
    states = _states_of_latest_run(OutputLayout(output_dir).metadata_path)
    for stage in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer"):
        assert states[stage] == "CACHED", (stage, states)
    assert second.run_id != first.run_id
    assert second.metrics["auc"] == pytest.approx(first.metrics["auc"])


def _bad_run(tmp_path, csv_text):
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text(csv_text)
    output = tmp_path / "out"
    with pytest.raises((InputDataError, PipelineFailed)) as error:
        local_runner.run(["--data", str(data), "--output_dir", str(output), "--train_steps", "2"])
    assert not (output / "serving_model").exists(), "nothing may be pushed"
    return str(error.value)


def test_empty_csv_stops_before_the_pipeline(tmp_path):
    assert "file is empty" in _bad_run(tmp_path, "")


def test_missing_column_is_named(tmp_path, taxi_frame):
    text = taxi_frame.drop(columns=["company"]).head(50).to_csv(index=False)
    assert "missing column(s) company" in _bad_run(tmp_path, text)


def test_wrong_column_type_stops_before_training(tmp_path, taxi_frame):
    frame = taxi_frame.head(300).copy()
    frame["trip_miles"] = frame["trip_miles"] + " miles"
    message = _bad_run(tmp_path, frame.to_csv(index=False))
    assert "DataGate failed" in message
    assert "column 'trip_miles' holds STRING values, the model expects FLOAT" in message
    assert "Transform" not in os.listdir(tmp_path / "out" / "pipelines" / "chicago-taxi")
    # The notebooks still find the statistics that explain the stop, and say there is no evaluation.
    found = outputs.find(str(tmp_path / "out"), "taxi")
    assert data.statistics(found)["train"].datasets[0].num_examples > 0
    with pytest.raises(outputs.OutputNotFound, match="1 run.* but no evaluation: every run stopped before the Evaluator"):
        found.latest_evaluation()
