"""The NER tagger's training loss: what the adversarial and POS terms are, and that inference is untouched."""

import dataclasses
import warnings

import numpy as np
import pytest

import taxi_pipeline  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from models.ner import crf, features
from models.ner.model import Hyperparameters, build_keras_model

TAGS = ["<pad>", "O", "B-geo", "I-geo", "<oov>"]
SIZES = {
    features.TOKEN_IDS: 12,
    features.SUFFIX_IDS: 9,
    features.SHAPE_IDS: len(features.SHAPES),
    features.CHAR_IDS: features.CHAR_BUCKETS,
    features.TAG_IDS: len(TAGS),
}


def _batch(seed=0, batch=4, tokens=6):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, tokens + 1, size=batch)
    lengths[0] = tokens
    real = np.arange(tokens)[None, :] < lengths[:, None]
    x = {
        features.TOKEN_IDS: np.where(real, rng.integers(1, 11, (batch, tokens)), 0),
        features.SUFFIX_IDS: np.where(real, rng.integers(1, 9, (batch, tokens)), 0),
        features.SHAPE_IDS: np.where(real, rng.integers(1, len(features.SHAPES), (batch, tokens)), 0),
        features.CHAR_IDS: np.repeat(np.where(real, rng.integers(1, 500, (batch, tokens)), 0), features.CHARS_PER_TOKEN, 1),
    }
    # A valid IOB sequence per sentence: O, then B-geo I-geo, repeated.
    y = np.where(real, np.tile([1, 2, 3], tokens)[:tokens][None, :], 0)
    return {k: tf.constant(v, tf.int64) for k, v in x.items()}, tf.constant(y, tf.int64)


def _model(epsilon, **overrides):
    hparams = dataclasses.replace(
        Hyperparameters(), adversarial_epsilon=epsilon, dropout=0.0, word_dropout=0.0, **overrides
    )
    tf.keras.utils.set_random_seed(1)
    return build_keras_model(SIZES, hparams, train_steps=10, tags=TAGS)


def test_adversarial_term_is_the_loss_at_the_features_moved_along_the_gradient():
    """To first order, moving each token's features by epsilon along its own
    gradient raises the loss by epsilon times the sum of the gradients' norms."""
    model = _model(epsilon=1e-3)
    x, y = _batch()
    clean = crf.CrfModel.data_loss(model, x, y, training=True)
    features_, mask = model.embedder(x, training=True)
    with tf.GradientTape() as tape:
        tape.watch(features_)
        again = model.negative_log_likelihood(model.head([features_, mask], training=True), y)
    gradient_norms = tf.norm(tape.gradient(again, features_), axis=-1)
    expected_rise = 1e-3 * float(tf.reduce_sum(gradient_norms))
    total = float(model.data_loss(x, y, training=True))
    assert expected_rise > 0
    assert total - 2 * float(clean) == pytest.approx(expected_rise, rel=0.05)


def test_padding_and_evaluation_see_no_perturbation():
    model = _model(epsilon=5.0)
    x, y = _batch()
    # Evaluation losses and predictions are those of the clean input.
    np.testing.assert_allclose(
        model.data_loss(x, y, training=False), crf.CrfModel.data_loss(model, x, y, training=False)
    )
    features_, mask = model.embedder(x)
    np.testing.assert_array_equal(mask.numpy(), x[features.TOKEN_IDS].numpy() > 0)
    np.testing.assert_allclose(model(x), model.head([features_, mask]), rtol=1e-6)


def test_without_epsilon_training_is_plain_crf_training():
    model = _model(epsilon=0.0)
    x, y = _batch()
    np.testing.assert_allclose(
        model.data_loss(x, y, training=True), crf.CrfModel.data_loss(model, x, y, training=True)
    )


POS_TAGS = 5  # padding, three POS tags, OOV


def _with_pos(x, y):
    """x with POS ids on the real tokens, but unknown (0) on the first sentence's first token."""
    pos = np.where(y.numpy() > 0, (np.arange(y.shape[1]) % 3 + 1)[None, :], 0)
    pos[0, 0] = 0
    return {**x, features.POS_IDS: tf.constant(pos, tf.int64)}


def test_pos_term_is_the_weighted_cross_entropy_of_known_pos_tags():
    sizes = {**SIZES, features.POS_IDS: POS_TAGS}
    tf.keras.utils.set_random_seed(1)
    hparams = dataclasses.replace(Hyperparameters(), adversarial_epsilon=0.0, dropout=0.0, word_dropout=0.0,
                                  pos_weight=0.5)
    model = build_keras_model(sizes, hparams, train_steps=10, tags=TAGS)
    inputs, y = _batch()
    x = _with_pos(inputs, y)
    scores, pos_scores = model.head(model.embedder(inputs))
    assert pos_scores.shape[-1] == POS_TAGS
    pos = x[features.POS_IDS].numpy()
    log_probs = tf.nn.log_softmax(pos_scores).numpy()
    rows, cols = np.nonzero(pos)
    expected = -log_probs[rows, cols, pos[rows, cols]].sum() / len(pos)
    crf_loss = float(model.negative_log_likelihood(scores, y))
    with warnings.catch_warnings():
        # POS ids are a target: the model must not be handed them as an input it ignores.
        warnings.filterwarnings("error", "Input dict contained keys")
        assert float(model.data_loss(x, y, training=True)) == pytest.approx(crf_loss + 0.5 * expected, rel=1e-5)
        # Evaluation and inference see the tag scores only.
        assert float(model.data_loss(x, y, training=False)) == pytest.approx(crf_loss, rel=1e-5)
    np.testing.assert_allclose(model(inputs), scores, rtol=1e-6)


def test_without_pos_ids_or_weight_there_is_no_pos_head():
    for sizes, weight in ((SIZES, 0.5), ({**SIZES, features.POS_IDS: POS_TAGS}, 0.0)):
        hparams = dataclasses.replace(Hyperparameters(), pos_weight=weight)
        model = build_keras_model(sizes, hparams, train_steps=10, tags=TAGS)
        assert model.pos_weight == 0 and len(model.head.outputs) == 1


def test_adversarial_training_still_learns():
    model = _model(epsilon=0.3)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.02))
    x, y = _batch(batch=16)
    before = float(model.data_loss(x, y, training=False))
    model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(60), epochs=1, verbose=0)
    assert float(model.data_loss(x, y, training=False)) < before / 4
