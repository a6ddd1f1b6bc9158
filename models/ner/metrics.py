"""Entity-level precision, recall and F1 (CoNLL rules) and token accuracy.

An entity counts as found only when its span and type both match a gold
entity; chunks are read as conlleval reads them (`chunks.py`).

Inside TFMA the tags arrive as IOB codes (see `preprocessing.encode_iob`):
`prefix * TYPE_SPACE + type_hash` with prefix 1 = B and 2 = I, 0 for O, and
-1 for padding, so the metric needs no tag vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence, Set

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from models.ner.chunks import Span, spans, tag_spans
from taxi_pipeline.modeling.blessing import combiner_per_model_and_output

TYPE_SPACE = 1 << 20
PAD = -1

ENTITY_F1 = "entity_f1"
ENTITY_PRECISION = "entity_precision"
ENTITY_RECALL = "entity_recall"
TOKEN_ACCURACY = "token_accuracy"


def code_spans(codes: Sequence[int]) -> Set[Span]:
    """Entity chunks of IOB codes; padding ends the sequence."""
    pairs = []
    for code in codes:
        code = int(code)
        if code == PAD:
            break
        prefix, kind = divmod(code, TYPE_SPACE)
        pairs.append(({1: "B", 2: "I"}.get(prefix, "O"), kind))
    return spans(pairs)


@dataclasses.dataclass
class Counts:
    """What entity and token metrics are computed from; adds up over examples."""

    correct: int = 0
    predicted: int = 0
    gold: int = 0
    tokens_correct: int = 0
    tokens: int = 0

    def add_spans(self, gold: Set[Span], predicted: Set[Span]) -> None:
        self.correct += len(gold & predicted)
        self.gold += len(gold)
        self.predicted += len(predicted)

    def merge(self, other: "Counts") -> "Counts":
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    def metrics(self) -> Dict[str, float]:
        precision = self.correct / self.predicted if self.predicted else 0.0
        recall = self.correct / self.gold if self.gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        accuracy = self.tokens_correct / self.tokens if self.tokens else 0.0
        return {
            ENTITY_F1: f1,
            ENTITY_PRECISION: precision,
            ENTITY_RECALL: recall,
            TOKEN_ACCURACY: accuracy,
        }


def count_tags(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> Counts:
    """Counts over sentences of gold and predicted tag strings."""
    counts = Counts()
    for gold_tags, predicted_tags in zip(gold, predicted):
        counts.add_spans(tag_spans(gold_tags), tag_spans(predicted_tags))
        counts.tokens += len(gold_tags)
        counts.tokens_correct += sum(g == p for g, p in zip(gold_tags, predicted_tags))
    return counts


class _EntityCombiner(beam.CombineFn):
    def __init__(self, keys: Dict[str, metric_types.MetricKey], eval_config):
        self._keys = keys
        self._eval_config = eval_config

    def create_accumulator(self) -> Counts:
        return Counts()

    def add_input(self, counts: Counts, element: metric_types.StandardMetricInputs) -> Counts:
        key = next(iter(self._keys.values()))
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=key.model_name,
            output_name=key.output_name,
            flatten=False,
            squeeze=False,
        ):
            gold = np.asarray(label, dtype=np.int64).reshape(-1)
            pred = np.asarray(prediction, dtype=np.int64).reshape(-1)
            counts.add_spans(code_spans(gold), code_spans(pred))
            real = gold != PAD
            counts.tokens += int(real.sum())
            counts.tokens_correct += int((gold[real] == pred[: len(gold)][real]).sum())
        return counts

    def merge_accumulators(self, accumulators: Iterable[Counts]) -> Counts:
        total = Counts()
        for counts in accumulators:
            total.merge(counts)
        return total

    def extract_output(self, counts: Counts) -> Dict[metric_types.MetricKey, float]:
        values = counts.metrics()
        return {key: values[name] for name, key in self._keys.items()}


def _computations(
    name: str = ENTITY_F1,
    eval_config=None,
    model_names: Optional[List[str]] = None,
    output_names: Optional[List[str]] = None,
    example_weighted: bool = False,
    **_,
) -> metric_types.MetricComputations:
    return combiner_per_model_and_output(
        (ENTITY_F1, ENTITY_PRECISION, ENTITY_RECALL, TOKEN_ACCURACY),
        lambda keys: _EntityCombiner(keys, eval_config),
        model_names,
        output_names,
        example_weighted,
    )


class EntityMetrics(metric_types.Metric):
    """TFMA metric: entity_f1, entity_precision, entity_recall, token_accuracy."""

    def __init__(self, name: str = ENTITY_F1):
        super().__init__(_computations, name=name)


metric_types.register_metric(EntityMetrics)
