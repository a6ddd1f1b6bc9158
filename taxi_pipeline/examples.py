"""Raw tf.Examples typed by a model's declared columns: built from CSV-style
rows for clients, and parsed in serving graphs.

The serving signatures of CSV models parse the declared types, and also the
other numeric type where no value changes (an INT column sent as whole
floats, a FLOAT column sent as ints), so a client typed like the data, or
like TFX's own schema of it, is answered.
"""

from typing import Dict, Mapping, Optional

import tensorflow as tf

from taxi_pipeline.model_spec import FLOAT, INT, STRING


def to_tf_example(
    row: Mapping[str, Optional[str]], columns: Mapping[str, str]
) -> tf.train.Example:
    """A tf.Example with one value per non-empty cell of `row` in `columns`.

    Raises ValueError naming the column when a cell does not parse as its type.
    """
    feature = {}
    for name, kind in columns.items():
        cell = row.get(name)
        if cell is None or str(cell).strip() == "":
            continue
        cell = str(cell).strip()
        try:
            if kind == STRING:
                value = tf.train.Feature(bytes_list=tf.train.BytesList(value=[cell.encode()]))
            elif kind == INT:
                value = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(float(cell))]))
            elif kind == FLOAT:
                value = tf.train.Feature(float_list=tf.train.FloatList(value=[float(cell)]))
            else:
                raise ValueError(f"unknown column type {kind!r}")
        except ValueError as e:
            raise ValueError(f"column {name!r}: cannot read {cell!r} as {kind}: {e}") from None
        feature[name] = value
    return tf.train.Example(features=tf.train.Features(feature=feature))


DTYPES = {INT: tf.int64, FLOAT: tf.float32, STRING: tf.string}

# tf.train.Feature's value lists, in the order decoded below.
_LISTS = ("bytes_list", "float_list", "int64_list")
# Which lists a column of each type accepts.
_ACCEPTED = {STRING: (True, False, False), FLOAT: (False, True, True), INT: (False, True, True)}
_ACCEPTED_TEXT = {
    STRING: "bytes_list",
    FLOAT: "float_list or int64_list",
    INT: "int64_list, or float_list of whole numbers",
}


def _decode(serialized: tf.Tensor, message: str, fields, dtypes):
    """Each field of each serialized `message` ([n] strings) as a ragged
    [n, (values)] tensor."""
    # DecodeProto refuses an empty batch: decode one empty message more.
    sizes, values = tf.io.decode_proto(
        tf.concat([serialized, [""]], axis=0), f"tensorflow.{message}", list(fields), list(dtypes),
        descriptor_source="local://",
    )
    return [tf.RaggedTensor.from_tensor(v[:-1], lengths=sizes[:-1, i]) for i, v in enumerate(values)]


def _flat(singles: tf.RaggedTensor) -> tf.Tensor:
    """A [n, (0 or 1)] ragged tensor of messages as [n] ("" for none)."""
    return tf.reshape(singles.to_tensor("", shape=[None, 1]), [-1])


def parse_examples(serialized: tf.Tensor, columns: Mapping[str, str]) -> Dict[str, tf.sparse.SparseTensor]:
    """Each column of a [batch] of serialized tf.Examples as a [batch, n]
    SparseTensor of its declared type, like tf.io.parse_example with
    VarLenFeatures, but an INT or FLOAT column takes either numeric list.

    Features not in `columns` are ignored; a value list of a type the column
    does not accept, a fraction in an INT column, or bytes that are no
    tf.Example, are an InvalidArgumentError naming the problem.
    """
    serialized = tf.reshape(serialized, [-1])
    # String columns parse as usual; that also rejects what is no tf.Example.
    text_columns = {name: tf.io.VarLenFeature(tf.string) for name, kind in columns.items() if kind == STRING}
    parsed = dict(tf.io.parse_example(serialized, text_columns)) if text_columns else {}
    with tf.control_dependencies([v.indices for v in parsed.values()]):
        serialized = tf.identity(serialized)
    batch = tf.shape(serialized, out_type=tf.int64)[0]
    (features,) = _decode(serialized, "Example", ["features"], [tf.string])
    (entries,) = _decode(_flat(features), "Features", ["feature"], [tf.string])
    example_of = entries.value_rowids()  # [entries]
    keys, values = _decode(entries.values, "Features.FeatureEntry", ["key", "value"], [tf.string] * 2)
    keys = _flat(keys)
    lists = _decode(_flat(values), "Feature", _LISTS, [tf.string] * 3)
    has = tf.stack([tf.reshape(l.row_lengths(), [-1]) > 0 for l in lists], axis=1)  # [entries, 3]
    (floats,) = _decode(_flat(lists[1]), "FloatList", ["value"], [tf.float32])
    (ints,) = _decode(_flat(lists[2]), "Int64List", ["value"], [tf.int64])
    checks = []
    for name, kind in columns.items():
        if kind == STRING:
            continue
        mine = tf.equal(keys, name)
        accepted = tf.reduce_any(tf.logical_and(has, tf.constant(_ACCEPTED[kind])), axis=1)
        wrong = tf.logical_and(mine, tf.logical_and(tf.reduce_any(has, axis=1), tf.logical_not(accepted)))
        problem = f"feature {name!r} has a type this model does not accept: it takes {_ACCEPTED_TEXT[kind]}"
        checks.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(wrong)), [problem]))
        if kind == FLOAT:
            own = tf.concat([floats, tf.cast(ints, tf.float32)], axis=1)
        else:
            whole = tf.equal(floats.flat_values, tf.round(floats.flat_values))
            mine_floats = tf.repeat(mine, floats.row_lengths())
            checks.append(
                tf.debugging.Assert(
                    tf.reduce_all(tf.logical_or(whole, tf.logical_not(mine_floats))),
                    [f"feature {name!r} holds a fraction: it takes {_ACCEPTED_TEXT[kind]}"],
                )
            )
            own = tf.concat([ints, tf.cast(floats, tf.int64)], axis=1)
        own = tf.ragged.boolean_mask(own, mine)  # [entries of this feature, (values)]
        rows = tf.gather(tf.boolean_mask(example_of, mine), own.value_rowids())
        positions = tf.range(tf.shape(own.flat_values, out_type=tf.int64)[0]) - tf.gather(
            own.row_starts(), own.value_rowids()
        )
        width = tf.reduce_max(tf.concat([own.row_lengths(), [0]], axis=0))
        parsed[name] = tf.sparse.SparseTensor(tf.stack([rows, positions], axis=1), own.flat_values, [batch, width])
    with tf.control_dependencies(checks):
        return {
            name: tf.sparse.SparseTensor(tf.identity(v.indices), v.values, v.dense_shape)
            for name, v in parsed.items()
        }
