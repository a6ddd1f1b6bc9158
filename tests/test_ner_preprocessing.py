"""The NER preprocessing_fn under real tf.Transform analysis of a few sentences."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from models.ner import features, preprocessing

SENTENCES = [
    (["London", "on", "Monday", "evening"], ["B-geo", "O", "B-tim", "I-tim"]),
    (["Kofi", "Annan", "visited", "London", "."], ["B-per", "I-per", "O", "B-geo", "O"]),
    (["london", "on", "Monday", "."], ["B-geo", "O", "B-tim", "O"]),
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    spec = {
        features.TOKENS_KEY: tf.io.VarLenFeature(tf.string),
        features.TAGS_KEY: tf.io.VarLenFeature(tf.string),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    raw = [{features.TOKENS_KEY: [t.encode() for t in tokens], features.TAGS_KEY: [g.encode() for g in tags]}
           for tokens, tags in SENTENCES]
    out = str(tmp_path_factory.mktemp("ner_tft"))
    with tft_beam.Context(temp_dir=os.path.join(out, "tmp")):
        (rows, _), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing.preprocessing_fn, output_record_batches=False
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    return rows, tft.TFTransformOutput(out)


def test_ids_leave_zero_for_padding_and_share_the_vocabulary(transformed):
    rows, output = transformed
    for row, (tokens, _) in zip(rows, SENTENCES):
        for key in (features.TOKEN_IDS, features.SUFFIX_IDS, features.SHAPE_IDS, features.TAG_IDS):
            assert len(row[key]) == len(tokens), key
            assert min(row[key]) >= 1, key
    # "London" and "london" share the lower-cased token id; "on" twice, same id.
    assert rows[0][features.TOKEN_IDS][0] == rows[2][features.TOKEN_IDS][0]
    assert rows[0][features.TOKEN_IDS][1] == rows[2][features.TOKEN_IDS][1]


def test_words_seen_once_fall_into_the_oov_bucket(transformed):
    rows, output = transformed
    sizes = preprocessing.vocabulary_sizes(output)
    oov = sizes[features.TOKEN_IDS] - 1
    # "Kofi" and "visited" appear once (below min_token_count 2); "london" thrice.
    assert rows[1][features.TOKEN_IDS][0] == oov
    assert rows[1][features.TOKEN_IDS][2] == oov
    assert rows[1][features.TOKEN_IDS][3] != oov


def test_shapes_tags_and_chars(transformed):
    rows, output = transformed
    shapes = [features.SHAPES[i] for i in rows[1][features.SHAPE_IDS]]
    assert shapes == ["title", "title", "lower", "title", "punct"]
    assert [features.SHAPES[i] for i in rows[2][features.SHAPE_IDS]][:1] == ["lower"]
    tag_vocab = output.vocabulary_by_name(preprocessing.TAG_VOCAB)
    decoded = [tag_vocab[i - 1].decode() for i in rows[0][features.TAG_IDS]]
    assert decoded == SENTENCES[0][1]
    chars = np.asarray(rows[0][features.CHAR_IDS]).reshape(len(SENTENCES[0][0]), features.CHARS_PER_TOKEN)
    assert (chars[1, :2] > 0).all() and (chars[1, 2:] == 0).all(), "'on': two chars, then padding"
