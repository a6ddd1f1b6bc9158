"""CsvExampleGen that decodes CSV a block at a time with Apache Arrow.

TFX's CsvExampleGen parses, types and serializes every row in Python and
reshuffles the rows through Beam one by one: about 1,650 rows a second here,
15 minutes for 1.5 million taxi trips. This executor keeps its contract (same
component, spec and output layout, splits by hash in the configured
proportions, the same column types:
INT64 when every non-empty cell of a column is a 64-bit integer, FLOAT when
every one is a number, else BYTES; an empty cell is an empty list, a column
with no value at all a feature of no kind) and does the work on blocks of
rows: Arrow reads and types them, tfx_bsl's C++ encoder turns a block into
serialized tf.Examples, and a thread pool keeps every core busy because both
release the GIL. Beam sees one element per file, so the work still spreads
over files and workers on any runner.

Rows are shuffled within each block (TFX reshuffles the whole split); the
Trainer shuffles again as it reads.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import os
from typing import Any, Dict, Iterator, List, Sequence, Tuple

from absl import logging
import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import tensorflow as tf
from tfx.components import CsvExampleGen as TfxCsvExampleGen
from tfx.components.example_gen import utils, write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils
from tfx_bsl.coders import example_coder
from tfx_bsl.coders.csv_decoder import ColumnType

# Column types as CsvExampleGen's decoder orders them when it widens a column.
UNKNOWN, INT, FLOAT, STRING = ColumnType.UNKNOWN, ColumnType.INT, ColumnType.FLOAT, ColumnType.STRING
# Rows per unit of work: about 60,000 taxi rows, a few MB of examples.
_BLOCK_BYTES = 8 << 20
# Blocks per output file: about 125,000 taxi rows.
_BLOCKS_PER_SHARD = 2
# gzip level of the output TFRecords: level 1 writes several times faster
# than the default (6) for somewhat larger files, and reading them is no slower.
_COMPRESSION_LEVEL = 1


def _read_blocks(path: str, column_names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The rows of a CSV file as string columns, empty cells null, a block at a time.

    `column_names` is the file's header, as `_files` checked it.
    """
    # A local file Arrow opens itself (no Python in its reads); others through
    # Beam's file systems (gs://, s3://, hdfs://), as TFX's CsvExampleGen reads.
    local = "://" not in path
    try:
        with contextlib.nullcontext(path) if local else beam.io.filesystems.FileSystems.open(path) as f:
            reader = pcsv.open_csv(
                f,
                read_options=pcsv.ReadOptions(block_size=_BLOCK_BYTES),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in column_names},
                    null_values=[""],
                    strings_can_be_null=True,
                ),
            )
            yield from reader
    except pa.ArrowInvalid as e:  # a ragged row, bad UTF-8, unbalanced quotes
        raise ValueError(f"{path}: {e}") from None


def _parses(values: pa.Array, arrow_type: pa.DataType) -> bool:
    try:
        pc.cast(values, arrow_type)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _as_python_reads_numbers(values: pa.Array) -> pa.Array:
    """Cells as Arrow's parser takes them: Python's int() and float() also
    accept surrounding blanks and a leading plus."""
    return pc.replace_substring_regex(pc.utf8_trim_whitespace(values), r"^\+", "")


# The spellings of Python's int() and float() (less digit separators `1_000`
# and non-ASCII digits). Checked before casting: a failing Arrow cast costs
# 20 times a successful one.
_WHOLE = r"^\s*[+-]?[0-9]+\s*$"
_NUMBER = r"(?i)^\s*[+-]?([0-9]+\.?[0-9]*(e[+-]?[0-9]+)?|\.[0-9]+(e[+-]?[0-9]+)?|nan|inf|infinity)\s*$"


def column_type(values: pa.Array) -> int:
    """The type CsvExampleGen gives a column holding these (string) cells.

    A whole number beyond 64 bits makes the column STRING, as in tfx_bsl.
    """
    values = pc.drop_null(values)
    if len(values) == 0:
        return UNKNOWN
    whole = pc.match_substring_regex(values, _WHOLE)
    fits = _parses(_as_python_reads_numbers(pc.filter(values, whole)), pa.int64())
    if not fits:
        return STRING
    if pc.all(whole).as_py():
        return INT
    return FLOAT if pc.all(pc.match_substring_regex(values, _NUMBER)).as_py() else STRING


