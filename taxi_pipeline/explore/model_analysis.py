"""TFMA results as pandas tables: what the widgets show, readable offline.

TFMA's own views need a live kernel and Google Charts from the internet; these
tables are saved with the notebook and render on GitHub and in nbconvert HTML.
"""

from __future__ import annotations

import functools
from typing import List, Optional, Sequence, Tuple

import pandas as pd
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.view import view_types

from taxi_pipeline.contract.definition import ModelDefinition
from taxi_pipeline.records import tfma_results
from taxi_pipeline.explore.outputs import Evaluation

_DIFF = "_diff"


def _model_names(result: tfma.EvalResult) -> Tuple[str, Optional[str]]:
    """(candidate, baseline) model names in the result's config; baseline None if absent."""
    candidate, baseline = "", None
    for spec in result.config.model_specs:
        if spec.is_baseline:
            baseline = spec.name
        else:
            candidate = spec.name
    return candidate, baseline


@functools.lru_cache(maxsize=None)
def load(evaluation: Evaluation) -> tfma.EvalResult:
    """The candidate model's result of an evaluation (diffs included when there is a baseline).

    Cached: a notebook's tables, charts and views all read the same results,
    which TFMA would otherwise parse from disk once per use.
    """
    return tfma.load_eval_result(evaluation.uri)


def slicing_columns(result: tfma.EvalResult) -> List[str]:
    """The features the evaluation sliced on, in config order (single-feature specs)."""
    return [
        spec.feature_keys[0]
        for spec in result.config.slicing_specs
        if len(spec.feature_keys) == 1 and not spec.feature_values
    ]


