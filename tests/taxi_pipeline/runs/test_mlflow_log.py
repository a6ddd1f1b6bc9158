"""--mlflow_tracking_uri against a real `mlflow server`: the run, its metrics
per slice, the Tuner's trials as child runs and the pushed version in the
model registry, all read back through MLflow's own client."""

import os
import re

import pytest
from mlflow import MlflowClient

import local_runner
from taxi_pipeline.runs.runner_flags import RunnerError


def test_a_tuned_run_its_trials_and_its_pushed_version_are_in_mlflow(tuned, mlflow_server):
    output_dir, tune, _ = tuned
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    (run_id,) = re.findall(r"^chicago-taxi: run (\S+)$", tune.stdout, re.M)
    (mlflow_id,) = re.findall(r"MLflow: run (\w+) in experiment chicago-taxi", tune.stdout)
    experiment = client.get_experiment_by_name("chicago-taxi")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == run_id]
    assert parent.info.run_id == mlflow_id and parent.info.status == "FINISHED"
    assert parent.data.tags["blessed"] == "true" and parent.data.params["flag.tune_trials"] == "2"
    auc = float(re.search(r"^\s+auc: (\S+)$", tune.stdout, re.M).group(1))
    assert parent.data.metrics["auc"] == pytest.approx(auc, abs=5e-5)
    assert [k for k in parent.data.metrics if k.startswith("auc/trip_start_hour_")], "metrics per slice"
    assert {a.path for a in client.list_artifacts(mlflow_id)} == {"model", "tfma"}

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == mlflow_id]
    assert len(children) == 2 and all("score" in r.data.metrics for r in children)
    best = max(children, key=lambda r: r.data.metrics["score"])
    for name in ("dropout", "hidden_units", "learning_rate"):
        assert parent.data.params[f"hp.{name}"] == best.data.params[f"hp.{name}"]

    (pushed,) = re.findall(r"^✓ Pusher +ran .* pushed version (\d+)", tune.stdout, re.M)
    (version,) = [v for v in client.search_model_versions("name='chicago_taxi'") if v.tags["tf_serving_version"] == pushed]
    assert version.run_id == mlflow_id and version.tags["blessed"] == "true"
    assert os.path.isfile(os.path.join(version.tags["tf_serving_path"], "saved_model.pb"))
    # The run without the flag logged nothing.
    assert len(runs) == 3


def test_an_unreachable_tracking_server_stops_before_the_run(tmp_path, taxi_slice_dir):
    with pytest.raises(RunnerError, match="--mlflow_tracking_uri http://127.0.0.1:9: the tracking server does not answer"):
        local_runner.run(["--data", taxi_slice_dir, "--output_dir", str(tmp_path), "--mlflow_tracking_uri", "http://127.0.0.1:9"])
    assert not (tmp_path / "pipelines").exists() and not (tmp_path / "metadata.db").exists()


def test_credentials_in_uris_reach_no_parameter_message_or_lock_file(tmp_path, monkeypatch):
    from taxi_pipeline.runs import mlflow_log
    from taxi_pipeline.runs.layout import OutputLayout

    uri = "http://alice:s3cret-pw@127.0.0.1:9/"
    params = mlflow_log.flag_params({"mlflow_tracking_uri": uri, "train_steps": 5, "tune": False,
                                     "data": "https://storage.example/taxi?X-Goog-Signature=abc123&v=2"})
    assert params == {"flag.train_steps": "5", "flag.data": "https://storage.example/taxi?X-Goog-Signature=***&v=2"}
    with pytest.raises(RunnerError) as refused:
        mlflow_log.check_reachable(uri)
    assert "s3cret-pw" not in str(refused.value) and "http://***@127.0.0.1:9/" in str(refused.value)
    monkeypatch.setattr("sys.argv", ["local_runner.py", "--mlflow_tracking_uri", uri])
    with OutputLayout(str(tmp_path)).exclusive("run"):
        assert "s3cret-pw" not in (tmp_path / ".lock").read_text()


def test_a_local_tracking_store_keeps_its_artifacts_under_the_output_dir(tmp_path, monkeypatch):
    from taxi_pipeline.runs import mlflow_log

    elsewhere = tmp_path / "started_here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = mlflow_log.experiment_id(client, "chicago-taxi", uri, str(tmp_path / "outputs"))
    run = client.create_run(experiment)
    summary = tmp_path / "summary.md"
    summary.write_text("# summary")
    client.log_artifact(run.info.run_id, str(summary), "tfma")
    assert list(elsewhere.iterdir()) == [], "MLflow wrote into the directory the run started in"
    logged = list((tmp_path / "outputs" / "mlruns" / "chicago-taxi").rglob("summary.md"))
    assert len(logged) == 1
