"""ExampleGen for NER files: groups token rows into one tf.Example per sentence.

A custom executor of TFX's FileBasedExampleGen, so it runs on Beam, scales
with the number of input files like any ExampleGen, and splits train/eval
by hash. `--data` may name one file or a directory of files.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List

import apache_beam as beam
from apache_beam.io import fileio
import tensorflow as tf
from tfx.components import FileBasedExampleGen
from tfx.types import standard_component_specs
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from models.ner import features, readers

_TRUNCATED = beam.metrics.Metrics.counter("ner_example_gen", "sentences_truncated")


def to_example(tokens: List[str], tags: List[str], pos: List[str] = ()) -> tf.train.Example:
    """The tf.Example of one sentence, cut to MAX_TOKENS tokens; `pos`, the
    tokens' POS tags, is written when given."""
    tokens, tags, pos = (values[: features.MAX_TOKENS] for values in (tokens, tags, pos))

    def strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.TOKENS_KEY: strings(tokens),
                features.TAGS_KEY: strings(tags),
                features.NUM_TOKENS_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[len(tokens)])),
                features.LENGTH_BUCKET_KEY: strings([features.length_bucket(len(tokens))]),
                **({features.POS_KEY: strings(pos)} if pos else {}),
            }
        )
    )


def _file_to_examples(readable_file: fileio.ReadableFile):
    path = readable_file.metadata.path
    for sentence in readers.read_text(readers.decode(readable_file.read()), path):
        if len(sentence.tokens) > features.MAX_TOKENS:
            _TRUNCATED.inc()
            logging.warning(
                "%s: a %d-token sentence was cut to %d tokens for training",
                path, len(sentence.tokens), features.MAX_TOKENS,
            )
        yield to_example(*sentence)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _NerToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    return (
        pipeline
        | "MatchFiles" >> fileio.MatchFiles(f"{input_base}/{split_pattern}")
        | "ReadMatches" >> fileio.ReadMatches()
        | "Reshuffle" >> beam.Reshuffle()
        | "ParseSentences" >> beam.FlatMap(_file_to_examples)
    )


class Executor(BaseExampleGenExecutor):
    """Reads NER files (GMB, Kubeflow ner.csv or CoNLL) into tf.Examples."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _NerToExample


# Annotated sentences are scarce: nine in ten train, one in ten evaluates.
TRAIN_BUCKETS, EVAL_BUCKETS = 9, 1


def ner_example_gen(data: str) -> FileBasedExampleGen:
    """ExampleGen over one NER file or every file in a directory."""
    if tf.io.gfile.isdir(data):
        input_base, pattern = data, "*"
    else:
        input_base, pattern = os.path.split(data)
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=TRAIN_BUCKETS),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=EVAL_BUCKETS),
                ]
            )
        ),
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
    )