def _typed(values: pa.Array, kind: int) -> pa.Array:
    if kind == STRING:
        return values.cast(pa.binary())
    number = pa.int64() if kind == INT else pa.float64()
    try:
        parsed = pc.cast(values, number)
    except pa.ArrowInvalid:
        parsed = pc.cast(_as_python_reads_numbers(values), number)
    # Through float64 as Python's float() does, then to the float32 of a FloatList.
    return parsed if kind == INT else pc.cast(parsed, pa.float32(), safe=False)


def encode_block(block: pa.RecordBatch, types: Dict[str, int]) -> List[bytes]:
    """Serialized tf.Examples of a block of string columns, typed as `types` says."""
    names = block.schema.names
    columns = []
    for name in names:
        values = block.column(name)
        kind = types[name]
        if kind == UNKNOWN:  # CsvExampleGen's tf.train.Feature() with no list at all
            columns.append(pa.nulls(len(values), pa.large_list(pa.binary())))
            continue
        present = pc.is_valid(values).to_numpy(zero_copy_only=False)
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(present, out=offsets[1:])
        columns.append(pa.LargeListArray.from_arrays(pa.array(offsets), _typed(pc.drop_null(values), kind)))
    return example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(columns, names))


def row_buckets(block: pa.RecordBatch, total_buckets: int) -> np.ndarray:
    """A hash bucket per row, from its cells' text: the same row, the same split.

    TFX hashes each serialized tf.Example; the C++ encoder's field order is
    not fixed, so the row's own text is hashed instead (a different, equally
    stable choice of rows for the same proportions).
    """
    cells = [pc.fill_null(values, "") for values in block.columns]
    rows = pc.binary_join_element_wise(*cells, "\x1f").to_pylist()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(row.encode(), digest_size=8).digest(), "little") % total_buckets for row in rows),
        dtype=np.int64,
        count=len(rows),
    )


def _split_block(block: pa.RecordBatch, types: Dict[str, int], buckets: List[int], seed: int) -> List[List[bytes]]:
    examples = encode_block(block, types)
    order = np.random.default_rng(seed).permutation(len(examples))
    if len(buckets) == 1:
        return [[examples[i] for i in order.tolist()]]
    split_of = np.searchsorted(buckets, row_buckets(block, buckets[-1]), side="right")[order]
    splits: List[List[bytes]] = [[] for _ in buckets]
    for i, split in zip(order.tolist(), split_of.tolist()):
        splits[split].append(examples[i])
    return splits


class _InferTypes(beam.DoFn):
    def process(self, path: str, column_names: Sequence[str]) -> Iterator[Dict[str, int]]:
        types = dict.fromkeys(column_names, UNKNOWN)
        for block in _read_blocks(path, column_names):
            for name, values in zip(column_names, block.columns):
                if types[name] != STRING:
                    types[name] = max(types[name], column_type(values))
        yield types


def _widest(all_types: Sequence[Dict[str, int]]) -> Dict[str, int]:
    merged: Dict[str, int] = {}
    for types in all_types:
        for name, kind in types.items():
            merged[name] = max(merged.get(name, UNKNOWN), kind)
    return merged


