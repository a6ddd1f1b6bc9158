"""A local run in MLflow, for teams that track their models there
(`local_runner.py --mlflow_tracking_uri URI`; nothing touches MLflow without it).

Each pipeline run becomes an MLflow run in the experiment named after the
pipeline: its flags, the hyper-parameters and code version the Trainer used
as parameters; the headline metrics overall and per slice; the TFMA summary
as an artifact; the Tuner's trials as child runs. A pushed version is logged
as the run's `model` artifact and registered as a version of the MLflow
registered model of the same name, tagged with its TF Serving path, version
and blessing. Everything is read back from ML Metadata after the run.
"""

from __future__ import annotations

import os
import re
import time
from typing import Dict, List, Mapping, Optional

from taxi_pipeline.contract.definition import ModelDefinition
from taxi_pipeline.runs import secrets
from taxi_pipeline.runs.runner_flags import RunnerError


def _client(uri: str):
    # Fail in seconds, not after MLflow's default retries (minutes).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def check_reachable(uri: str) -> None:
    """RunnerError unless the tracking server answers (before any run starts)."""
    try:
        _client(uri).search_experiments(max_results=1)
    except Exception as e:  # MLflow raises many types for a bad URI
        raise RunnerError(secrets.redact(
            f"--mlflow_tracking_uri {uri}: the tracking server does not answer ({type(e).__name__}: {e})"
        ).split("\n")[0]) from None


def flag_params(flags: Mapping[str, object]) -> Dict[str, str]:
    """The runner's flags as MLflow parameters: those set, credentials masked,
    and not the tracking URI itself (where the run is logged, not how it ran)."""
    return {f"flag.{k}": secrets.redact(str(v)) for k, v in flags.items()
            if v not in (None, False) and k != "mlflow_tracking_uri"}


def _is_local_store(uri: str) -> bool:
    """Whether MLflow keeps this store's artifacts on this machine by default
    (`./mlruns` of the current directory): a database or folder, not a server."""
    return "://" not in uri or uri.split(":", 1)[0].split("+")[0] in ("sqlite", "file", "mysql", "postgresql", "mssql")


def experiment_id(client, name: str, uri: str, output_dir: str) -> str:
    """The experiment named `name`, created if new; with a local store, its
    artifacts go under `<output_dir>/mlruns` rather than the current directory."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = f"file://{os.path.abspath(os.path.join(output_dir, 'mlruns', name))}" if _is_local_store(uri) else None
    return client.create_experiment(name, artifact_location=location)


def metric_key(name: str, slice_name: str) -> str:
    """`auc` overall, `auc/trip_start_hour_0` per slice (MLflow allows only
    letters, digits, `_-. /` in keys)."""
    if slice_name == "Overall":
        return name
    return f"{name}/" + re.sub(r"[^A-Za-z0-9_\-./ ]", "_", slice_name.replace(" = ", "_").replace(", ", "."))


def log_run(
    uri: str,
    model: ModelDefinition,
    metadata_path: str,
    run_id: str,
    flags: Mapping[str, object],
    output_dir: str,
) -> str:
    """Logs TFX run `run_id` of `model` to MLflow at `uri`; returns the MLflow
    run id. The MLflow run is marked FAILED if logging stops half-way."""
    from mlflow.entities import Metric, Param, RunTag

    from taxi_pipeline.records import lineage
    from taxi_pipeline.records import metadata, tfma_results

    client = _client(uri)
    name = model.pipeline_name
    experiment = experiment_id(client, name, uri, output_dir)
    (run,) = [r for r in metadata.pipeline_runs(metadata_path, name) if r.run_id == run_id]
    mlflow_run = client.create_run(experiment, run_name=run_id, tags={"tfx.run_id": run_id, "tfx.pipeline": name})
    mlflow_id = mlflow_run.info.run_id
    try:
        settings = lineage.run_settings(metadata_path, name, run_id)
        params = {**flag_params(flags),
                  "code_version": settings.code_version, "data": settings.data,
                  **{f"hp.{k}": v for k, v in settings.hyperparameters.items()}}
        now = int(time.time() * 1000)
        metrics: List[Metric] = []
        tags: Dict[str, str] = {}
        evaluation, blessing = run.latest("ModelEvaluation"), run.latest("ModelBlessing")
        if evaluation is not None:
            for slice_name, values in tfma_results.sliced_metrics(evaluation.uri, list(model.headline_metrics)):
                metrics += [Metric(metric_key(k, slice_name), v, now, 0) for k, v in values.items()]
        if blessing is not None:
            tags["blessed"] = str(metadata.is_blessed(blessing)).lower()
        client.log_batch(mlflow_id, metrics=metrics, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        summary = run.latest("system.Markdown")
        if summary is not None and os.path.exists(os.path.join(summary.uri, "summary.md")):
            client.log_artifact(mlflow_id, os.path.join(summary.uri, "summary.md"), "tfma")
        trials = run.latest("TunerResults")
        if trials is not None:
            _log_trials(client, experiment, mlflow_id, trials.uri)
        pushed = run.latest("PushedModel")
        if pushed is not None and metadata.is_pushed(pushed):
            _register(client, model, mlflow_id, pushed, tags.get("blessed", "false"))
    except Exception:
        client.set_terminated(mlflow_id, "FAILED")
        raise
    client.set_terminated(mlflow_id, "FINISHED")
    return mlflow_id


def _log_trials(client, experiment_id: str, parent_id: str, tuner_results_uri: str) -> None:
    from mlflow.entities import Metric, Param

    from taxi_pipeline.modeling.tuning import read_trials

    now = int(time.time() * 1000)
    for trial in read_trials(tuner_results_uri):
        child = client.create_run(
            experiment_id, run_name=f"trial {trial['trial_id']}", tags={"mlflow.parentRunId": parent_id}
        ).info.run_id
        values = {k: v for k, v in trial.items() if k not in ("trial_id", "score")}
        client.log_batch(child, metrics=[Metric("score", float(trial["score"]), now, 0)],
                         params=[Param(f"hp.{k}", str(v)) for k, v in values.items()])
        client.set_terminated(child, "FINISHED")


def _register(client, model: ModelDefinition, run_id: str, pushed, blessed: str) -> Optional[str]:
    """The pushed SavedModel as the run's `model` artifact and a new version
    of the registered model `model.serving_name`, tagged with where TF
    Serving serves it; None when that TF Serving version is registered already."""
    from mlflow.exceptions import MlflowException

    destination = pushed.custom_properties["pushed_destination"].string_value
    version = pushed.custom_properties["pushed_version"].string_value
    try:
        known = client.search_model_versions(f"name='{model.serving_name}'")
    except MlflowException:
        known = []
    if any(v.tags.get("tf_serving_version") == version for v in known):
        return None  # a re-run whose push came from the cache: registered once already
    client.log_artifacts(run_id, destination, "model")
    try:
        client.get_registered_model(model.serving_name)
    except MlflowException:
        client.create_registered_model(model.serving_name, description="Pushed by the TFX pipeline; served by TF Serving")
    artifact_uri = client.get_run(run_id).info.artifact_uri
    registered = client.create_model_version(
        model.serving_name,
        source=f"{artifact_uri}/model",
        run_id=run_id,
        tags={"tf_serving_path": destination, "tf_serving_version": version, "blessed": blessed},
    )
    return registered.version
