"""Pushed model versions and where each came from, read from ML Metadata.

A version is what the Pusher (or a rollback) wrote under the model's TF
Serving base path, recorded as a PushedModel. Its lineage is followed through
the executions' input and output events: Pusher → the Model and its
ModelBlessing → the Trainer (code version, hyper-parameters, transform graph,
schema) and the Evaluator (metrics) → Transform → ExampleGen (data path,
span) and SchemaGen → StatisticsGen.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from taxi_pipeline.contract.definition import ModelDefinition
from taxi_pipeline.records import metadata, tfma_results
from taxi_pipeline.contract import base_path

Artifact = metadata_store_pb2.Artifact
Execution = metadata_store_pb2.Execution
_INPUTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
ROLLBACK_TYPE = "taxi_pipeline.registry.Rollback"


class RegistryError(ValueError):
    """The registry cannot answer as asked: no metadata, an unknown version..."""


@dataclasses.dataclass
class Step:
    """One execution in a version's lineage and the artifact it is shown by."""

    name: str  # what the step is: data, statistics, schema, transform, model, evaluation, push
    execution: Optional[Execution]
    artifact: Optional[Artifact]
    key: str = ""  # the artifact's output key, for its one-line description
    type_name: str = ""


@dataclasses.dataclass
class ModelVersion:
    """One pushed version of a model."""

    model: str
    version: str
    pushed_at: str
    destination: str
    run_id: str
    blessed: bool
    metrics: Dict[str, float]
    hyperparameters: Dict[str, Any]
    code_version: str
    data: str
    model_uri: str = ""
    rollback_of: Optional[str] = None
    serving: bool = False
    lineage: List[Step] = dataclasses.field(default_factory=list)


class _Graph:
    """Small helpers over an ML Metadata store: producers, inputs, outputs."""

    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self.artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self.execution_types = {t.id: t.name for t in store.get_execution_types()}

    def producer(self, artifact: Artifact) -> Optional[Execution]:
        events = [e for e in self.store.get_events_by_artifact_ids([artifact.id]) if e.type in _OUTPUTS]
        if not events:
            return None
        return self.store.get_executions_by_id([max(e.execution_id for e in events)])[0]

    def _events(self, execution: Execution, types) -> Dict[str, List[Artifact]]:
        events = [e for e in self.store.get_events_by_execution_ids([execution.id]) if e.type in types and e.path.steps]
        by_id = {a.id: a for a in self.store.get_artifacts_by_id([e.artifact_id for e in events])}
        found: Dict[str, List[Artifact]] = {}
        for event in events:
            found.setdefault(event.path.steps[0].key, []).append(by_id[event.artifact_id])
        return found

    def inputs(self, execution: Execution) -> Dict[str, List[Artifact]]:
        return self._events(execution, _INPUTS)

    def outputs(self, execution: Execution) -> Dict[str, List[Artifact]]:
        return self._events(execution, _OUTPUTS)

    def input(self, execution: Optional[Execution], key: str) -> Optional[Artifact]:
        found = self.inputs(execution).get(key) if execution else None
        return found[0] if found else None

    def type_name(self, artifact: Artifact) -> str:
        return self.artifact_types.get(artifact.type_id, "")


def _property(item, name: str) -> str:
    value = item.custom_properties.get(name) if name in item.custom_properties else item.properties.get(name)
    if value is None:
        return ""
    return value.string_value or (str(value.int_value) if value.HasField("int_value") else "")


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")


