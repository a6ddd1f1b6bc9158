"""NER readers on small files of every format, including the malformed cases."""

import pytest

import models
from models.ner import readers
from models.ner.example_gen import to_example
from models.ner import features
from taxi_pipeline.pipeline.data_validation import InputDataError

GMB = (
    "Sentence #,Word,POS,Tag\n"
    "Sentence: 1,Thousands,NNS,O\n"
    ",marched,VBD,O\n"
    ",in,IN,O\n"
    ",Zürich,NNP,B-geo\n"
    "Sentence: 2,Angela,NNP,B-per\n"
    ',"Merkel",NNP,I-per\n'
    ",spoke,VBD,O\n"
)
KUBEFLOW = (
    ",lemma,next-lemma,pos,sentence_idx,shape,word,tag\n"
    "0,thousand,of,NNS,1.0,capitalized,Thousands,O\n"
    "1,of,demonstr,IN,1.0,lowercase,of,O\n"
    "2,london,on,NNP,2.0,capitalized,London,B-geo\n"
    "3,on,monday,IN,2.0,lowercase,on,O\n"
    "4,monday,.,NNP,2.0,capitalized,Monday,B-tim\n"
)
CONLL = (
    "-DOCSTART- -X- O O\n\n"
    "EU NNP I-NP I-ORG\n"
    "rejects VBZ I-VP O\n"
    "German JJ I-NP I-MISC\n\n"
    "Peter NNP I-NP I-PER\n"
    "Blackburn NNP I-NP I-PER\n"
)


def _write(tmp_path, text, encoding="utf-8", name="data.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_gmb_latin1_file(tmp_path):
    path = _write(tmp_path, GMB, encoding="latin-1")
    assert list(readers.read_file(path)) == [
        (["Thousands", "marched", "in", "Zürich"], ["O", "O", "O", "B-geo"], ["NNS", "VBD", "IN", "NNP"]),
        (["Angela", "Merkel", "spoke"], ["B-per", "I-per", "O"], ["NNP", "NNP", "VBD"]),
    ]


def test_kubeflow_ner_csv(tmp_path):
    path = _write(tmp_path, KUBEFLOW)
    assert list(readers.read_file(path)) == [
        (["Thousands", "of"], ["O", "O"], ["NNS", "IN"]),
        (["London", "on", "Monday"], ["B-geo", "O", "B-tim"], ["NNP", "IN", "NNP"]),
    ]


def test_conll_columns(tmp_path):
    path = _write(tmp_path, CONLL)
    assert list(readers.read_file(path)) == [
        (["EU", "rejects", "German"], ["I-ORG", "O", "I-MISC"], ["NNP", "VBZ", "JJ"]),
        (["Peter", "Blackburn"], ["I-PER", "I-PER"], ["NNP", "NNP"]),
    ]


def test_pos_tags_only_where_every_token_has_one(tmp_path):
    """CoNLL-2002 Spanish has no POS column; a GMB sentence with a blank POS
    cell trains on its tags alone."""
    conll = _write(tmp_path, "Madrid B-LOC\nes O\n", name="es.conll")
    assert list(readers.read_file(conll)) == [(["Madrid", "es"], ["B-LOC", "O"], [])]
    gmb = _write(tmp_path, "Sentence #,Word,POS,Tag\nSentence: 1,Paris,,B-geo\n,sleeps,VBZ,O\n"
                 "Sentence: 2,Rome,NNP,B-geo\n", name="gmb.csv")
    assert [s.pos for s in readers.read_file(gmb)] == [[], ["NNP"]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "file is empty"),
        ("Sentence #,Word,POS,Tag\n", "no sentences found"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,London,NNP\n", ":2: expected 4 fields"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,London,NNP,I-\n", ":2: tag 'I-' is not in the IOB scheme"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,London,NNP,X-geo\n", "tag 'X-geo' is not in the IOB scheme"),
        ("London\n", ":1: expected a token and a tag"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InputDataError, match=message.replace("(", r"\(")) as error:
        list(readers.read_file(path))
    assert path in str(error.value)


def test_check_path(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        readers.check_path(str(tmp_path / "missing.csv"))
    with pytest.raises(InputDataError, match="no file"):
        readers.check_path(str(tmp_path))
    _write(tmp_path, GMB, name="a.csv")
    _write(tmp_path, CONLL, name="b.conll")
    assert readers.check_path(str(tmp_path)) == 4
    assert readers.check_path(str(tmp_path / "a.csv")) == 2


def test_long_sentences_are_cut_for_training():
    tokens = [f"w{i}" for i in range(features.MAX_TOKENS + 5)]
    example = to_example(tokens, ["O"] * len(tokens), ["NN"] * len(tokens))
    feature = example.features.feature
    assert len(feature[features.TOKENS_KEY].bytes_list.value) == features.MAX_TOKENS
    assert len(feature[features.TAGS_KEY].bytes_list.value) == features.MAX_TOKENS
    assert len(feature[features.POS_KEY].bytes_list.value) == features.MAX_TOKENS
    assert features.POS_KEY not in to_example(["a"], ["O"]).features.feature
    assert feature[features.NUM_TOKENS_KEY].int64_list.value == [features.MAX_TOKENS]
    assert feature[features.LENGTH_BUCKET_KEY].bytes_list.value == [b"31+"]


def test_embedded_corpus_is_real_gmb():
    committed = models.get("ner").default_data
    sentences = list(readers.read_file(committed))
    assert len(sentences) == 6640, "the GMB sentences of data/ner/README.md"
    types = {tag[2:] for s in sentences for tag in s.tags if tag != "O"}
    assert types == {"geo", "org", "per", "gpe", "tim", "art", "eve", "nat"}
    assert all(len(s.pos) == len(s.tokens) for s in sentences)
    tokens = [t for s in sentences for t in s.tokens]
    assert len(tokens) > 140_000 and {"U.S.", "Mr.", "'s"} <= set(tokens)
