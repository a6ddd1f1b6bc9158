"""What a pipeline run produced, read back from ML Metadata.

The runners print this after a run; notebooks and tests use it to find the
latest evaluation and pushed model without hand-copied paths.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2


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
        lines += [f"  {name:>16}: {value:.4f}" for name, value in self.metrics.items()]
        lines.append(
            f"  pushed model: {self.pushed_model}"
            if self.pushed_model
            else "  pushed model: none (only a blessed model is pushed)"
        )
        return "\n".join(lines)


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _custom_int(artifact: metadata_store_pb2.Artifact, key: str) -> Optional[int]:
    if key not in artifact.custom_properties:
        return None
    return artifact.custom_properties[key].int_value


def sliced_metrics(evaluation_uri: str, names: Sequence[str]) -> List[Tuple[str, Dict[str, float]]]:
    """(slice name, {metric: value}) for every slice of a TFMA evaluation,
    the overall slice first; only the metrics in `names` are kept."""
    result = tfma.load_eval_result(evaluation_uri)
    rows = []
    for slice_key, by_output in result.slicing_metrics:
        flat = {
            name: value
            for by_class in by_output.values()
            for metrics in by_class.values()
            for name, value in metrics.items()
        }
        values = {
            name: float(flat[name].get("doubleValue", flat[name].get("value", 0)))
            for name in names
            if isinstance(flat.get(name), dict)
        }
        label = "Overall" if slice_key == () else ", ".join(f"{k} = {v}" for k, v in slice_key)
        order = [(k, (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))) for k, v in slice_key]
        rows.append((order, label, values))
    rows.sort(key=lambda row: row[0])
    return [(label, values) for _, label, values in rows]


def overall_metrics(evaluation_uri: str, names: Sequence[str]) -> Dict[str, float]:
    """The overall-slice values of `names` in a TFMA evaluation, in that order."""
    for label, values in sliced_metrics(evaluation_uri, names):
        if label == "Overall":
            return {name: values[name] for name in names if name in values}
    return {}


def latest_run(metadata_path: str, pipeline_name: str) -> Optional[str]:
    """Name (run id) of the newest run of `pipeline_name`, or None."""
    store = _store(metadata_path)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return None
    # TFX records each run as a `pipeline_run` child context of the pipeline.
    runs = [c for c in store.get_children_contexts_by_context(pipeline.id) if c.type == "pipeline_run"]
    if not runs:
        return None
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id)).name


def summarize(
    metadata_path: str, pipeline_name: str, headline_metrics: Sequence[str]
) -> RunSummary:
    """Blessing, headline metrics and pushed model of the newest run."""
    store = _store(metadata_path)
    run_id = latest_run(metadata_path, pipeline_name)
    if run_id is None:
        raise LookupError(f"no run of pipeline {pipeline_name!r} in {metadata_path}")
    summary = RunSummary(pipeline_name=pipeline_name, run_id=run_id)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    artifacts: List[metadata_store_pb2.Artifact] = store.get_artifacts_by_context(run.id)
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    for artifact in sorted(artifacts, key=lambda a: a.id):
        kind = type_names.get(artifact.type_id)
        if kind == "ModelEvaluation":
            summary.evaluation_uri = artifact.uri
        elif kind == "ModelBlessing":
            summary.blessed = _custom_int(artifact, "blessed") == 1
        elif kind == "PushedModel" and _custom_int(artifact, "pushed") == 1:
            summary.pushed_model = artifact.custom_properties[
                "pushed_destination"
            ].string_value
    if summary.evaluation_uri:
        summary.metrics = overall_metrics(summary.evaluation_uri, headline_metrics)
    return summary
