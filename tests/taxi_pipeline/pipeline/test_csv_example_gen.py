"""The Arrow CsvExampleGen writes what TFX's own CsvExampleGen writes.

Both executors run on the same files, the taxi slice and a file of odd cells,
and must write the same tf.Examples (compared parsed, as multisets), split in
the configured proportions.
"""

import collections
import glob
import os

import pytest
import tensorflow as tf
from google.protobuf import json_format
from tfx.components.example_gen import utils
from tfx.components.example_gen.csv_example_gen import executor as tfx_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs

from taxi_pipeline.pipeline import csv_example_gen

ODD_CSV = (
    'name,count,ratio,empty,padded,huge,mixed,spelled\n'
    '"Smith, J.",1,0.5,, 7 ,1,1,+.5\n'
    '"two\nlines",,nan,,8,99999999999999999999,2.5, -Infinity \n'
    '"quoted ""word""",-3,1e3,,  9,3,x,5.\n'
    '\n'
    'plain,+4,inf,,10,4,,1E-2\n'
)


def _run(executor_class, data_dir: str, out_dir: str, input_config=None, output_config=None):
    examples = standard_artifacts.Examples()
    examples.uri = out_dir
    input_config = input_config or utils.make_default_input_config()
    output_config = output_config or utils.make_default_output_config(input_config)
    executor_class().Do(
        {},
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {
            standard_component_specs.INPUT_BASE_KEY: data_dir,
            standard_component_specs.INPUT_CONFIG_KEY: json_format.MessageToJson(input_config),
            standard_component_specs.OUTPUT_CONFIG_KEY: json_format.MessageToJson(output_config),
            standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        },
    )
    return examples


def _split_contents(out_dir: str):
    """Split name -> multiset of deterministically serialized examples."""
    contents = {}
    for split_dir in sorted(glob.glob(os.path.join(out_dir, "Split-*"))):
        records = tf.data.TFRecordDataset(glob.glob(os.path.join(split_dir, "*.gz")), compression_type="GZIP")
        contents[os.path.basename(split_dir)] = collections.Counter(
            tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True) for r in records
        )
    return contents


@pytest.fixture(params=["taxi", "odd"])
def csv_dir(request, tmp_path, taxi_slice_dir):
    if request.param == "taxi":
        return taxi_slice_dir
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "odd.csv").write_text(ODD_CSV)
    return str(tmp_path / "data")


def test_same_examples_as_tfx_split_in_the_same_proportions(csv_dir, tmp_path):
    ours = _run(csv_example_gen.Executor, csv_dir, str(tmp_path / "ours"))
    theirs = _run(tfx_executor.Executor, csv_dir, str(tmp_path / "tfx"))
    assert ours.split_names == theirs.split_names == '["train", "eval"]'
    assert ours.get_string_custom_property("payload_format") == theirs.get_string_custom_property("payload_format")
    mine, reference = _split_contents(ours.uri), _split_contents(theirs.uri)
    assert sum(mine.values(), collections.Counter()) == sum(reference.values(), collections.Counter())
    total = sum(map(len, reference.values()))
    if total > 100:  # hash buckets 2:1, as TFX's default output config says
        assert abs(sum(mine["Split-train"].values()) / total - 2 / 3) < 0.03


def test_the_same_rows_go_to_the_same_split_every_time(taxi_slice_dir, tmp_path):
    first = _split_contents(_run(csv_example_gen.Executor, taxi_slice_dir, str(tmp_path / "1")).uri)
    second = _split_contents(_run(csv_example_gen.Executor, taxi_slice_dir, str(tmp_path / "2")).uri)
    assert first == second and all(first.values())


def test_input_splits_are_kept_as_they_are(tmp_path, taxi_frame):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "eval").mkdir()
    taxi_frame.head(300).to_csv(tmp_path / "data" / "train" / "a.csv", index=False)
    taxi_frame.tail(100).to_csv(tmp_path / "data" / "eval" / "b.csv", index=False)
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="train", pattern="train/*"),
        example_gen_pb2.Input.Split(name="eval", pattern="eval/*"),
    ])
    examples = _run(csv_example_gen.Executor, str(tmp_path / "data"), str(tmp_path / "out"),
                    input_config, example_gen_pb2.Output())
    counts = {name: sum(c.values()) for name, c in _split_contents(examples.uri).items()}
    assert counts == {"Split-train": 300, "Split-eval": 100}


def test_odd_cells_are_typed_as_tfx_types_them(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "odd.csv").write_text(ODD_CSV)
    _run(csv_example_gen.Executor, str(tmp_path / "data"), str(tmp_path / "out"))
    examples = [tf.train.Example.FromString(r) for c in _split_contents(str(tmp_path / "out")).values() for r in c]
    by_name = {e.features.feature["name"].bytes_list.value[0].decode(): e.features.feature for e in examples}
    assert set(by_name) == {"Smith, J.", "two\nlines", 'quoted "word"', "plain"}
    assert by_name["plain"]["count"].int64_list.value == [4]
    assert by_name["two\nlines"]["count"].WhichOneof("kind") == "int64_list"
    assert list(by_name["two\nlines"]["count"].int64_list.value) == []
    assert by_name["Smith, J."]["padded"].int64_list.value == [7]
    assert by_name["two\nlines"]["huge"].bytes_list.value == [b"99999999999999999999"]
    assert by_name["quoted \"word\""]["mixed"].bytes_list.value == [b"x"]
    assert by_name["plain"]["empty"].WhichOneof("kind") is None
    assert by_name["two\nlines"]["spelled"].float_list.value == [float("-inf")]


def test_a_ragged_row_names_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad.csv").write_text("a,b,c\n1,2,3\n1,2\n")
    with pytest.raises(Exception, match=r"bad\.csv: CSV parse error: Expected 3 columns, got 2"):
        _run(csv_example_gen.Executor, str(tmp_path / "data"), str(tmp_path / "out"))


def test_files_with_different_headers_are_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data" / "b.csv").write_text("a,c\n1,2\n")
    with pytest.raises(RuntimeError, match=r"b\.csv: header differs from that of .*a\.csv"):
        _run(csv_example_gen.Executor, str(tmp_path / "data"), str(tmp_path / "out"))


def test_a_big_file_is_written_in_several_shards(tmp_path, taxi_frame, monkeypatch):
    monkeypatch.setattr(csv_example_gen, "_BLOCK_BYTES", 32 << 10)  # the 2,000 rows: about eight blocks
    (tmp_path / "data").mkdir()
    taxi_frame.to_csv(tmp_path / "data" / "data.csv", index=False)
    _run(csv_example_gen.Executor, str(tmp_path / "data"), str(tmp_path / "out"))
    shards = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "out" / "Split-train" / "*.gz")))
    assert len(shards) >= 3 and shards[0] == "data_tfrecord-00000-00000.gz"
    assert sum(sum(c.values()) for c in _split_contents(str(tmp_path / "out")).values()) == len(taxi_frame)
