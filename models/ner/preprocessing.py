"""tf.Transform preprocessing for the NER tagger, and helpers shared with serving.

Every output is a ragged sequence (a SparseTensor) of per-token ids; 0 is kept
free for padding, so the model can mask it.
"""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from models.ner import features
from models.ner.metrics import TYPE_SPACE

_TOKEN_VOCAB = "tokens"
_SUFFIX_VOCAB = "suffixes"
POS_VOCAB = "pos"
TAG_VOCAB = "tags"


def token_shapes(tokens: tf.Tensor) -> tf.Tensor:
    """The index in `features.SHAPES` of each token's shape (never 0, the pad)."""
    shapes = [
        ("lower", r"[\p{Ll}]+"),
        ("title", r"\p{Lu}[\p{Ll}'\-]*"),
        ("upper", r"[\p{Lu}'\-]+"),
        ("digit", r"[\pN.,:/\-]*\pN[\pN.,:/\-]*"),
        ("punct", r"[^\pL\pN]+"),
    ]
    ids = tf.fill(tf.shape(tokens), tf.constant(features.SHAPES.index("mixed"), tf.int64))
    for name, pattern in reversed(shapes):
        ids = tf.where(
            tf.strings.regex_full_match(tokens, pattern),
            tf.constant(features.SHAPES.index(name), tf.int64),
            ids,
        )
    return ids


def suffixes(lowered: tf.Tensor) -> tf.Tensor:
    """The last three characters of each lower-cased token."""
    return tf.strings.regex_replace(lowered, r"^.*(.{3})$", r"\1")


def char_ids(tokens: tf.sparse.SparseTensor) -> tf.sparse.SparseTensor:
    """CHARS_PER_TOKEN hashed character ids per token (0 pads short tokens),
    flattened along the sentence: [batch, tokens * CHARS_PER_TOKEN]."""
    width = features.CHARS_PER_TOKEN
    chars = tf.strings.unicode_split(tokens.values, "UTF-8")
    ids = tf.strings.to_hash_bucket_fast(chars, features.CHAR_BUCKETS - 1) + 1
    dense = ids.to_tensor(default_value=0, shape=[None, width])
    row = tf.repeat(tokens.indices[:, 0], width)
    column = tf.reshape(tokens.indices[:, 1:2] * width + tf.range(width, dtype=tf.int64), [-1])
    return tf.sparse.SparseTensor(
        tf.stack([row, column], axis=1),
        tf.reshape(dense, [-1]),
        tokens.dense_shape * tf.constant([1, width], tf.int64),
    )


def encode_iob(tags: tf.Tensor) -> tf.Tensor:
    """IOB codes of tag strings: 0 for O, prefix * TYPE_SPACE + type hash else
    (prefix 1 = B, 2 = I); the metric decodes chunks from them without knowing
    the tag vocabulary."""
    prefix = tf.where(
        tf.strings.regex_full_match(tags, r"B-.+"),
        tf.constant(1, tf.int64),
        tf.where(tf.strings.regex_full_match(tags, r"I-.+"), tf.constant(2, tf.int64), tf.constant(0, tf.int64)),
    )
    kind = tf.strings.to_hash_bucket_fast(tf.strings.regex_replace(tags, r"^[BI]-", ""), TYPE_SPACE)
    return tf.where(prefix > 0, prefix * TYPE_SPACE + kind, tf.zeros_like(prefix))


def _map_values(sparse: tf.sparse.SparseTensor, fn) -> tf.sparse.SparseTensor:
    return tf.sparse.SparseTensor(sparse.indices, fn(sparse.values), sparse.dense_shape)


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict = None) -> Dict[str, tf.Tensor]:
    """Token, shape, suffix and tag ids per token (and POS tag ids where the
    data has POS tags), plus IOB codes for TFMA."""
    hparams = (custom_config or {}).get("hyperparameters", {})
    tokens = inputs[features.TOKENS_KEY]
    lowered = _map_values(tokens, tf.strings.lower)
    outputs = {
        features.TOKEN_IDS: _map_values(
            tft.compute_and_apply_vocabulary(
                lowered,
                frequency_threshold=hparams.get("min_token_count", 2),
                num_oov_buckets=1,
                vocab_filename=_TOKEN_VOCAB,
            ),
            lambda ids: ids + 1,
        ),
        features.SUFFIX_IDS: _map_values(
            tft.compute_and_apply_vocabulary(
                _map_values(lowered, suffixes),
                frequency_threshold=hparams.get("min_token_count", 2),
                num_oov_buckets=1,
                vocab_filename=_SUFFIX_VOCAB,
            ),
            lambda ids: ids + 1,
        ),
        features.SHAPE_IDS: _map_values(tokens, token_shapes),
        features.CHAR_IDS: char_ids(tokens),
    }
    if features.POS_KEY in inputs:
        outputs[features.POS_IDS] = _map_values(
            tft.compute_and_apply_vocabulary(inputs[features.POS_KEY], num_oov_buckets=1, vocab_filename=POS_VOCAB),
            lambda ids: ids + 1,
        )
    tags = inputs[features.TAGS_KEY]
    outputs[features.TAG_IDS] = _map_values(
        tft.compute_and_apply_vocabulary(tags, num_oov_buckets=1, vocab_filename=TAG_VOCAB),
        lambda ids: ids + 1,
    )
    outputs[features.ENTITY_CODES] = _map_values(tags, encode_iob)
    return outputs


def has_pos_ids(tf_transform_output: tft.TFTransformOutput) -> bool:
    """Whether the data had POS tags, so the transform made POS ids."""
    return features.POS_IDS in tf_transform_output.transformed_feature_spec()


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput) -> Dict[str, int]:
    """Number of ids of each id feature, padding and out-of-vocabulary included."""
    sizes = {
        features.TOKEN_IDS: tf_transform_output.vocabulary_size_by_name(_TOKEN_VOCAB) + 2,
        features.SUFFIX_IDS: tf_transform_output.vocabulary_size_by_name(_SUFFIX_VOCAB) + 2,
        features.SHAPE_IDS: len(features.SHAPES),
        features.CHAR_IDS: features.CHAR_BUCKETS,
        features.TAG_IDS: tf_transform_output.vocabulary_size_by_name(TAG_VOCAB) + 2,
    }
    if has_pos_ids(tf_transform_output):
        sizes[features.POS_IDS] = tf_transform_output.vocabulary_size_by_name(POS_VOCAB) + 2
    return sizes
