"""What a pipeline run produced, read back from ML Metadata.

The runners print this after a run; notebooks and tests use it to find the
latest evaluation and pushed model without hand-copied paths.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.components.util import model_utils
from tfx.types import standard_artifacts


def figure(value: float) -> str:
    """A metric as the runners print it: counts whole, rates to four places."""
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"


def figures(values: Mapping[str, float]) -> str:
    """`auc 0.9224, example_count 686`."""
    return ", ".join(f"{name} {figure(value)}" for name, value in values.items())


def value_text(value: object) -> str:
    """A hyper-parameter value as the runners, tables and registry show it."""
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, list) else str(value)


def disk_size(path: str) -> int:
    """Bytes in a file, or in every file under a folder (0 if neither)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


@dataclasses.dataclass
class RunSummary:
    """The latest run of one pipeline."""

    pipeline_name: str
    run_id: str
    evaluation_uri: Optional[str] = None
    blessed: Optional[bool] = None
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    pushed_model: Optional[str] = None

    def describe(self) -> str:
        """A few human-readable lines for the end of a run."""
        blessing = {True: "BLESSED", False: "NOT blessed", None: "no evaluation"}
        lines = [f"{self.pipeline_name} (run {self.run_id}): model {blessing[self.blessed]}"]
        lines += [f"  {name:>16}: {figure(value)}" for name, value in self.metrics.items()]
        lines.append(
            f"  pushed model: {self.pushed_model}"
            if self.pushed_model
            else "  pushed model: none (only a blessed model is pushed)"
        )
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a pipeline and the live artifacts recorded in it, by type name."""

    run_id: str
    created_ms: int
    artifacts: Mapping[str, Tuple[metadata_store_pb2.Artifact, ...]]

    def latest(self, type_name: str) -> Optional[metadata_store_pb2.Artifact]:
        """The newest artifact of `type_name` in this run, or None."""
        found = self.artifacts.get(type_name, ())
        return found[-1] if found else None


def read_only_store(metadata_path: str) -> metadata_store.MetadataStore:
    """The SQLite ML Metadata store of a local run, opened for reading only."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def is_blessed(blessing: metadata_store_pb2.Artifact) -> bool:
    """TFX's own verdict (`model_utils.is_model_blessed`) on the ML Metadata
    record of a ModelBlessing."""
    wrapped = standard_artifacts.ModelBlessing()
    wrapped.set_mlmd_artifact(blessing)
    return model_utils.is_model_blessed(wrapped)


def is_pushed(pushed: metadata_store_pb2.Artifact) -> bool:
    """Whether a PushedModel record says the Pusher pushed (TFX's `pushed` property)."""
    return "pushed" in pushed.custom_properties and pushed.custom_properties["pushed"].int_value == 1


def pipeline_runs(metadata_path: str, pipeline_name: str) -> List[Run]:
    """Every recorded run of `pipeline_name`, oldest first ([] when none).

    TFX records each run as a `pipeline_run` child context of the pipeline;
    outputs of failed executions are not LIVE and are left out.
    """
    store = read_only_store(metadata_path)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    contexts = sorted(
        (c for c in store.get_children_contexts_by_context(pipeline.id) if c.type == "pipeline_run"),
        key=lambda c: (c.create_time_since_epoch, c.id),
    )
    runs = []
    for context in contexts:
        by_type: Dict[str, List[metadata_store_pb2.Artifact]] = {}
        for artifact in sorted(store.get_artifacts_by_context(context.id), key=lambda a: a.id):
            if artifact.state == metadata_store_pb2.Artifact.LIVE:
                by_type.setdefault(type_names.get(artifact.type_id, ""), []).append(artifact)
        runs.append(
            Run(
                run_id=context.name,
                created_ms=context.create_time_since_epoch,
                artifacts={kind: tuple(found) for kind, found in by_type.items()},
            )
        )
    return runs


SliceKey = Tuple[Tuple[str, object], ...]


def slice_label(slice_key: SliceKey) -> str:
    """'Overall' or 'feature = value, ...', as TFMA's views name slices."""
    return "Overall" if not slice_key else ", ".join(f"{k} = {v}" for k, v in slice_key)


def metric_values(
    result: tfma.EvalResult, names: Optional[Sequence[str]] = None
) -> List[Tuple[SliceKey, Dict[str, float]]]:
    """(slice key, {metric: value}) for every slice of a loaded TFMA result,
    the overall slice first, then by feature and value (numbers in order).

    Keeps the scalar metrics in `names` (all of them when None), including
    TFMA's `<name>_diff` against the baseline when the result has one.
    """
    rows = []
    for slice_key, by_output in result.slicing_metrics:
        flat = {
            name: value
            for by_class in by_output.values()
            for metrics in by_class.values()
            for name, value in metrics.items()
            if isinstance(value, dict) and ("doubleValue" in value or "value" in value)
        }
        values = {
            name: float(flat[name].get("doubleValue", flat[name].get("value", 0)))
            for name in (flat if names is None else names)
            if name in flat
        }
        order = [(k, (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))) for k, v in slice_key]
        rows.append((order, tuple(slice_key), values))
    rows.sort(key=lambda row: row[0])
    return [(key, values) for _, key, values in rows]


def sliced_metrics(evaluation_uri: str, names: Sequence[str]) -> List[Tuple[str, Dict[str, float]]]:
    """(slice name, {metric: value}) for every slice of a TFMA evaluation,
    the overall slice first; only the metrics in `names` are kept."""
    result = tfma.load_eval_result(evaluation_uri)
    return [(slice_label(key), values) for key, values in metric_values(result, names)]


def overall_metrics(evaluation_uri: str, names: Sequence[str]) -> Dict[str, float]:
    """The overall-slice values of `names` in a TFMA evaluation, in that order."""
    for label, values in sliced_metrics(evaluation_uri, names):
        if label == "Overall":
            return {name: values[name] for name in names if name in values}
    return {}


def recorded_artifacts(metadata_path: str, pipeline_name: str, type_name: str) -> List[metadata_store_pb2.Artifact]:
    """Every live artifact of `type_name` recorded in runs of `pipeline_name`, oldest first."""
    if not os.path.exists(metadata_path):
        return []
    found = {a.id: a for run in pipeline_runs(metadata_path, pipeline_name) for a in run.artifacts.get(type_name, ())}
    return [found[i] for i in sorted(found)]


def latest_run(metadata_path: str, pipeline_name: str) -> Optional[str]:
    """Name (run id) of the newest run of `pipeline_name`, or None."""
    runs = pipeline_runs(metadata_path, pipeline_name)
    return runs[-1].run_id if runs else None


def summarize(
    metadata_path: str, pipeline_name: str, headline_metrics: Sequence[str]
) -> RunSummary:
    """Blessing, headline metrics and pushed model of the newest run."""
    runs = pipeline_runs(metadata_path, pipeline_name)
    if not runs:
        raise LookupError(f"no run of pipeline {pipeline_name!r} in {metadata_path}")
    run = runs[-1]
    summary = RunSummary(pipeline_name=pipeline_name, run_id=run.run_id)
    evaluation = run.latest("ModelEvaluation")
    blessing = run.latest("ModelBlessing")
    pushed = run.latest("PushedModel")
    if blessing is not None:
        summary.blessed = is_blessed(blessing)
    if pushed is not None and is_pushed(pushed):
        summary.pushed_model = pushed.custom_properties["pushed_destination"].string_value
    if evaluation is not None:
        summary.evaluation_uri = evaluation.uri
        summary.metrics = overall_metrics(evaluation.uri, headline_metrics)
    return summary
