"""tf.Transform preprocessing for the Chicago taxi model.

Runs once over the data in the Transform component; the same graph is saved
with the model, so training and serving see identical features.
"""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from models.taxi import features


def _dense(x: tf.Tensor, default_value) -> tf.Tensor:
    """A [batch, 1] dense tensor from a dense or sparse feature of one value.

    Columns with missing cells arrive as SparseTensors; the gaps are filled with
    `default_value`.
    """
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
            default_value,
        )
    return tf.reshape(x, [-1, 1])


def _present(x: tf.Tensor) -> tf.Tensor:
    """[batch, 1] booleans: whether the example has a value for the feature."""
    if isinstance(x, tf.sparse.SparseTensor):
        ones = tf.SparseTensor(
            x.indices, tf.ones_like(x.values, tf.int32), [x.dense_shape[0], 1]
        )
        return tf.cast(tf.sparse.to_dense(ones, 0), tf.bool)
    return tf.ones_like(tf.reshape(x, [-1, 1]), tf.bool)


def preprocessing_fn(
    inputs: Dict[str, tf.Tensor], custom_config: Dict = None
) -> Dict[str, tf.Tensor]:
    """Maps raw taxi columns to model features and the label."""
    outputs = {}
    for key in features.DENSE_FLOAT_FEATURES:
        value = tf.cast(_dense(inputs[key], 0), tf.float32)
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(
            tf.math.log1p(tf.maximum(value, 0.0))
        )

    for key in features.BUCKET_FEATURES:
        value = tf.cast(_dense(inputs[key], 0), tf.float32)
        bucket = tft.bucketize(value, features.BUCKET_COUNT)
        # Missing coordinates get their own bucket rather than the lowest one.
        outputs[features.transformed_name(key)] = tf.where(
            _present(inputs[key]),
            bucket,
            tf.constant(features.BUCKET_COUNT, tf.int64),
        )

    for key in features.VOCAB_FEATURES:
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            _dense(inputs[key], ""),
            top_k=features.VOCAB_SIZE,
            num_oov_buckets=features.OOV_SIZE,
            vocab_filename=key,
        )

    for key, num_values in features.CATEGORICAL_FEATURES.items():
        ids = tf.cast(_dense(inputs[key], 0), tf.int64)
        outputs[features.transformed_name(key)] = tf.clip_by_value(
            ids, 0, num_values - 1
        )

    fare = tf.cast(_dense(inputs[features.FARE_KEY], 0), tf.float32)
    tips = tf.cast(_dense(inputs[features.TIPS_KEY], 0), tf.float32)
    outputs[features.transformed_name(features.LABEL_KEY)] = tf.cast(
        tips > fare * features.TIP_FRACTION, tf.int64
    )
    return outputs