def _trainer_settings(graph: _Graph, trainer: Optional[Execution]) -> Tuple[Dict[str, Any], str]:
    """(hyper-parameters the Trainer trained with, code version) of a Trainer run."""
    if trainer is None:
        return {}, ""
    config = json.loads(_property(trainer, "custom_config") or "{}")
    values = dict(config.get("hyperparameters", {}))
    tuned = graph.input(trainer, "hyperparameters")
    if tuned is not None:
        path = os.path.join(tuned.uri, "best_hyperparameters.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                values.update(json.load(f).get("values", {}))
    return values, config.get("code_version", "")


def _data(example_gen: Optional[Execution], examples: Optional[Artifact]) -> str:
    """The ExampleGen's input path and the span it read."""
    data = _property(example_gen, "input_base") if example_gen else ""
    if examples is not None and _property(examples, "span"):
        data += f" (span {_property(examples, 'span')})"
    return data


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """What a Trainer run trained with."""

    hyperparameters: Dict[str, Any]
    code_version: str
    data: str


def run_settings(metadata_path: str, pipeline_name: str, run_id: str) -> TrainingSettings:
    """Hyper-parameters, code version and data of the model trained (or
    taken from the cache) in run `run_id`; empty when the run trained none."""
    store = metadata.read_only_store(metadata_path)
    graph = _Graph(store)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    trained = [a for a in store.get_artifacts_by_context(run.id) if graph.type_name(a) == "Model"] if run else []
    if not trained:
        return TrainingSettings({}, "", "")
    trainer = graph.producer(max(trained, key=lambda a: a.id))
    hyperparameters, code_version = _trainer_settings(graph, trainer)
    transform_graph = graph.input(trainer, "transform_graph")
    examples = graph.input(graph.producer(transform_graph), "examples") if transform_graph else None
    return TrainingSettings(hyperparameters, code_version, _data(graph.producer(examples) if examples else None, examples))


def _lineage(graph: _Graph, pushed: Artifact, push: Execution, headline: List[str]):
    """(steps, blessed, metrics, hyper-parameters, code version, data, Model
    artifact URI) of a push."""
    model = graph.input(push, "model")
    blessing = graph.input(push, "model_blessing")
    trainer = graph.producer(model) if model else None
    evaluator = graph.producer(blessing) if blessing else None
    transform_graph = graph.input(trainer, "transform_graph")
    transform = graph.producer(transform_graph) if transform_graph else None
    examples = graph.input(transform, "examples")
    example_gen = graph.producer(examples) if examples else None
    schema = graph.input(trainer, "schema")
    schema_gen = graph.producer(schema) if schema else None
    statistics = graph.input(schema_gen, "statistics")
    evaluation = (graph.outputs(evaluator).get("evaluation") or [None])[0] if evaluator else None
    model_run = (graph.outputs(trainer).get("model_run") or [None])[0] if trainer else None
    data = _data(example_gen, examples)
    steps = [
        Step("data", example_gen, examples, "examples", "Examples"),
        Step("statistics", graph.producer(statistics) if statistics else None, statistics, "statistics", "ExampleStatistics"),
        Step("schema", schema_gen, schema, "schema", "Schema"),
        Step("transform", transform, transform_graph, "transform_graph", "TransformGraph"),
        Step("model", trainer, model_run or model, "model_run", "ModelRun"),
        Step("evaluation", evaluator, evaluation, "evaluation", "ModelEvaluation"),
        Step("push", push, pushed, "pushed_model", "PushedModel"),
    ]
    blessed = blessing is not None and metadata.is_blessed(blessing)
    metrics = tfma_results.overall_metrics(evaluation.uri, headline) if evaluation is not None else {}
    hyperparameters, code_version = _trainer_settings(graph, trainer)
    return steps, blessed, metrics, hyperparameters, code_version, data, model.uri if model else ""


def _run_of(store: metadata_store.MetadataStore, execution: Execution) -> str:
    runs = [c for c in store.get_contexts_by_execution(execution.id) if c.type == "pipeline_run"]
    return runs[0].name if runs else ""


def versions(metadata_path: str, model: ModelDefinition, serving_dir: Optional[str] = None) -> List[ModelVersion]:
    """Every version of `model` pushed (or rolled back to) and recorded in
    `metadata_path`, oldest first; `serving` marks the newest version folder
    still in `serving_dir`, the one TF Serving's default policy serves."""
    if not os.path.exists(metadata_path):
        raise RegistryError(f"no ML Metadata at {metadata_path}: run a pipeline first (python local_runner.py)")
    store = metadata.read_only_store(metadata_path)
    graph = _Graph(store)
    pipeline = store.get_context_by_type_and_name("pipeline", model.pipeline_name)
    if pipeline is None:
        return []
    pushes = [
        a for a in store.get_artifacts_by_context(pipeline.id)
        if graph.type_name(a) == "PushedModel" and metadata.is_pushed(a)
    ]
    found = []
    for pushed in sorted(pushes, key=lambda a: a.id):
        push, rollback_of = graph.producer(pushed), None
        # A rollback (of a rollback...) leads back to the Pusher's own push.
        while push is not None and graph.execution_types.get(push.type_id) == ROLLBACK_TYPE:
            rollback_of = rollback_of or _property(push, "rollback_of")
            source = graph.input(push, "pushed_model")
            push = graph.producer(source) if source else None
        if push is None:
            continue
        steps, blessed, metrics, hyperparameters, code_version, data, model_uri = _lineage(
            graph, pushed, push, list(model.headline_metrics)
        )
        found.append(ModelVersion(
            model=model.serving_name,
            version=_property(pushed, "pushed_version"),
            pushed_at=_when(pushed.create_time_since_epoch),
            destination=_property(pushed, "pushed_destination"),
            run_id=_run_of(store, push),
            blessed=blessed,
            metrics=metrics,
            hyperparameters=hyperparameters,
            code_version=code_version,
            data=data,
            model_uri=model_uri,
            rollback_of=rollback_of,
            lineage=steps,
        ))
    if serving_dir and os.path.isdir(serving_dir):
        on_disk = base_path.local_versions(serving_dir)
        newest = str(on_disk[-1]) if on_disk else None
        for version in found:
            version.serving = version.version == newest
    return found


def find(found: List[ModelVersion], version: str, model: str) -> ModelVersion:
    """The recorded `version` of `model`, or RegistryError naming the known ones."""
    for candidate in found:
        if candidate.version == version:
            return candidate
    known = ", ".join(v.version for v in found) or "none"
    raise RegistryError(f"{model} has no pushed version {version!r} recorded (known: {known})")


def as_mapping(version: ModelVersion) -> Mapping[str, Any]:
    """The version's fields without its lineage, for JSON output."""
    return {f.name: getattr(version, f.name) for f in dataclasses.fields(version) if f.name != "lineage"}
