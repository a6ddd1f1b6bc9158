"""The tagger's training loss: each step also learns from the worst nearby
version of its own input and, where the data has them, from POS tags.

With a few thousand training sentences the tagger overfits the features of
the words it has seen. Adversarial training (Goodfellow et al. 2015, applied
to text embeddings by Miyato et al. 2017 and to taggers by Yasunaga et al.
2018) adds, at every step, the loss of the same batch with each token's
input features moved a distance `epsilon` in the direction that raises the
loss most (to first order: along the gradient). The model learns tag scores
that do not swing on small changes of a word's features. Inference is
untouched: the perturbation exists only inside the training loss.

POS tags (GMB, CoNLL-2003 and the Kubeflow ner.csv all have them) are a
second target for the same Bi-LSTM: a proper noun, a cardinal number or a
preposition is what entities are made of and stand next to, and learning to
tell them apart gives the small training set more to learn from. Serving
never needs them.
"""

from typing import Optional, Tuple

import tensorflow as tf

from models.ner import crf, features


class AdversarialCrfModel(crf.CrfModel):
    """A CRF tagger built as `head(embedder(inputs))` whose training loss is
    the clean loss plus the loss with every token's features moved by
    `epsilon` (L2, per token) along the clean loss's gradient, plus
    `pos_weight` times the POS tags' cross-entropy per sentence.

    `embedder` maps the model inputs to (features [batch, tokens, width],
    token mask [batch, tokens]); `head` maps that pair to the CRF's per-token
    scores, or to [those scores, POS tag scores], and the training input then
    carries `features.POS_IDS` (0 where unknown); a head without POS scores
    has no POS term, whatever `pos_weight`. Evaluation and inference use the
    clean input and the tag scores only.
    """

    def __init__(
        self, embedder: tf.keras.Model, head: tf.keras.Model, epsilon: float, pos_weight: float = 0.0, **kwargs
    ):
        inputs = embedder.input
        outputs = head(embedder(inputs))
        has_pos = len(head.outputs) > 1
        super().__init__(inputs, outputs[0] if has_pos else outputs, **kwargs)
        self.embedder, self.head = embedder, head
        self.epsilon, self.pos_weight = float(epsilon), float(pos_weight) if has_pos else 0.0

    def _head(self, features_: tf.Tensor, mask: tf.Tensor) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
        """(tag scores, POS tag scores or None) in training."""
        outputs = self.head([features_, mask], training=True)
        if not isinstance(outputs, (list, tuple)):
            return outputs, None
        return outputs[0], outputs[1] if self.pos_weight > 0 else None

    def data_loss(self, x, y, training: bool) -> tf.Tensor:
        # The POS ids are a target, not a model input: Keras would warn that it ignores them.
        inputs = {name: x[name] for name in self.embedder.input}
        if not training or (self.epsilon <= 0 and self.pos_weight <= 0):
            return super().data_loss(inputs, y, training)
        features_, mask = self.embedder(inputs, training=True)
        with tf.GradientTape() as tape:
            tape.watch(features_)
            scores, pos_scores = self._head(features_, mask)
            clean = self.negative_log_likelihood(scores, y)
        loss = clean
        if pos_scores is not None:
            pos = x[features.POS_IDS]
            per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(pos, pos_scores)
            loss += self.pos_weight * tf.reduce_mean(tf.reduce_sum(per_token * tf.cast(pos > 0, tf.float32), axis=1))
        if self.epsilon <= 0:
            return loss
        direction = tf.stop_gradient(tape.gradient(clean, features_))
        moved = features_ + self.epsilon * tf.math.l2_normalize(direction, axis=-1)
        return loss + self.negative_log_likelihood(self._head(moved, mask)[0], y)
