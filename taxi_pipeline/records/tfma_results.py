"""TFMA evaluation results as (slice, {metric: value}) rows."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow_model_analysis as tfma


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
