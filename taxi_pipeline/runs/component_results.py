"""One line on what a finished component produced, read from its ML Metadata
record and output artifacts (rows per split, anomalies, vocabulary sizes,
training figures, blessing, pushed version), for the progress display.

The same line describes a component that ran and one whose outputs came from
the cache: both are read from the artifacts the run recorded.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, List, Optional, Sequence

from ml_metadata.proto import metadata_store_pb2
from tensorflow_data_validation.utils import anomalies_util
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils, standard_artifacts

from taxi_pipeline.modeling import tuning
from taxi_pipeline.modeling.training import SUMMARY_FILE
from taxi_pipeline.records import figures, metadata, tfma_results
from taxi_pipeline.runs.layout import disk_size
from taxi_pipeline.runs.progress import Outcome

Artifact = metadata_store_pb2.Artifact
_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "ran",
    metadata_store_pb2.Execution.CACHED: "cached",
}


def _splits(artifact: Artifact) -> List[str]:
    return artifact_utils.decode_split_names(artifact.properties["split_names"].string_value)


def _count(n: float) -> str:
    return f"{n:,.0f}"


def _examples(artifact: Artifact, _: Sequence[str]) -> str:
    return f"splits {', '.join(_splits(artifact))} ({disk_size(artifact.uri) / 2**20:.1f} MiB)"


def _statistics(artifact: Artifact, _: Sequence[str]) -> str:
    wrapped = standard_artifacts.ExampleStatistics()
    wrapped.set_mlmd_artifact(artifact)
    rows = []
    for split in _splits(artifact):
        stats = stats_artifact_utils.load_statistics(wrapped, split).proto().datasets[0]
        rows.append(f"{split} {_count(stats.num_examples)} rows")
    return ", ".join(rows)


def _schema(artifact: Artifact, _: Sequence[str]) -> str:
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(os.path.join(artifact.uri, "schema.pbtxt"))
    return f"{len(schema.feature)} features"


def _anomalies(artifact: Artifact, _: Sequence[str]) -> str:
    found = []
    for split in _splits(artifact):
        path = os.path.join(artifact.uri, f"Split-{split}", example_validator_executor.DEFAULT_FILE_NAME)
        anomalies = anomalies_util.load_anomalies_binary(path)
        found += [f"{split}: {name}" for name in sorted(anomalies.anomaly_info)]
    return f"{len(found)} anomalies ({'; '.join(found)})" if found else "no anomalies"


def _vocabularies(artifact: Artifact, _: Sequence[str]) -> str:
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(artifact.uri)
    assets = os.path.join(output.transform_savedmodel_dir, "assets")
    names = sorted(os.listdir(assets)) if os.path.isdir(assets) else []
    sizes = [f"{name} {_count(output.vocabulary_size_by_name(name))}" for name in names]
    return "vocabularies: " + ", ".join(sizes) if sizes else "no vocabularies"


def _training(artifact: Artifact, _: Sequence[str]) -> str:
    path = os.path.join(artifact.uri, SUMMARY_FILE)
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        summary = json.load(f)
    shown = {name: v for name, v in summary.items() if name == "loss" or name.startswith("val_")}
    return f"{_count(summary['steps'])} steps, " + figures.figures(shown)


def _evaluation(artifact: Artifact, headline: Sequence[str]) -> str:
    return figures.figures(tfma_results.overall_metrics(artifact.uri, headline))


def _blessing(artifact: Artifact, _: Sequence[str]) -> str:
    return "BLESSED" if metadata.is_blessed(artifact) else "NOT blessed"


def _servable(artifact: Artifact, _: Sequence[str]) -> str:
    return "servable" if metadata.is_blessed(artifact) else "NOT servable"


def _pushed(artifact: Artifact, _: Sequence[str]) -> str:
    if not metadata.is_pushed(artifact):
        return "not pushed"
    destination = artifact.custom_properties["pushed_destination"].string_value
    return f"pushed version {os.path.basename(destination.rstrip('/'))} to {os.path.dirname(destination.rstrip('/'))}"


def _hyperparameters(artifact: Artifact, _: Sequence[str]) -> str:
    path = os.path.join(artifact.uri, tuning.BEST_HYPERPARAMETERS_FILE)
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        values = json.load(f).get("values", {})
    return "best " + ", ".join(f"{name}={figures.value_text(value)}" for name, value in sorted(values.items()))


def _trials(artifact: Artifact, _: Sequence[str]) -> str:
    trials = tuning.read_trials(artifact.uri)
    return f"{len(trials)} trials, best score {figures.value_text(trials[0]['score'])}" if trials else "no trial completed"


# (output key, artifact type) → description, in the order parts are joined.
_DESCRIBE: Dict[tuple, Callable[[Artifact, Sequence[str]], str]] = {
    ("examples", "Examples"): _examples,
    ("statistics", "ExampleStatistics"): _statistics,
    ("schema", "Schema"): _schema,
    ("anomalies", "ExampleAnomalies"): _anomalies,
    ("transform_graph", "TransformGraph"): _vocabularies,
    ("tuner_results", "TunerResults"): _trials,
    ("best_hyperparameters", "HyperParameters"): _hyperparameters,
    ("model_run", "ModelRun"): _training,
    ("blessing", "ModelBlessing"): _blessing,
    ("evaluation", "ModelEvaluation"): _evaluation,
    ("blessing", "InfraBlessing"): _servable,
    ("pushed_model", "PushedModel"): _pushed,
}


def describe(key: str, type_name: str, artifact: Artifact, headline_metrics: Sequence[str] = ()) -> str:
    """One line on an artifact recorded as output `key` ("" for kinds not described)."""
    found = _DESCRIBE.get((key, type_name))
    return found(artifact, headline_metrics) if found else ""


def outcome(
    metadata_path: str, pipeline_name: str, run_id: str, node_id: str, headline_metrics: Sequence[str] = ()
) -> Optional[Outcome]:
    """How node `node_id` ended in run `run_id` and what it produced; None
    when ML Metadata holds no execution of it in that run."""
    store = metadata.read_only_store(metadata_path)
    node = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if node is None or run is None:
        return None
    in_run = {e.id for e in store.get_executions_by_context(run.id)}
    executions = [e for e in store.get_executions_by_context(node.id) if e.id in in_run]
    if not executions:
        return None
    execution = max(executions, key=lambda e: e.id)
    state = _STATES.get(
        execution.last_known_state,
        metadata_store_pb2.Execution.State.Name(execution.last_known_state).lower(),
    )
    outputs = {
        event.artifact_id: event.path.steps[0].key
        for event in store.get_events_by_execution_ids([execution.id])
        if event.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
        and event.path.steps
    }
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    by_kind = {
        (outputs[a.id], type_names.get(a.type_id, "")): a for a in store.get_artifacts_by_id(list(outputs))
    }
    parts = [
        describe(by_kind[kind], headline_metrics) for kind, describe in _DESCRIBE.items() if kind in by_kind
    ]
    return Outcome(state, "; ".join(part for part in parts if part))
