"""Parsing raw tf.Examples in serving graphs: the declared types, the other
numeric type where no value changes, and clear errors for everything else."""

import random
import re

import pytest
import tensorflow as tf

from taxi_pipeline.modeling.examples import DTYPES, parse_examples
from taxi_pipeline.contract.definition import FLOAT, INT, STRING

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
        ({"count": ("float_list", [1.5])}, "(?s)holding a fraction.*count"),
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


MIXED_COLUMNS = {"a": INT, "b": FLOAT, "c": INT, "s": STRING}


def _mixed_batch(seed: int, size: int):
    """(examples typed at random, the same examples typed as declared)."""
    rng = random.Random(seed)
    sent, declared = [], []
    for _ in range(size):
        mine, theirs = {}, {}
        for name, kind in MIXED_COLUMNS.items():
            if rng.random() < 0.3:
                continue
            count = rng.randint(0, 3)
            if kind == STRING:
                mine[name] = theirs[name] = ("bytes_list", [rng.choice([b"x", b"yz"]) for _ in range(count)])
                continue
            ints = [rng.randint(-50, 50) for _ in range(count)]
            if kind == INT:
                theirs[name] = ("int64_list", ints)
                mine[name] = rng.choice([("int64_list", ints), ("float_list", [float(v) for v in ints])])
            else:
                whole = rng.random() < 0.5
                values = [float(v) if whole else v + 0.25 for v in ints]
                theirs[name] = ("float_list", values)
                mine[name] = ("int64_list", ints) if whole and rng.random() < 0.5 else ("float_list", values)
        if rng.random() < 0.3:
            mine["undeclared"] = rng.choice([("float_list", [0.5]), ("int64_list", [1]), ("bytes_list", [b"?"])])
        sent.append(_example(**mine))
        declared.append(_example(**theirs))
    return tf.constant(sent), tf.constant(declared)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("graph", [False, True])
def test_a_batch_typed_at_random_parses_as_if_typed_as_declared(seed, graph):
    sent, declared = _mixed_batch(seed, 40)
    parse = tf.function(parse_examples, autograph=False) if graph else parse_examples
    parsed = parse(sent, MIXED_COLUMNS)
    expected = tf.io.parse_example(declared, {k: tf.io.VarLenFeature(DTYPES[v]) for k, v in MIXED_COLUMNS.items()})
    for name in MIXED_COLUMNS:
        assert parsed[name].dtype == expected[name].dtype
        for part in ("indices", "values", "dense_shape"):
            assert getattr(parsed[name], part).numpy().tolist() == getattr(expected[name], part).numpy().tolist(), (name, part)


def test_a_fraction_in_a_mixed_batch_names_only_its_feature():
    sent, _ = _mixed_batch(1, 10)
    bad = _example(a=("int64_list", [1]), b=("int64_list", [2]), c=("float_list", [2.0, 0.5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="holding a fraction") as error:
        parse_examples(tf.concat([sent, [bad]], axis=0), MIXED_COLUMNS)
    named = str(error.value).split("whole numbers):")[1]
    assert re.sub(r"[^a-z,]", "", named.replace("b'", "")) == "c"
