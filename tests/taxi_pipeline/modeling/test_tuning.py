"""--tune: TFX's Tuner searches each model's space and the Trainer trains with
what it found; --reuse_tuning trains with the latest search without a new one;
the Kubeflow packages carry the Tuner and the trials table."""

import json
import os
import re

import pytest
import tensorflow as tf
import yaml
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

import kubeflow_runner
import local_runner
from models.taxi.model import Hyperparameters
from taxi_pipeline.runs.runner_flags import RunnerError


def _store(output_dir):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(output_dir, "metadata.db")
    return metadata_store.MetadataStore(config)


def _latest_output(store, node_id, key):
    """The artifact that `node_id`'s newest execution recorded as output `key`."""
    node = store.get_context_by_type_and_name("node", f"chicago-taxi.{node_id}")
    execution = max(store.get_executions_by_context(node.id), key=lambda e: e.id)
    (artifact_id,) = [
        e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
        if e.type == metadata_store_pb2.Event.OUTPUT and e.path.steps[0].key == key
    ]
    return execution, store.get_artifacts_by_id([artifact_id])[0]


def test_the_trainer_trains_with_the_best_trial(tuned):
    output_dir, tune, _ = tuned
    store = _store(output_dir)
    _, results = _latest_output(store, "Tuner", "tuner_results")
    with open(os.path.join(results.uri, "tuner_results.json")) as f:
        trials = json.load(f)
    assert len(trials) == 2 and trials[0]["score"] >= trials[1]["score"]
    _, best = _latest_output(store, "Tuner", "best_hyperparameters")
    with open(os.path.join(best.uri, "best_hyperparameters.txt")) as f:
        values = json.load(f)["values"]
    assert values == {k: v for k, v in trials[0].items() if k not in ("trial_id", "score")}
    # The exported model has the layers the best trial chose, not the defaults.
    _, model = _latest_output(store, "Trainer", "model")
    saved = tf.train.list_variables(os.path.join(model.uri, "Format-Serving", "variables", "variables"))
    kernel = re.compile(r"model/layer_with_weights-(\d+)/kernel/")
    widths = dict(sorted((int(m.group(1)), shape[-1]) for n, shape in saved if (m := kernel.match(n))))
    chosen = Hyperparameters.from_values(values).hidden_units
    assert list(widths.values()) == chosen + [1]
    # Same values, same seed: the Trainer reproduces the best trial's score.
    _, run = _latest_output(store, "Trainer", "model_run")
    with open(os.path.join(run.uri, "training_summary.json")) as f:
        assert json.load(f)["val_auc"] == pytest.approx(trials[0]["score"], abs=1e-6)
    assert "✓ Tuner " in tune.stdout and "2 trials, best score" in tune.stdout
    _, summary = _latest_output(store, "TuningSummary", "summary")
    with open(os.path.join(summary.uri, "summary.md")) as f:
        table = f.read()
    assert table.startswith("## Tuning: 2 trials, best first") and table.count("\n| ") == 3


def test_reuse_tuning_trains_without_searching_again(tuned):
    output_dir, _, reuse = tuned
    assert "Tuner" not in reuse.stdout
    lines = {line.split()[1]: line.split()[2] for line in reuse.stdout.splitlines() if line.startswith("✓ ")}
    assert lines["latest_tuning_resolver"] == "ran" and lines["Trainer"] == "cached"


def test_reuse_tuning_without_a_search_is_a_clear_error(tmp_path, taxi_slice_dir):
    with pytest.raises(RunnerError, match="--reuse_tuning: no tuning result of chicago-taxi in .*run with --tune first"):
        local_runner.run(["--data", taxi_slice_dir, "--output_dir", str(tmp_path), "--reuse_tuning"])
    assert not (tmp_path / "pipelines").exists()


@pytest.mark.parametrize("argv, problem", [
    (["--tune_trials", "3"], "--tune_trials needs --tune"),
    (["--tune", "--reuse_tuning"], "not allowed with argument"),
    (["--tune", "--tune_trials", "0"], "must be a positive integer"),
])
def test_tuning_flag_errors(tmp_path, capsys, argv, problem):
    with pytest.raises(SystemExit):
        local_runner.run(argv + ["--output_dir", str(tmp_path)])
    assert problem in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """name → (package with --tune, package with --reuse_tuning), for every model."""
    out = tmp_path_factory.mktemp("kfp")
    tuned = kubeflow_runner.run(["--pipeline", "all", "--output_dir", str(out / "t"), "--tune", "--tune_trials", "4"])
    reused = kubeflow_runner.run(["--pipeline", "all", "--output_dir", str(out / "r"), "--reuse_tuning"])
    return {os.path.basename(t)[:-5]: (t, r) for t, r in zip(tuned, reused)}


def _tasks(path):
    with open(path) as f:
        return yaml.safe_load(f)["root"]["dag"]["tasks"]


@pytest.mark.parametrize("name", ["chicago-taxi", "ner"])
def test_kubeflow_packages_carry_the_tuner(packages, name):
    tuned, reused = packages[name]
    tasks = _tasks(tuned)
    assert {"Tuner", "TuningSummary"} <= set(tasks)
    source = tasks["Trainer"]["inputs"]["artifacts"]["hyperparameters"]["taskOutputArtifact"]
    assert source == {"outputArtifactKey": "best_hyperparameters", "producerTask": "Tuner"}
    assert json.loads(tasks["Tuner"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])["tune_trials"] == 4
    tasks = _tasks(reused)
    assert "Tuner" not in tasks and any(t.startswith("latest_tuning_resolver") for t in tasks)
