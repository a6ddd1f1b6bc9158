"""What the Kubeflow run page shows of an evaluation (headline metrics and a
Markdown table of every slice with the blessing verdict) and of a tuning
search (a Markdown table of the trials); also written locally."""

import json
import os

import tensorflow as tf
from tfx.components.util import model_utils
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact
from tfx.types.standard_artifacts import ModelBlessing, ModelEvaluation, TunerResults

from taxi_pipeline.modeling.tuning import read_trials
from taxi_pipeline.records import figures, tfma_results


class KfpMetrics(artifact.Artifact):
    """Scalar metrics the Kubeflow Pipelines UI shows on the run page."""

    TYPE_NAME = "system.Metrics"


class KfpMarkdown(artifact.Artifact):
    """A Markdown document the Kubeflow Pipelines UI renders on the run page."""

    TYPE_NAME = "system.Markdown"


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
    blessed = model_utils.is_model_blessed(blessing)
    overall = tfma_results.overall_metrics(evaluation.uri, names)
    for name, value in overall.items():
        metrics.set_float_custom_property(name, value)
    lines = [
        f"## Model {'BLESSED' if blessed else 'NOT blessed'}",
        "",
        "| slice | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for slice_name, values in tfma_results.sliced_metrics(evaluation.uri, names):
        cells = [f"{values[n]:.4f}" if n in values else "" for n in names]
        lines.append(f"| {slice_name} | " + " | ".join(cells) + " |")
    _write_text(summary.uri, "summary.md", "\n".join(lines) + "\n")


@component
def TuningSummary(tuner_results: InputArtifact[TunerResults], summary: OutputArtifact[KfpMarkdown]) -> None:
    """A Markdown table of the Tuner's trials, best first: score and
    hyper-parameters of each, for the Kubeflow run page."""
    trials = read_trials(tuner_results.uri)
    if not trials:
        _write_text(summary.uri, "summary.md", "## Tuning: no trial completed\n")
        return
    names = sorted({name for trial in trials for name in trial} - {"trial_id", "score"})
    lines = [
        f"## Tuning: {len(trials)} trials, best first",
        "",
        "| trial | score | " + " | ".join(names) + " |",
        "|---" * (len(names) + 2) + "|",
    ]
    for trial in trials:
        cells = [figures.value_text(trial.get(name, "")) for name in names]
        lines.append(f"| {trial['trial_id']} | {figures.value_text(trial['score'])} | " + " | ".join(cells) + " |")
    _write_text(summary.uri, "summary.md", "\n".join(lines) + "\n")
