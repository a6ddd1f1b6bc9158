"""Adversarial training for the tagger: each step also learns from the worst
nearby version of its own input.

With a few thousand training sentences the tagger overfits the features of
the words it has seen. Adversarial training (Goodfellow et al. 2015, applied
to text embeddings by Miyato et al. 2017 and to taggers by Yasunaga et al.
2018) adds, at every step, the loss of the same batch with each token's
input features moved a distance `epsilon` in the direction that raises the
loss most (to first order: along the gradient). The model learns tag scores
that do not swing on small changes of a word's features. Inference is
untouched: the perturbation exists only inside the training loss.
"""

import tensorflow as tf

from models.ner import crf


class AdversarialCrfModel(crf.CrfModel):
    """A CRF tagger built as `head(embedder(inputs))` whose training loss is
    the clean loss plus the loss with every token's features moved by
    `epsilon` (L2, per token) along the clean loss's gradient.

    `embedder` maps the model inputs to (features [batch, tokens, width],
    token mask [batch, tokens]); `head` maps that pair to the CRF's per-token
    scores. Evaluation and inference use the clean input only.
    """

    def __init__(self, embedder: tf.keras.Model, head: tf.keras.Model, epsilon: float, **kwargs):
        inputs = embedder.input
        super().__init__(inputs, head(embedder(inputs)), **kwargs)
        self.embedder, self.head, self.epsilon = embedder, head, float(epsilon)

    def data_loss(self, x, y, training: bool) -> tf.Tensor:
        if not training or self.epsilon <= 0:
            return super().data_loss(x, y, training)
        features, mask = self.embedder(x, training=True)
        with tf.GradientTape() as tape:
            tape.watch(features)
            clean = self.negative_log_likelihood(self.head([features, mask], training=True), y)
        direction = tf.stop_gradient(tape.gradient(clean, features))
        moved = features + self.epsilon * tf.math.l2_normalize(direction, axis=-1)
        return clean + self.negative_log_likelihood(self.head([moved, mask], training=True), y)
