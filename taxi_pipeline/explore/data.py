"""TFDV results of a run as protos and pandas tables.

TFDV's Facets view fetches its HTML from GitHub at view time; these tables
carry the same numbers and render anywhere.
"""

from __future__ import annotations

import os
from typing import Dict

import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils import display_util
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.components.example_validator import executor as example_validator_executor
from tfx.types import artifact_utils

from taxi_pipeline.explore.outputs import ModelOutputs


def _split_dirs(outputs: ModelOutputs, type_name: str) -> Dict[str, str]:
    """{split: folder} of the newest `type_name` artifact, in the order TFX lists them."""
    artifact = outputs.latest_artifact(type_name)
    # `split_names` is a declared property of these artifact types.
    names = artifact_utils.decode_split_names(artifact.properties["split_names"].string_value)
    return {name: os.path.join(artifact.uri, f"Split-{name}") for name in names}


def statistics(outputs: ModelOutputs) -> Dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    """StatisticsGen's statistics per split (train, eval) of the newest run that has them."""
    return {
        split: tfdv.load_stats_binary(os.path.join(folder, "FeatureStats.pb"))
        for split, folder in _split_dirs(outputs, "ExampleStatistics").items()
    }


def schema(outputs: ModelOutputs) -> schema_pb2.Schema:
    """The schema SchemaGen inferred."""
    return tfdv.load_schema_text(os.path.join(outputs.latest_artifact("Schema").uri, "schema.pbtxt"))


def anomalies(outputs: ModelOutputs) -> Dict[str, anomalies_pb2.Anomalies]:
    """ExampleValidator's anomalies per split."""
    found = {}
    for split, folder in _split_dirs(outputs, "ExampleAnomalies").items():
        proto = anomalies_pb2.Anomalies()
        with open(os.path.join(folder, example_validator_executor.DEFAULT_FILE_NAME), "rb") as f:
            proto.ParseFromString(f.read())
        found[split] = proto
    return found


def _feature_rows(split: str, dataset: statistics_pb2.DatasetFeatureStatistics):
    for feature in dataset.features:
        kind = feature.WhichOneof("stats")
        if kind is None:
            continue
        stats = getattr(feature, kind)
        common = stats.common_stats
        total = common.num_non_missing + common.num_missing
        row = {
            "feature": ".".join(feature.path.step) or feature.name,
            "split": split,
            "type": statistics_pb2.FeatureNameStatistics.Type.Name(feature.type),
            "count": common.num_non_missing,
            "missing %": 100.0 * common.num_missing / total if total else 0.0,
            "values/example": common.avg_num_values,
        }
        if kind == "num_stats":
            row.update(mean=stats.mean, std=stats.std_dev, min=stats.min, median=stats.median,
                       max=stats.max)
        elif kind == "string_stats":
            top = stats.top_values[0] if stats.top_values else None
            row.update(unique=stats.unique, top=top.value if top else None,
                       **{"top freq": top.frequency if top else None})
        yield row


def statistics_table(stats_by_split: Dict[str, statistics_pb2.DatasetFeatureStatisticsList]) -> pd.DataFrame:
    """One row per (feature, split): count, missing, and numeric or string summary."""
    rows = [
        row
        for split, stats in stats_by_split.items()
        for dataset in stats.datasets
        for row in _feature_rows(split, dataset)
    ]
    table = pd.DataFrame(rows)
    return table.sort_values(["feature", "split"], kind="stable").set_index(["feature", "split"])


def anomalies_table(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> pd.DataFrame:
    """Every anomaly ExampleValidator recorded, with its split; empty when the data is clean."""
    frames = []
    for split, found in anomalies_by_split.items():
        frame = display_util.get_anomalies_dataframe(found)
        if len(frame):
            frames.append(frame.assign(split=split))
    if not frames:
        return pd.DataFrame(columns=["split", "Anomaly short description", "Anomaly long description"])
    return pd.concat(frames)
