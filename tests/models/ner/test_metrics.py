"""Entity-level scores against hand-worked cases, and the in-graph IOB codes."""

import numpy as np
import pytest
import tensorflow as tf

from models.ner import chunks, metrics
from models.ner.preprocessing import encode_iob


def test_spans_follow_conll_chunking():
    assert chunks.tag_spans(["B-geo", "O", "B-tim", "I-tim"]) == {(0, 1, "geo"), (2, 4, "tim")}
    # I- after O starts a chunk; a type change splits; B- after I- of the same type splits.
    assert chunks.tag_spans(["I-per", "I-per", "I-geo", "B-geo", "I-geo"]) == {
        (0, 2, "per"), (2, 3, "geo"), (3, 5, "geo")
    }
    assert chunks.tag_spans(["O", "O"]) == set()


def test_f1_counts_only_exact_span_and_type():
    gold = [["B-per", "I-per", "O", "B-geo"], ["B-org", "O"]]
    predicted = [["B-per", "O", "O", "B-geo"], ["B-geo", "O"]]
    counts = metrics.count_tags(gold, predicted)
    # Found: geo (correct); per cut short (wrong span); org typed geo (wrong type).
    assert (counts.correct, counts.predicted, counts.gold) == (1, 3, 3)
    values = counts.metrics()
    assert values["entity_precision"] == pytest.approx(1 / 3)
    assert values["entity_recall"] == pytest.approx(1 / 3)
    assert values["entity_f1"] == pytest.approx(1 / 3)
    assert values["token_accuracy"] == pytest.approx(4 / 6)


def test_perfect_and_empty_predictions():
    gold = [["B-tim", "I-tim", "O"]]
    assert metrics.count_tags(gold, gold).metrics()["entity_f1"] == 1.0
    assert metrics.count_tags(gold, [["O", "O", "O"]]).metrics()["entity_f1"] == 0.0


@pytest.mark.parametrize(
    "tags",
    [
        ["B-geo", "O", "B-tim", "I-tim"],
        ["I-per", "I-per", "I-geo", "B-geo", "I-geo"],
        ["O", "B-art", "I-eve", "O"],
    ],
)
def test_codes_decode_to_the_same_spans_as_tags(tags):
    codes = encode_iob(tf.constant(tags)).numpy()
    decoded = metrics.code_spans(list(codes) + [metrics.PAD, metrics.PAD])
    as_positions = lambda spans: sorted((s, e) for s, e, _ in spans)  # noqa: E731
    assert as_positions(decoded) == as_positions(chunks.tag_spans(tags))
    # Same type, same code; different types, different codes.
    kinds = {t[2:]: int(c) % metrics.TYPE_SPACE for t, c in zip(tags, codes) if t != "O"}
    assert len(set(kinds.values())) == len(kinds)
    assert np.all(codes[[t == "O" for t in tags]] == 0)
