"""The gate between ExampleValidator and Transform: bad data stops the run."""

import json
import os

from tensorflow_data_validation.utils import anomalies_util
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, ExampleStatistics

from taxi_pipeline.pipeline import data_validation


@component
def DataGate(
    statistics: InputArtifact[ExampleStatistics],
    anomalies: InputArtifact[ExampleAnomalies],
    raw_columns: Parameter[str],
) -> None:
    """Fails the run when the data breaks the model's contract or has anomalies.

    TFX's ExampleValidator only records anomalies and lets training go on; this
    gate sits between it and Transform so bad data never reaches a model. The
    error lists every offending feature. `raw_columns` is the JSON of the model's
    `ModelDefinition.raw_columns`.
    """
    columns = json.loads(raw_columns)
    problems = []
    for split in artifact_utils.decode_split_names(statistics.split_names):
        stats = stats_artifact_utils.load_statistics(statistics, split).proto()
        problems += [
            f"[{split}] {p}" for p in data_validation.contract_violations(stats, columns)
        ]
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(
            artifact_utils.get_split_uri([anomalies], split),
            example_validator_executor.DEFAULT_FILE_NAME,
        )
        found = anomalies_util.load_anomalies_binary(path)
        problems += [
            f"[{split}] anomaly in {line}"
            for line in data_validation.anomaly_descriptions(found)
        ]
    if problems:
        raise data_validation.InputDataError(
            "the input data failed validation, training stopped:\n  "
            + "\n  ".join(problems)
        )
