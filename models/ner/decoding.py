"""Tag decoding that respects IOB: the best tag sequence in which every I-X
follows a B-X or an I-X, instead of each token's most likely tag on its own.

A per-token argmax can emit "O I-geo" or "B-per I-org", which CoNLL scoring
reads as broken or wrong-typed entities. Viterbi over the model's per-token
scores with forbidden transitions removes exactly those sequences; with a
CRF's learned transition scores (`crf.py`) it finds the CRF's best sequence.
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

_FORBIDDEN = -1e9


def iob_transitions(tags: Sequence[str], padding_id: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(allowed[previous, current], allowed_first[current]) over tag ids.

    `tags[i]` is the tag of id `i`; the padding id is never a real token's tag.
    """
    size = len(tags)
    allowed = np.ones((size, size), dtype=bool)
    first = np.ones(size, dtype=bool)
    for current, tag in enumerate(tags):
        if current == padding_id:
            allowed[:, current] = first[current] = False
        elif tag.startswith("I-"):
            entity = tag[2:]
            first[current] = False
            allowed[:, current] = [previous in (f"B-{entity}", f"I-{entity}") for previous in tags]
    return allowed, first


def viterbi(
    log_probs: tf.Tensor,
    mask: tf.Tensor,
    allowed: np.ndarray,
    first: np.ndarray,
    learned: Optional[Tuple[tf.Tensor, tf.Tensor]] = None,
) -> tf.Tensor:
    """Best allowed tag ids [batch, tokens] for per-token scores [batch, tokens, tags]
    (log-probabilities, or a CRF's scores with its `learned` (transitions, start)).

    `mask` marks real tokens (a prefix of each row); padding keeps the last
    real token's path and gets its tag, which callers mask out.
    """
    length = tf.shape(log_probs)[1]
    # One extra padding step, so that rows of no tokens at all decode too.
    log_probs = tf.pad(log_probs, [[0, 0], [0, 1], [0, 0]])
    mask = tf.pad(mask, [[0, 0], [0, 1]])
    transitions = tf.constant(np.where(allowed, 0.0, _FORBIDDEN), log_probs.dtype)
    start = tf.constant(np.where(first, 0.0, _FORBIDDEN), log_probs.dtype)
    if learned is not None:
        transitions, start = transitions + learned[0], start + learned[1]
    steps = tf.transpose(log_probs, [1, 0, 2])  # [tokens, batch, tags]
    real = tf.transpose(mask, [1, 0])
    size = tf.shape(log_probs)[-1]
    stay = tf.broadcast_to(tf.range(size, dtype=tf.int64), tf.shape(log_probs[:, 0, :], out_type=tf.int32))

    def forward(carry, step):
        score, _ = carry
        scores, is_real = step
        candidates = score[:, :, None] + transitions[None]  # [batch, previous, current]
        best_previous = tf.argmax(candidates, axis=1)
        moved = tf.reduce_max(candidates, axis=1) + scores
        keep = is_real[:, None]
        return tf.where(keep, moved, score), tf.where(keep, best_previous, stay)

    initial = steps[0] + start
    scores, pointers = tf.scan(forward, (steps[1:], real[1:]), initializer=(initial, stay))
    last = tf.argmax(tf.concat([initial[None], scores], axis=0)[-1], axis=-1)  # [batch]

    def backward(current, step_pointers):
        return tf.gather(step_pointers, current, batch_dims=1)

    earlier = tf.scan(backward, pointers, initializer=last, reverse=True)  # tags of tokens 0..T-2
    path = tf.concat([earlier, last[None]], axis=0)
    return tf.transpose(path, [1, 0])[:, :length]
