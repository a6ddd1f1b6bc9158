"""Input checks: CSV files before the run, statistics and anomalies during it."""

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from taxi_pipeline.contract.definition import FLOAT, INT, STRING
from taxi_pipeline.pipeline.data_validation import (
    InputDataError,
    anomaly_descriptions,
    check_csv_dir,
    contract_violations,
)

COLUMNS = {"fare": FLOAT, "trip_start_hour": INT, "payment_type": STRING}


def _write(directory, text, name="data.csv"):
    (directory / name).write_text(text)
    return str(directory)


def test_good_csv_dir_lists_its_files(tmp_path):
    _write(tmp_path, "fare,trip_start_hour,payment_type\n1.5,3,Cash\n")
    _write(tmp_path, "ignored", name="notes.txt")
    assert check_csv_dir(str(tmp_path), COLUMNS) == [str(tmp_path / "data.csv")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty"),
        ("fare,trip_start_hour,payment_type\n", "header only, no data rows"),
        ("fare,payment_type\n1.5,Cash\n", "missing column(s) trip_start_hour"),
    ],
)
def test_bad_csv_files_are_named(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(InputDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_csv_dir(path, COLUMNS)


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("fare,trip_start_hour,payment_type\n1.5,3,Caf\u00e9\n".encode("latin-1"))
    with pytest.raises(InputDataError, match=r"data.csv: not UTF-8 text \(byte 0xe9 at offset 43\)"):
        check_csv_dir(str(tmp_path), COLUMNS)


def test_character_cut_at_the_end_of_the_checked_head_is_fine(tmp_path):
    # Only the first 64 KiB are checked: put a two-byte character across that edge.
    head = "fare,trip_start_hour,payment_type\n" + "1.5,3,Cash\n" * 5000 + "1.5,3,"
    head += "x" * ((1 << 16) - 1 - len(head))
    path = _write(tmp_path, head + "\u00e9\n")
    assert check_csv_dir(path, COLUMNS) == [str(tmp_path / "data.csv")]


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        check_csv_dir(str(tmp_path / "nope"), COLUMNS)
    with pytest.raises(InputDataError, match="no .csv file"):
        check_csv_dir(str(tmp_path), COLUMNS)


def _stats(**types):
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add()
    for name, (kind, present) in types.items():
        feature = dataset.features.add()
        feature.path.step.append(name)
        feature.type = statistics_pb2.FeatureNameStatistics.Type.Value(kind)
        holder = feature.string_stats if kind == "STRING" else feature.num_stats
        holder.common_stats.num_non_missing = present
    return stats


def test_contract_accepts_whole_numbers_in_float_column():
    stats = _stats(fare=("INT", 10), trip_start_hour=("INT", 10), payment_type=("STRING", 10))
    assert contract_violations(stats, COLUMNS) == []


def test_contract_names_wrong_types():
    stats = _stats(fare=("STRING", 10), trip_start_hour=("FLOAT", 10), payment_type=("STRING", 10))
    assert contract_violations(stats, COLUMNS) == [
        "column 'fare' holds STRING values, the model expects FLOAT",
        "column 'trip_start_hour' holds FLOAT values, the model expects INT",
    ]


def test_contract_skips_columns_without_values():
    stats = _stats(fare=("STRING", 0), trip_start_hour=("INT", 5), payment_type=("STRING", 5))
    assert contract_violations(stats, COLUMNS) == []


def test_anomalies_are_listed_per_feature():
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["payment_type"].short_description = "Unexpected string values"
    anomalies.anomaly_info["company"].description = "Column dropped"
    anomalies.dataset_anomaly_info.short_description = "Low number of examples"
    assert anomaly_descriptions(anomalies) == [
        "company: Column dropped",
        "payment_type: Unexpected string values",
        "(dataset): Low number of examples",
    ]
    assert anomaly_descriptions(anomalies_pb2.Anomalies()) == []
