"""Raw tf.Examples typed by a model's declared columns: built from CSV-style
rows for clients, and parsed in serving graphs.

The serving signatures of CSV models parse the declared types, and also the
other numeric type where no value changes (an INT column sent as whole
floats, a FLOAT column sent as ints), so a client typed like the data, or
like TFX's own schema of it, is answered.
"""

from typing import Dict, Mapping, Optional

import tensorflow as tf

from taxi_pipeline.contract.definition import FLOAT, INT, STRING


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


def _decode_proto(serialized: tf.Tensor, message: str, fields, dtypes):
    """tf.io.decode_proto of [n] serialized `message`s, also for n = 0:
    ([n, fields] value counts, [n, max count] values per field)."""
    # DecodeProto refuses an empty batch: decode one empty message more, drop it.
    sizes, values = tf.io.decode_proto(
        tf.concat([serialized, [""]], axis=0), f"tensorflow.{message}", list(fields), list(dtypes),
        descriptor_source="local://",
    )
    return sizes[:-1], [v[:-1] for v in values]


def _decode(serialized: tf.Tensor, message: str, fields, dtypes):
    """Each field of each serialized `message` ([n] strings) as a ragged
    [n, (values)] tensor."""
    sizes, values = _decode_proto(serialized, message, fields, dtypes)
    return [tf.RaggedTensor.from_tensor(v, lengths=sizes[:, i]) for i, v in enumerate(values)]


def _decode_single(serialized: tf.Tensor, message: str, fields):
    """Singular message fields of each serialized `message` ([n] strings):
    ([n] strings per field, "" where absent; [n, fields] whether present)."""
    sizes, values = _decode_proto(serialized, message, fields, [tf.string] * len(fields))
    return [v[:, 0] for v in values], sizes > 0


def parse_examples(serialized: tf.Tensor, columns: Mapping[str, str]) -> Dict[str, tf.sparse.SparseTensor]:
    """Each column of a [batch] of serialized tf.Examples as a [batch, n]
    SparseTensor of its declared type, like tf.io.parse_example with
    VarLenFeatures, but an INT or FLOAT column takes either numeric list.

    Features not in `columns` are ignored; a value list of a type the column
    does not accept, a fraction in an INT column, or bytes that are no
    tf.Example, are an InvalidArgumentError naming the problem. Batches typed
    as declared take one ParseExample; decoding the value lists themselves
    runs only for batches that send the other numeric type.
    """
    serialized = tf.reshape(serialized, [-1])
    specs = {name: tf.io.VarLenFeature(DTYPES[kind]) for name, kind in columns.items()}
    # String columns parse as usual; that also rejects what is no tf.Example.
    text = {name: spec for name, spec in specs.items() if columns[name] == STRING}
    parsed = dict(tf.io.parse_example(serialized, text)) if text else {}
    numeric = {name: kind for name, kind in columns.items() if kind != STRING}
    if not numeric:
        return parsed
    with tf.control_dependencies([v.indices for v in parsed.values()]):
        serialized = tf.identity(serialized)
    (features,), _ = _decode_single(serialized, "Example", ["features"])
    sizes, (entries,) = _decode_proto(features, "Features", ["feature"], [tf.string])
    present = tf.sequence_mask(sizes[:, 0], tf.shape(entries)[1])
    example_of = tf.boolean_mask(tf.broadcast_to(tf.range(tf.shape(entries, out_type=tf.int64)[0])[:, None],
                                                 tf.shape(entries, out_type=tf.int64)), present)
    (keys, values), _ = _decode_single(tf.boolean_mask(entries, present), "Features.FeatureEntry", ["key", "value"])
    lists, has = _decode_single(values, "Feature", _LISTS)  # has: [entries, 3]
    match = tf.equal(keys[:, None], tf.constant(list(numeric))[None, :])  # [entries, numeric columns]
    is_int = tf.constant([kind == INT for kind in numeric.values()])
    wrong = tf.logical_and(tf.reduce_any(match, axis=1), has[:, 0])  # bytes for a number
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(wrong)),
        ["features of a type this model does not accept (numbers take float_list or int64_list):",
         tf.strings.reduce_join(tf.boolean_mask(keys, wrong), separator=", ")],
    )
    other = tf.logical_or(  # a float list for an INT column, or ints for a FLOAT one
        tf.logical_and(has[:, 1:2], is_int[None, :]), tf.logical_and(has[:, 2:3], tf.logical_not(is_int)[None, :])
    )
    as_declared = tf.logical_not(tf.reduce_any(tf.logical_and(match, other)))
    with tf.control_dependencies([check]):
        parsed.update(tf.cond(
            as_declared,
            lambda: dict(tf.io.parse_example(serialized, {n: specs[n] for n in numeric})),
            lambda: _either_numeric(serialized, numeric, example_of, keys, match, lists),
        ))
    return parsed


def _either_numeric(serialized, numeric, example_of, keys, match, lists) -> Dict[str, tf.sparse.SparseTensor]:
    """Numeric columns from either list (see parse_examples), all columns at
    once: the graph has the same few ops however many columns there are (built
    per column, this branch was most of the taxi model's export and load time)."""
    names = list(numeric)
    others = len(names)  # the partition of features not declared
    (floats,) = _decode(lists[1], "FloatList", ["value"], [tf.float32])
    (ints,) = _decode(lists[2], "Int64List", ["value"], [tf.int64])
    column = tf.where(
        tf.reduce_any(match, axis=1), tf.argmax(tf.cast(match, tf.int32), axis=1, output_type=tf.int32), others
    )  # [entries]
    int_column = tf.gather(tf.constant([numeric[n] == INT for n in names] + [False]), column)
    fraction = tf.logical_and(int_column, tf.reduce_any(tf.not_equal(floats, tf.round(floats)), axis=1))
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(fraction)),
        ["features holding a fraction (an INT column takes int64_list, or float_list of whole numbers):",
         tf.strings.reduce_join(tf.unique(tf.boolean_mask(keys, fraction)).y, separator=", ")],
    )
    # Every entry's values in both types (an entry has one list, so the two
    # share their row structure); each column takes its declared one.
    as_int = tf.concat([ints, tf.cast(floats, tf.int64)], axis=1)
    as_float = tf.concat([floats, tf.cast(ints, tf.float32)], axis=1)
    entry = as_int.value_rowids()
    positions = tf.range(tf.shape(entry, out_type=tf.int64)[0]) - tf.gather(as_int.row_starts(), entry)
    indices = tf.stack([tf.gather(example_of, entry), positions], axis=1)
    value_column = tf.gather(column, entry)
    index_parts = tf.dynamic_partition(indices, value_column, others + 1)
    value_parts = {
        INT: tf.dynamic_partition(as_int.flat_values, value_column, others + 1),
        FLOAT: tf.dynamic_partition(as_float.flat_values, value_column, others + 1),
    }
    widths = tf.maximum(tf.math.unsorted_segment_max(as_int.row_lengths(), column, others + 1), 0)
    batch = tf.shape(serialized, out_type=tf.int64)[0]
    with tf.control_dependencies([check]):
        return {
            name: tf.sparse.SparseTensor(
                tf.identity(index_parts[i]), value_parts[numeric[name]][i], tf.stack([batch, widths[i]])
            )
            for i, name in enumerate(names)
        }
