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


# POS tags for the first two sentences; the third has none.
POS = [["NNP", "IN", "NNP", "NN"], ["NNP", "NNP", "VBD", "NNP", "."], []]


def _analyze(out: str, with_pos: bool):
    keys = [features.TOKENS_KEY, features.TAGS_KEY] + ([features.POS_KEY] if with_pos else [])
    spec = {key: tf.io.VarLenFeature(tf.string) for key in keys}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    raw = [{key: [v.encode() for v in values] for key, values in zip(keys, [*sentence, pos])}
           for sentence, pos in zip(SENTENCES, POS)]
    with tft_beam.Context(temp_dir=os.path.join(out, "tmp")):
        (rows, _), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing.preprocessing_fn, output_record_batches=False
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    return rows, tft.TFTransformOutput(out)


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    return _analyze(str(tmp_path_factory.mktemp("ner_tft")), with_pos=True)


def test_pos_ids_only_where_the_data_has_pos_tags(transformed, tmp_path):
    rows, output = transformed
    vocab = [v.decode() for v in output.vocabulary_by_name(preprocessing.POS_VOCAB)]
    assert [[vocab[i - 1] for i in row[features.POS_IDS]] for row in rows] == POS
    assert preprocessing.vocabulary_sizes(output)[features.POS_IDS] == len(vocab) + 2
    rows, output = _analyze(str(tmp_path), with_pos=False)
    assert features.POS_IDS not in rows[0] and features.POS_IDS not in preprocessing.vocabulary_sizes(output)


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
