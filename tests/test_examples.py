"""Parsing raw tf.Examples in serving graphs: the declared types, the other
numeric type where no value changes, and clear errors for everything else."""

import pytest
import tensorflow as tf

from taxi_pipeline.modeling.examples import DTYPES, parse_examples
from taxi_pipeline.pipeline.definition import FLOAT, INT, STRING

COLUMNS = {"count": INT, "price": FLOAT, "name": STRING}


def _example(**features) -> bytes:
    example = tf.train.Example()
    for name, (kind, values) in features.items():
        getattr(example.features.feature[name], kind).value.extend(values)
    return example.SerializeToString()


def _dense(parsed):
    return {k: tf.sparse.to_dense(v).numpy().tolist() for k, v in parsed.items()}


def test_declared_types_parse_as_tf_io_parse_example_does():
    serialized = tf.constant([
        _example(count=("int64_list", [3]), price=("float_list", [1.5, 2.5]), name=("bytes_list", [b"a"])),
        _example(name=("bytes_list", [b"b"]), other=("float_list", [9.0])),
        _example(),
    ])
    spec = {k: tf.io.VarLenFeature(DTYPES[kind]) for k, kind in COLUMNS.items()}
    expected = tf.io.parse_example(serialized, spec)
    parsed = parse_examples(serialized, COLUMNS)
    for name in COLUMNS:
        assert parsed[name].dtype == expected[name].dtype
        assert parsed[name].dense_shape.numpy().tolist() == expected[name].dense_shape.numpy().tolist()
    assert _dense(parsed) == _dense(expected)


def test_whole_floats_for_int_and_ints_for_float():
    parsed = parse_examples(
        tf.constant([_example(count=("float_list", [4.0, -2.0]), price=("int64_list", [7]))]), COLUMNS
    )
    assert _dense(parsed) == {"count": [[4, -2]], "price": [[7.0]], "name": [[]]}
    assert parsed["count"].dtype == tf.int64 and parsed["price"].dtype == tf.float32


def test_empty_batch():
    parsed = parse_examples(tf.constant([], tf.string), COLUMNS)
    assert all(v.dense_shape.numpy().tolist() == [0, 0] for v in parsed.values())


@pytest.mark.parametrize(
    "features, message",
    [
        ({"count": ("float_list", [1.5])}, "'count' holds a fraction"),
        ({"count": ("bytes_list", [b"1"])}, "(?s)type this model does not accept.*count"),
        ({"price": ("bytes_list", [b"1.5"])}, "(?s)type this model does not accept.*price"),
        ({"name": ("int64_list", [1])}, "Key: name"),
    ],
)
def test_other_types_are_invalid_argument_naming_the_feature(features, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        parse_examples(tf.constant([_example(**features)]), COLUMNS)


def test_bytes_that_are_no_example_are_invalid_argument():
    with pytest.raises(tf.errors.InvalidArgumentError):
        parse_examples(tf.constant([b"\x0a\x05\x0a\x03abc"]), COLUMNS)
