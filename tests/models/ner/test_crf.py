"""The CRF's sequence log-likelihood, checked against enumerating every tag sequence."""

import itertools

import numpy as np
import tensorflow as tf

from models.ner import crf, decoding

TAGS = ["<pad>", "O", "B-geo", "I-geo"]


def _path_score(scores, path, transitions, start):
    return start[path[0]] + sum(scores[t, tag] for t, tag in enumerate(path)) + sum(
        transitions[a, b] for a, b in zip(path, path[1:])
    )


def test_likelihoods_of_all_sequences_sum_to_one_and_match_their_scores():
    rng = np.random.default_rng(0)
    length, size = 4, len(TAGS)
    scores = rng.normal(size=(length, size)).astype(np.float32)
    transitions = rng.normal(size=(size, size)).astype(np.float32)
    start = rng.normal(size=size).astype(np.float32)
    paths = list(itertools.product(range(size), repeat=length))
    ll = crf.log_likelihood(
        tf.constant(np.repeat(scores[None], len(paths), 0)),
        tf.constant(paths),
        tf.ones((len(paths), length), tf.bool),
        tf.constant(transitions),
        tf.constant(start),
    ).numpy()
    np.testing.assert_allclose(np.exp(ll).sum(), 1.0, rtol=1e-4)
    by_score = np.array([_path_score(scores, p, transitions, start) for p in paths])
    np.testing.assert_allclose(ll - ll.max(), by_score - by_score.max(), atol=1e-4)


def test_padding_is_left_out():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(1, 5, len(TAGS))).astype(np.float32)
    transitions = tf.constant(rng.normal(size=(len(TAGS),) * 2).astype(np.float32))
    start = tf.constant(rng.normal(size=len(TAGS)).astype(np.float32))
    tags = tf.constant([[1, 2, 3, 0, 0]])
    padded = crf.log_likelihood(tf.constant(scores), tags, tags > 0, transitions, start)
    short = crf.log_likelihood(tf.constant(scores[:, :3]), tags[:, :3], tags[:, :3] > 0, transitions, start)
    np.testing.assert_allclose(padded.numpy(), short.numpy(), rtol=1e-5)


def test_forbidden_iob_transitions_get_no_probability():
    layer = crf.Transitions(*decoding.iob_transitions(TAGS))
    transitions, start = layer.scores()
    scores = tf.zeros((1, 2, len(TAGS)))
    o_then_i = crf.log_likelihood(scores, tf.constant([[1, 3]]), tf.ones((1, 2), tf.bool), transitions, start)
    b_then_i = crf.log_likelihood(scores, tf.constant([[2, 3]]), tf.ones((1, 2), tf.bool), transitions, start)
    assert o_then_i.numpy()[0] < -1e3 < b_then_i.numpy()[0]


def test_training_learns_a_transition_the_tokens_alone_do_not_show():
    """Token 2 of every sentence is B-geo or O at random, and token 3 must follow it:
    only the transition scores can get token 3 right."""
    rng = np.random.default_rng(2)
    first = rng.choice([1, 2], size=256)
    tags = np.stack([first, np.where(first == 2, 3, 1)], axis=1)
    inputs = tf.keras.layers.Input((None,), dtype=tf.int64)
    x = tf.keras.layers.Embedding(4, 8)(inputs)
    model = crf.CrfModel(inputs, crf.Transitions(*decoding.iob_transitions(TAGS))(tf.keras.layers.Dense(4)(x)))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    token_ids = np.stack([np.where(first == 2, 1, 2), np.full(256, 3)], axis=1)  # token 1 gives tag 1 away
    model.fit(token_ids, tags, batch_size=32, epochs=10, verbose=0)
    predicted = decoding.viterbi(
        model(token_ids), tf.ones(tags.shape, tf.bool), *decoding.iob_transitions(TAGS), model.learned_scores()
    ).numpy()
    np.testing.assert_array_equal(predicted, tags)
