"""Raw tf.Examples from CSV-style rows, typed by a model's declared columns.

The serving signatures of CSV models parse exactly these types, so a client
needs the model's `raw_columns` and nothing else.
"""

from typing import Mapping, Optional

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


def parse_spec(columns: Mapping[str, str]) -> dict:
    """The tf.io.parse_example spec for `to_tf_example`'s output."""
    dtypes = {INT: tf.int64, FLOAT: tf.float32, STRING: tf.string}
    return {name: tf.io.VarLenFeature(dtypes[kind]) for name, kind in columns.items()}
