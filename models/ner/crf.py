"""Linear-chain CRF on top of the Bi-LSTM: tag transitions learned with the model.

A softmax per token scores each tag alone; GMB entities are spans, and which
tag may follow which (B-per then I-per, not I-org) carries as much as the word
itself. The CRF adds a learned score for every (previous, current) tag pair
and for every first tag, and trains on the log-likelihood of the whole gold
sequence. IOB's forbidden pairs are fixed at -1e4 so no probability mass goes
to them. Decoding is `decoding.viterbi` over the same scores.
"""

from typing import Dict, Tuple

import numpy as np
import tensorflow as tf

_FORBIDDEN = -1e4


class Transitions(tf.keras.layers.Layer):
    """Owns the learned transition and start scores; passes the per-token scores through."""

    def __init__(self, allowed: np.ndarray, first: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self._penalty = tf.constant(np.where(allowed, 0.0, _FORBIDDEN), tf.float32)
        self._start_penalty = tf.constant(np.where(first, 0.0, _FORBIDDEN), tf.float32)
        size = len(first)
        self.learned = self.add_weight("transitions", (size, size), initializer="zeros")
        self.learned_start = self.add_weight("start", (size,), initializer="zeros")

    def call(self, scores: tf.Tensor) -> tf.Tensor:
        return scores

    def compute_mask(self, inputs, mask=None):
        return None  # the CRF loss masks padding itself

    def scores(self) -> Tuple[tf.Tensor, tf.Tensor]:
        """(transitions[previous, current], start[current]), constraints included."""
        return self.learned + self._penalty, self.learned_start + self._start_penalty


def log_likelihood(
    scores: tf.Tensor, tags: tf.Tensor, mask: tf.Tensor, transitions: tf.Tensor, start: tf.Tensor
) -> tf.Tensor:
    """log P(tags | scores) per sentence, [batch]; `mask` marks real tokens (a prefix)."""
    tags = tf.cast(tags, tf.int32)
    weights = tf.cast(mask, scores.dtype)
    unary = tf.reduce_sum(tf.gather(scores, tags, batch_dims=2) * weights, axis=1)
    pairs = tf.gather_nd(transitions, tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1))
    binary = tf.reduce_sum(pairs * weights[:, 1:], axis=1)
    gold = unary + binary + tf.gather(start, tags[:, 0]) * weights[:, 0]

    def forward(alpha, step):
        step_scores, is_real = step
        moved = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + step_scores
        return tf.where(is_real[:, None], moved, alpha)

    steps = tf.transpose(scores, [1, 0, 2])
    real = tf.transpose(mask, [1, 0])
    alpha = tf.scan(forward, (steps[1:], real[1:]), initializer=steps[0] + start[None])
    final = tf.concat([(steps[0] + start[None])[None], alpha], axis=0)[-1]
    return (gold - tf.reduce_logsumexp(final, axis=-1)) * weights[:, 0]


class CrfModel(tf.keras.Model):
    """A functional tagger whose last layer is `Transitions`, trained on the CRF
    negative log-likelihood per sentence; labels are tag ids, 0 for padding."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the loss: accuracy of the per-token scores alone says little once
        # transitions carry part of the decision (TFMA scores decoded tags).
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def _transitions(self) -> Transitions:
        return next(module for module in self.submodules if isinstance(module, Transitions))

    def transition_scores(self) -> Tuple[tf.Tensor, tf.Tensor]:
        """(transitions, start) with IOB's constraints, as the loss scores sequences."""
        return self._transitions().scores()

    def learned_scores(self) -> Tuple[tf.Tensor, tf.Tensor]:
        """(transitions, start) as learned, for `decoding.viterbi`, which adds the constraints itself."""
        layer = self._transitions()
        return layer.learned, layer.learned_start

    def negative_log_likelihood(self, scores: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Mean over sentences of -log P(y | scores); y is 0 on padding."""
        transitions, start = self.transition_scores()
        return -tf.reduce_mean(log_likelihood(scores, y, y > 0, transitions, start))

    def _loss(self, x, y, training: bool) -> tf.Tensor:
        loss = self.data_loss(x, y, training)
        if self.losses:
            loss += tf.add_n(self.losses)
        return loss

    def data_loss(self, x, y, training: bool) -> tf.Tensor:
        """The loss on the data alone (no regularization terms)."""
        return self.negative_log_likelihood(self(x, training=training), y)

    def _update(self, loss: tf.Tensor) -> Dict[str, tf.Tensor]:
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self._loss(x, y, training=True)
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self._update(loss)

    def test_step(self, data):
        x, y = data
        return self._update(self._loss(x, y, training=False))
