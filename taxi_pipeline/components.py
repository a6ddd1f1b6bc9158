"""Custom TFX components shared by every model's pipeline."""

import json
import os

import tensorflow as tf

from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.component.experimental.annotations import (
    InputArtifact,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact, artifact_utils
from tfx.types.standard_artifacts import (
    ExampleAnomalies,
    ExampleStatistics,
    ModelBlessing,
    ModelEvaluation,
)
from tfx.utils import io_utils
from tensorflow_metadata.proto.v0 import anomalies_pb2

from taxi_pipeline import results, validation


class KfpMetrics(artifact.Artifact):
    """Scalar metrics the Kubeflow Pipelines UI shows on the run page."""

    TYPE_NAME = "system.Metrics"


class KfpMarkdown(artifact.Artifact):
    """A Markdown document the Kubeflow Pipelines UI renders on the run page."""

    TYPE_NAME = "system.Markdown"


@component
def DataGate(
    statistics: InputArtifact[ExampleStatistics],
    anomalies: InputArtifact[ExampleAnomalies],
    raw_columns: Parameter[str],
) -> None:
    """Fails the run when the data breaks the model's contract or has anomalies.

    TFX's ExampleValidator only records anomalies and lets training go on; this
    gate sits between it and Transform so bad data never reaches a model. The
    error lists every offending feature. `raw_columns` is the JSON of the model's
    `ModelSpec.raw_columns`.
    """
    columns = json.loads(raw_columns)
    problems = []
    for split in artifact_utils.decode_split_names(statistics.split_names):
        stats = stats_artifact_utils.load_statistics(statistics, split).proto()
        problems += [
            f"[{split}] {p}" for p in validation.contract_violations(stats, columns)
        ]
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(
            artifact_utils.get_split_uri([anomalies], split),
            example_validator_executor.DEFAULT_FILE_NAME,
        )
        found = anomalies_pb2.Anomalies()
        found.ParseFromString(io_utils.read_bytes_file(path))
        problems += [
            f"[{split}] anomaly in {line}"
            for line in validation.anomaly_descriptions(found)
        ]
    if problems:
        raise validation.InputDataError(
            "the input data failed validation, training stopped:\n  "
            + "\n  ".join(problems)
        )


def _write_text(uri: str, name: str, text: str) -> None:
    """KFP reads a Markdown artifact from its URI itself; TFX's local runner
    creates a folder there first, so the file goes inside it then."""
    path = os.path.join(uri, name) if tf.io.gfile.isdir(uri) else uri
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)


@component
def EvaluationSummary(
    evaluation: InputArtifact[ModelEvaluation],
    blessing: InputArtifact[ModelBlessing],
    metrics: OutputArtifact[KfpMetrics],
    summary: OutputArtifact[KfpMarkdown],
    headline_metrics: Parameter[str],
) -> None:
    """Turns the Evaluator's TFMA result into what the Kubeflow run page shows:
    the headline metrics as a metrics artifact, and a Markdown table of every
    slice with the blessing verdict. `headline_metrics` is a JSON list."""
    names = json.loads(headline_metrics)
    blessed = bool(blessing.get_int_custom_property("blessed"))
    overall = results.overall_metrics(evaluation.uri, names)
    for name, value in overall.items():
        metrics.set_float_custom_property(name, value)
    lines = [
        f"## Model {'BLESSED' if blessed else 'NOT blessed'}",
        "",
        "| slice | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for slice_name, values in results.sliced_metrics(evaluation.uri, names):
        cells = [f"{values[n]:.4f}" if n in values else "" for n in names]
        lines.append(f"| {slice_name} | " + " | ".join(cells) + " |")
    _write_text(summary.uri, "summary.md", "\n".join(lines) + "\n")