def slice_table(
    result: tfma.EvalResult,
    column: Optional[str] = None,
    names: Optional[Sequence[str]] = None,
) -> pd.DataFrame:
    """One row per slice, one column per metric (no `_diff` columns).

    `column` keeps the slices of that feature, sorted by value; None keeps
    every slice, the overall one first.
    """
    rows = {}
    for key, values in tfma_results.metric_values(result, names):
        if column is not None and [k for k, _ in key] != [column]:
            continue
        label = key[0][1] if column is not None else tfma_results.slice_label(key)
        rows[label] = {n: v for n, v in values.items() if not n.endswith(_DIFF)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = column or "slice"
    return table


def comparison_table(evaluation: Evaluation, names: Sequence[str]) -> Optional[pd.DataFrame]:
    """Overall `names` for candidate and baseline, and their difference.

    None when the evaluation had no baseline (the first blessed model).
    """
    result = load(evaluation)
    _, baseline_name = _model_names(result)
    if baseline_name is None:
        return None
    candidate = dict(tfma_results.metric_values(result, names))[()]
    baseline_result = tfma.load_eval_result(evaluation.uri, model_name=baseline_name)
    baseline = dict(tfma_results.metric_values(baseline_result, names))[()]
    table = pd.DataFrame(
        {
            f"candidate ({evaluation.run_id})": candidate,
            "baseline": baseline,
        }
    )
    table["difference"] = table.iloc[:, 0] - table.iloc[:, 1]
    table.index.name = "metric"
    return table.loc[[n for n in names if n in table.index]]


def _rule(threshold) -> str:
    """A threshold proto as a readable rule."""
    if isinstance(threshold, tfma.GenericValueThreshold):
        parts = []
        if threshold.HasField("lower_bound"):
            parts.append(f">= {threshold.lower_bound.value:g}")
        if threshold.HasField("upper_bound"):
            parts.append(f"<= {threshold.upper_bound.value:g}")
        return "value " + " and ".join(parts)
    direction = tfma.MetricDirection.Name(threshold.direction).lower().replace("_", " ")
    parts = []
    if threshold.HasField("absolute"):
        parts.append(f"{threshold.absolute.value:+g}")
    if threshold.HasField("relative"):
        parts.append(f"{threshold.relative.value:+g} relative")
    return f"change vs baseline >= {' / '.join(parts)} ({direction})"


def thresholds_table(evaluation: Evaluation) -> pd.DataFrame:
    """Every blessing threshold of the evaluation: rule, the candidate's value, verdict.

    A change threshold is only checked when there is a baseline to compare with.
    """
    result = load(evaluation)
    candidate_name, baseline_name = _model_names(result)
    validation = tfma.load_validation_result(evaluation.uri)
    failed = {
        (tuple((k.column, _single_value(k)) for k in v.slice_key.single_slice_keys),
         f.metric_key.name, f.metric_key.is_diff): f.message
        for v in validation.metric_validations_per_slice
        for f in v.failures
    }
    values = dict(tfma_results.metric_values(result))
    thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
        result.config.metrics_specs, result.config
    )
    rows = []
    for key, slices_and_thresholds in thresholds.items():
        if key.model_name not in ("", candidate_name):
            continue
        for slicing_spec, threshold in slices_and_thresholds:
            slice_key = _spec_key(slicing_spec)
            name = key.name + (_DIFF if key.is_diff else "")
            if key.is_diff and baseline_name is None:
                verdict = "not checked (no baseline yet)"
            elif (slice_key, key.name, key.is_diff) in failed:
                verdict = "FAILED: " + failed[(slice_key, key.name, key.is_diff)]
            else:
                verdict = "passed"
            rows.append(
                {
                    "metric": key.name,
                    "slice": tfma_results.slice_label(slice_key),
                    "rule": _rule(threshold),
                    "value": values.get(slice_key, {}).get(name),
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows, columns=["metric", "slice", "rule", "value", "verdict"])


def _single_value(key) -> object:
    kind = key.WhichOneof("kind")
    value = getattr(key, kind)
    return value.decode() if isinstance(value, bytes) else value


def _spec_key(spec) -> tfma_results.SliceKey:
    """The slice key of a fully specified SlicingSpec (overall: ())."""
    if spec is None:
        return ()
    return tuple(sorted(spec.feature_values.items()))


def history_table(evaluations: Sequence[Evaluation], names: Sequence[str]) -> pd.DataFrame:
    """One row per evaluation, oldest first: when, blessed, overall `names`."""
    rows = []
    for evaluation in evaluations:
        overall = dict(tfma_results.metric_values(load(evaluation), names)).get((), {})
        rows.append(
            {"run": evaluation.run_id, "evaluated": evaluation.created, "blessed": evaluation.blessed,
             **{n: overall.get(n) for n in names}}
        )
    return pd.DataFrame(rows).set_index("run")


def time_series(evaluations: Sequence[Evaluation]) -> view_types.EvalResults:
    """The evaluations as one TFMA EvalResults, for `tfma.view.render_time_series`."""
    return tfma.make_eval_results([load(e) for e in evaluations], tfma.MODEL_CENTRIC_MODE)


def registry_table(output_dir: str, model: ModelDefinition) -> pd.DataFrame:
    """Every pushed version of `model` (`python -m taxi_pipeline.registry list`):
    when, blessing and headline metrics, data, code version, hyper-parameters,
    and which version TF Serving serves."""
    from taxi_pipeline.records import lineage
    from taxi_pipeline.runs.layout import OutputLayout

    layout = OutputLayout(output_dir)
    rows = []
    for v in lineage.versions(layout.metadata_path, model, layout.serving_model_dir(model)):
        rows.append({
            "version": v.version, "pushed": v.pushed_at, "serving": "yes" if v.serving else "",
            "blessed": v.blessed, **v.metrics, "data": v.data, "code": v.code_version,
            "hyper-parameters": ", ".join(f"{k}={x}" for k, x in sorted(v.hyperparameters.items())),
            "origin": f"rollback of {v.rollback_of}" if v.rollback_of else f"run {v.run_id}",
        })
    return pd.DataFrame(rows).set_index("version") if rows else pd.DataFrame()
