"""A binary classifier's headline metrics in one TFMA pass.

TFMA's own AUC, BinaryAccuracy, Precision, Recall, Calibration and
ExampleCount each run a combiner that converts every example of every slice
through `metric_util.to_label_prediction_example_weight`: on the taxi eval
split that is most of the Evaluator's time.
`BinaryClassification` computes the same six metrics, under the same names and
to the same values, with one combiner that only appends each example's label
and score to arrays. At the end the AUC's calibration histogram is built from
the arrays with numpy, bucketed as TFMA buckets, and handed to TFMA's own AUC
computations (its 10,000 thresholds, interpolated), so the number is TFMA's;
accuracy, precision and recall call a score above 0.5 positive, as TFMA does.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import metrics as tfma_metrics
from tensorflow_model_analysis.metrics import calibration_histogram, metric_types

from taxi_pipeline.modeling.blessing import combiner_per_model_and_output

AUC = "auc"
NAMES = (AUC, "binary_accuracy", "precision", "recall", "calibration", "example_count")
THRESHOLD = 0.5
_COMPACT_EVERY = 1024


class Scores:
    """Labels and scores of the examples seen so far; adds up over examples."""

    def __init__(self):
        self.labels: List[np.ndarray] = []
        self.scores: List[np.ndarray] = []

    def add(self, labels: np.ndarray, scores: np.ndarray) -> None:
        """One example's label and score, or many examples' (same length)."""
        if labels.shape != scores.shape:
            raise ValueError(f"{labels.size} labels for {scores.size} scores: a binary classifier has one score "
                             "per example")
        self.labels.append(labels.astype(np.float32, copy=False))
        self.scores.append(scores.astype(np.float64, copy=False))
        if len(self.labels) >= _COMPACT_EVERY:  # one example at a time: keep few arrays
            self.compact()

    def compact(self) -> "Scores":
        if len(self.labels) > 1:
            self.labels, self.scores = [np.concatenate(self.labels)], [np.concatenate(self.scores)]
        return self

    def __getstate__(self):  # what Beam pickles between bundles: two arrays
        self.compact()
        return self.__dict__

    def merge(self, other: "Scores") -> "Scores":
        other.compact()
        self.compact()
        self.labels += other.labels
        self.scores += other.scores
        return self.compact()

    def metrics(self) -> Dict[str, float]:
        self.compact()
        labels = self.labels[0] if self.labels else np.zeros(0, np.float32)
        scores = self.scores[0] if self.scores else np.zeros(0)
        positive, called = labels > 0.5, scores > THRESHOLD
        tp = float(np.sum(positive & called))
        fp = float(np.sum(~positive & called))
        fn = float(np.sum(positive & ~called))
        n = len(labels)
        return {
            AUC: tfma_auc(labels, scores),
            "binary_accuracy": (n - fp - fn) / n if n else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "calibration": float(scores.sum() / labels.sum()) if labels.sum() else float("nan"),
            "example_count": float(n),
        }


def tfma_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """TFMA's AUC of these labels and scores, from TFMA's own computations."""
    computations = tfma_metrics.AUC().computations()
    histogram_key = computations[0].keys[0]
    # TFMA's bucket of a score (calibration_histogram's _bucket_index): 0 below
    # the range, num_buckets + 1 at or above its end.
    buckets = np.clip(np.floor(scores * calibration_histogram.DEFAULT_NUM_BUCKETS) + 1,
                      0, calibration_histogram.DEFAULT_NUM_BUCKETS + 1).astype(np.int64)
    ids, inverse = np.unique(buckets, return_inverse=True)
    histogram = [
        calibration_histogram.Bucket(int(i), float(pos), float(pred), float(n))
        for i, pos, pred, n in zip(
            ids,
            np.bincount(inverse, weights=labels),
            np.bincount(inverse, weights=scores),
            np.bincount(inverse),
        )
    ]
    metrics = {histogram_key: histogram}
    for derived in computations[1:]:
        metrics.update(derived.result(metrics))
    return float(metrics[computations[-1].keys[0]])


def _values(value, model_name: str) -> np.ndarray:
    """The numbers TFMA holds for this model (a dict keyed by model name when a
    baseline is evaluated too), one per example: one example's, or a slice of
    a batch's (`lean_evaluation`)."""
    if isinstance(value, dict):
        value = value[model_name] if model_name in value else next(iter(value.values()))
    return np.asarray(value).reshape(-1)


class _ScoresCombiner(beam.CombineFn):
    def __init__(self, keys: Dict[str, metric_types.MetricKey]):
        self._keys = keys
        self._model_name = next(iter(keys.values())).model_name

    def create_accumulator(self) -> Scores:
        return Scores()

    def add_input(self, scores: Scores, element: metric_types.StandardMetricInputs) -> Scores:
        scores.add(_values(element.label, self._model_name), _values(element.prediction, self._model_name))
        return scores

    def merge_accumulators(self, accumulators: Iterable[Scores]) -> Scores:
        accumulators = iter(accumulators)
        total = next(accumulators)
        for scores in accumulators:
            total.merge(scores)
        return total

    def compact(self, scores: Scores) -> Scores:
        return scores.compact()

    def extract_output(self, scores: Scores) -> Dict[metric_types.MetricKey, float]:
        values = scores.metrics()
        return {key: values[name] for name, key in self._keys.items()}


def _computations(
    name: str = AUC,
    eval_config=None,
    model_names: Optional[List[str]] = None,
    output_names: Optional[List[str]] = None,
    example_weighted: bool = False,
    **_,
) -> metric_types.MetricComputations:
    if example_weighted:
        raise ValueError("BinaryClassification counts examples unweighted; use TFMA's own metrics with weights")
    return combiner_per_model_and_output(NAMES, _ScoresCombiner, model_names, output_names)


class BinaryClassification(metric_types.Metric):
    """TFMA metric: auc, binary_accuracy, precision, recall, calibration, example_count.

    Named `auc`, so thresholds configured on it apply to the AUC. Reads
    whole batches of a slice as readily as single examples.
    """

    reads_batches = True

    def __init__(self, name: str = AUC):
        super().__init__(_computations, name=name)


metric_types.register_metric(BinaryClassification)
