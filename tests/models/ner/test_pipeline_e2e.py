"""The NER pipeline end to end on a corpus slice: push, then tag raw text."""

import os

import pytest
import tensorflow as tf

import local_runner
from taxi_pipeline.pipeline.data_validation import InputDataError

pytestmark = pytest.mark.e2e  # runs whole pipelines


def _tag(model_dir, sentences, offsets=False):
    out = tf.saved_model.load(model_dir).signatures["serving_default"](text=tf.constant(sentences))
    rows = zip(*(out[k].numpy() for k in ("tokens", "tags", "starts", "ends")))
    return [
        [(t.decode(), g.decode(), int(s), int(e))[: 4 if offsets else 2] for t, g, s, e in zip(*row) if t]
        for row in rows
    ]


def test_pushed_model_tags_raw_text(ner_run):
    output_dir, summary = ner_run
    assert summary.blessed is True
    assert summary.metrics["entity_f1"] >= 0.6
    assert os.path.dirname(summary.pushed_model) == os.path.join(output_dir, "serving_model", "ner")
    # A model of 600 real sentences and 250 steps knows these; "evening" as
    # I-tim takes more (the full model tags it so).
    (tagged,) = _tag(summary.pushed_model, ["London on Monday evening"], offsets=True)
    assert tagged[:3] == [("London", "B-geo", 0, 6), ("on", "O", 7, 9), ("Monday", "B-tim", 10, 16)]
    assert tagged[3][0] == "evening" and tagged[3][2:] == (17, 24)


def test_sentences_of_any_length_and_punctuation(ner_run):
    _, summary = ner_run
    long = " ".join(["Paris"] * 200)
    short, longer = _tag(summary.pushed_model, ["Hello, world!", long])
    assert [t for t, _ in short] == ["Hello", ",", "world", "!"]
    assert len(longer) == 200
    assert all(tag == "O" or tag[:2] in ("B-", "I-") for _, tag in short + longer)


def test_tag_tokens_signature_matches_text_signature(ner_run):
    _, summary = ner_run
    model = tf.saved_model.load(summary.pushed_model)
    tokens = tf.constant([["London", "on", "Monday", "evening"], ["Paris", "", "", ""]])
    tags = model.signatures["tag_tokens"](tokens=tokens)["tags"].numpy()
    expected = _tag(summary.pushed_model, ["London on Monday evening", "Paris"])
    assert [t.decode() for t in tags[0]] == [g for _, g in expected[0]]
    assert tags[1][1:].tolist() == [b"", b"", b""]


def test_bad_tag_stops_before_the_pipeline(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("Sentence #,Word,POS,Tag\nSentence: 1,London,NNP,I-\n")
    with pytest.raises(InputDataError, match="bad.csv:2: tag 'I-'"):
        local_runner.run(["--pipeline", "ner", "--data", str(data), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
