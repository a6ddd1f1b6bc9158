"""IOB-constrained Viterbi decoding of the tagger's per-token probabilities."""

import itertools

import numpy as np
import tensorflow as tf

from models.ner.decoding import iob_transitions, viterbi

TAGS = ["<pad>", "O", "B-geo", "I-geo", "B-per", "I-per"]
ALLOWED, FIRST = iob_transitions(TAGS)


def decode(probabilities, length=None):
    p = np.asarray(probabilities, dtype=np.float32)[None]
    length = p.shape[1] if length is None else length
    mask = tf.constant([[i < length for i in range(p.shape[1])]])
    ids = viterbi(tf.math.log(p + 1e-9), mask, ALLOWED, FIRST).numpy()[0]
    return [TAGS[i] for i in ids[:length]]


def test_transitions_follow_iob():
    allowed = {(TAGS[a], TAGS[b]) for a, b in zip(*np.nonzero(ALLOWED))}
    assert ("B-geo", "I-geo") in allowed and ("I-geo", "I-geo") in allowed
    assert ("O", "I-geo") not in allowed and ("B-per", "I-geo") not in allowed
    assert not any(b == "<pad>" for _, b in allowed)
    assert [TAGS[i] for i in np.nonzero(FIRST)[0]] == ["O", "B-geo", "B-per"]


def test_broken_entities_are_repaired_by_the_best_allowed_path():
    #           pad  O    B-geo I-geo B-per I-per
    orphan = [[0, .6, .3, 0, .1, 0], [0, .2, 0, .7, 0, .1]]
    assert decode(orphan) == ["B-geo", "I-geo"]  # argmax says O I-geo
    mixed = [[0, .1, .5, 0, .4, 0], [0, .1, 0, .2, 0, .7]]
    assert decode(mixed) == ["B-per", "I-per"]  # argmax says B-geo I-per
    first = [[0, .3, 0, .7, 0, 0]]
    assert decode(first) == ["O"], "a sentence cannot start inside an entity"


def test_matches_exhaustive_search_and_ignores_padding():
    rng = np.random.default_rng(0)
    for length in (1, 2, 4):
        p = rng.dirichlet(np.ones(len(TAGS)), size=length + 2)
        best = max(
            (path for path in itertools.product(range(1, len(TAGS)), repeat=length)
             if FIRST[path[0]] and all(ALLOWED[a, b] for a, b in zip(path, path[1:]))),
            key=lambda path: sum(np.log(p[i, t] + 1e-9) for i, t in enumerate(path)),
        )
        assert decode(p, length) == [TAGS[t] for t in best]


def test_empty_batch_rows():
    ids = viterbi(tf.zeros([3, 0, len(TAGS)]), tf.zeros([3, 0], tf.bool), ALLOWED, FIRST)
    assert ids.shape == (3, 0)
