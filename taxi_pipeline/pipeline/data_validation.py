"""Input checks that stop a run early with an error naming the problem.

Two layers: `check_csv_dir` looks at the files before any component runs (cheap,
catches empty or truncated inputs), and `contract_violations` /
`anomaly_descriptions` judge what StatisticsGen and ExampleValidator found, so
the same rules hold wherever the pipeline runs.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from typing import Dict, List, Mapping

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from taxi_pipeline.contract.definition import FLOAT, INT, STRING


class InputDataError(ValueError):
    """The input data does not fit what the model expects."""


# Column types a declared type accepts: a float column whose cells all happen
# to be whole numbers is read as INT, and that is still a valid float column.
_ACCEPTED = {FLOAT: {FLOAT, INT}, INT: {INT}, STRING: {STRING}}


def check_csv_dir(data_dir: str, columns: Mapping[str, str]) -> List[str]:
    """Checks a directory of CSV files before the pipeline reads it.

    Returns the CSV files found. Raises InputDataError when the directory is
    missing or has no CSV file, or a file is empty, has no data row, or lacks
    one of `columns`.
    """
    import tensorflow as tf  # gfile: also gs:// and other TensorFlow file systems

    if not tf.io.gfile.isdir(data_dir):
        raise InputDataError(f"data directory {data_dir!r} does not exist")
    files = sorted(
        os.path.join(data_dir, name)
        for name in tf.io.gfile.listdir(data_dir)
        if name.lower().endswith(".csv")
    )
    if not files:
        raise InputDataError(f"no .csv file in data directory {data_dir!r}")
    for path in files:
        rows = list(csv.reader(io.StringIO(_utf8_head(path))))
        if not rows or not any(cell.strip() for cell in rows[0]):
            raise InputDataError(f"{path}: file is empty (no header row)")
        if len(rows) < 2:
            raise InputDataError(f"{path}: header only, no data rows")
        missing = [c for c in columns if c not in rows[0]]
        if missing:
            raise InputDataError(
                f"{path}: missing column(s) {', '.join(missing)}; "
                f"header has {', '.join(rows[0])}"
            )
    return files


def _utf8_head(path: str, size: int = 1 << 16) -> str:
    """The first `size` bytes of a file as text; CsvExampleGen reads UTF-8 only."""
    import tensorflow as tf  # gfile: also gs:// and other TensorFlow file systems

    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(size)
    try:
        # Incremental: a character cut at the end of `head` is not an error.
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as e:
        raise InputDataError(
            f"{path}: not UTF-8 text (byte 0x{head[e.start]:02x} at offset {e.start}); "
            "re-encode it as UTF-8"
        ) from None


def contract_violations(
    stats: statistics_pb2.DatasetFeatureStatisticsList, columns: Mapping[str, str]
) -> List[str]:
    """What in the statistics breaks the model's column contract.

    A column without a single value in a split has no type to judge (CSV
    readers call it STRING) and is skipped; the CSV header check covers it.
    """
    problems = []
    for dataset in stats.datasets:
        found: Dict[str, str] = {}
        for feature in dataset.features:
            kind = feature.WhichOneof("stats")
            if kind is None or getattr(feature, kind).common_stats.num_non_missing == 0:
                continue
            name = feature.path.step[0] if feature.path.step else feature.name
            found[name] = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
        for column, expected in columns.items():
            actual = found.get(column)
            if actual is not None and actual not in _ACCEPTED[expected]:
                problems.append(
                    f"column {column!r} holds {actual} values, the model expects {expected}"
                )
    return sorted(set(problems))


def anomaly_descriptions(anomalies: anomalies_pb2.Anomalies) -> List[str]:
    """One line per anomalous feature (and dataset-level anomaly) TFDV reported."""
    lines = [
        f"{name}: {info.short_description or info.description}"
        for name, info in sorted(anomalies.anomaly_info.items())
    ]
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        lines.append(f"(dataset): {info.short_description or info.description}")
    return lines