class _WriteExamples(beam.DoFn):
    """Writes one CSV file's examples as gzipped TFRecord shards, per split.

    A new shard every `_BLOCKS_PER_SHARD` blocks: a gzipped file is read
    whole by one worker, so a big input needs several for the steps after
    ExampleGen to spread over workers.
    """

    def __init__(self, column_names: Sequence[str], split_dirs: Sequence[str], buckets: List[int]):
        self._column_names = list(column_names)
        self._split_dirs = list(split_dirs)
        self._buckets = buckets
        self._rows = [beam.metrics.Metrics.counter("csv_example_gen", f"rows_{os.path.basename(d)}") for d in split_dirs]

    def process(self, indexed_path: Tuple[int, str], types: Dict[str, int]) -> Iterator[Tuple[str, int]]:
        index, path = indexed_path
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=_COMPRESSION_LEVEL)
        writers: List[tf.io.TFRecordWriter] = []
        counts = [0] * len(self._split_dirs)
        written = 0
        threads = len(os.sched_getaffinity(0))
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            pending: collections.deque = collections.deque()

            def write_oldest():
                nonlocal writers, written
                if written % _BLOCKS_PER_SHARD == 0:
                    for writer in writers:
                        writer.close()
                    shard = f"{write_split.DEFAULT_FILE_NAME}-{index:05d}-{written // _BLOCKS_PER_SHARD:05d}.gz"
                    writers = [tf.io.TFRecordWriter(os.path.join(d, shard), options) for d in self._split_dirs]
                for split, records in enumerate(pending.popleft().result()):
                    for record in records:
                        writers[split].write(record)
                    counts[split] += len(records)
                written += 1

            for number, block in enumerate(_read_blocks(path, self._column_names)):
                pending.append(pool.submit(_split_block, block, types, self._buckets, seed=index * 1_000_003 + number))
                if len(pending) > threads:  # bounded: a few blocks in memory, whatever the file size
                    write_oldest()
            while pending:
                write_oldest()
        for writer in writers:
            writer.close()
        for counter, count in zip(self._rows, counts):
            counter.inc(count)
        yield from ((os.path.basename(d), n) for d, n in zip(self._split_dirs, counts))


def _files(input_base: str, pattern: str) -> Tuple[List[str], List[str]]:
    """The files of an input split and their common header."""
    files = sorted(fileio.glob(os.path.join(input_base, pattern)))
    if not files:
        raise RuntimeError(f"Split pattern {os.path.join(input_base, pattern)} does not match any files.")
    header = io_utils.load_csv_column_names(files[0])
    for path in files[1:]:
        if io_utils.load_csv_column_names(path) != header:
            raise RuntimeError(f"{path}: header differs from that of {files[0]} in the same split")
    return files, header


class Executor(base_beam_executor.BaseBeamExecutor):
    """Reads the CSV files of each input split into gzipped tf.Example TFRecords."""

    def Do(
        self,
        input_dict: Dict[str, List[Any]],
        output_dict: Dict[str, List[Any]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_config = output_config.split_config
        if split_config.HasField("partition_feature_name"):
            raise ValueError("this CsvExampleGen splits by hash of the whole row, not by partition_feature_name")
        output = output_dict[standard_component_specs.EXAMPLES_KEY]
        split_names = utils.generate_output_split_names(input_config, output_config)
        artifact_utils.get_single_instance(output).split_names = artifact_utils.encode_split_names(split_names)
        split_dirs = [artifact_utils.get_split_uri(output, name) for name in split_names]
        # (input pattern, its output folders, hash buckets): one input split
        # hashed into the output splits, or each input split as it is.
        if split_config.splits:
            buckets = list(np.cumsum([s.hash_buckets for s in split_config.splits]))
            sources = [(input_config.splits[0].pattern, split_dirs, [int(b) for b in buckets])]
        else:
            sources = [(s.pattern, [d], [1]) for s, d in zip(input_config.splits, split_dirs)]
        for d in split_dirs:
            fileio.makedirs(d)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        with self._make_beam_pipeline() as pipeline:
            for i, (pattern, dirs, split_buckets) in enumerate(sources):
                files, header = _files(input_base, pattern)
                logging.info("Reading %d CSV file(s) of %s with columns %s", len(files), pattern, header)
                paths = pipeline | f"Files[{i}]" >> beam.Create(list(enumerate(files)))
                types = (
                    paths
                    | f"Paths[{i}]" >> beam.Values()
                    | f"InferTypes[{i}]" >> beam.ParDo(_InferTypes(), header)
                    | f"WidestTypes[{i}]" >> beam.CombineGlobally(_widest)
                )
                (
                    paths
                    | f"Spread[{i}]" >> beam.Reshuffle()
                    | f"WriteExamples[{i}]" >> beam.ParDo(
                        _WriteExamples(header, dirs, split_buckets), beam.pvalue.AsSingleton(types)
                    )
                    | f"RowsPerSplit[{i}]" >> beam.CombinePerKey(sum)
                    | f"LogRows[{i}]" >> beam.Map(lambda kv: logging.info("%s: %d examples", *kv))
                )
        for artifact in output:
            examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
            examples_utils.set_file_format(artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))


class CsvExampleGen(TfxCsvExampleGen):
    """TFX's CsvExampleGen, run by the Arrow executor above."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
