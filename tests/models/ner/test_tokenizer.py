"""The raw-text tokenizer against the corpus's own tokenization, and on text
that was never tokenized."""

import pytest
import tensorflow as tf

import models
from models.ner import readers, tokenizer


def _tokenize(texts):
    tokens, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts))
    return [
        [(t.decode(), s, e) for t, s, e in zip(*row)]
        for row in zip(tokens.to_list(), starts.to_list(), ends.to_list())
    ]


def test_joined_gmb_sentences_tokenize_back_to_their_gold_tokens():
    sentences = [sentence.tokens for sentence in readers.read_file(models.get("ner").default_data)][::4]
    texts = [" ".join(tokens) for tokens in sentences]
    found = _tokenize(texts)
    same = sum([t for t, _, _ in row] == gold for row, gold in zip(found, sentences))
    assert same / len(sentences) >= 0.995, f"{same} of {len(sentences)} sentences"
    assert all(text[s:e] == t for text, row in zip(texts, found) for t, s, e in row)


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Japan's prime minister", ["Japan", "'s", "prime", "minister"]),
        ('He said "no" (twice).', ["He", "said", '"', "no", '"', "(", "twice", ")", "."]),
        ("It cost $5, or 5% more.", ["It", "cost", "$", "5", ",", "or", "5", "%", "more", "."]),
        ("the U.S.-led force", ["the", "U.S.-led", "force"]),
        ("He works for Acme Inc.", ["He", "works", "for", "Acme", "Inc."]),
        ("Mr. Smith met Dr. Jones in the U.S.", ["Mr.", "Smith", "met", "Dr.", "Jones", "in", "the", "U.S."]),
        ("They didn't go; we'll see.", ["They", "did", "n't", "go", ";", "we", "'ll", "see", "."]),
        ("the rebels' camps", ["the", "rebels", "'", "camps"]),
        ("1,000 people at 3:30 p.m. in 2005.", ["1,000", "people", "at", "3:30", "p.m.", "in", "2005", "."]),
        ("Shi'ite al-Qaida -- and HIV/AIDS", ["Shi'ite", "al-Qaida", "--", "and", "HIV", "/", "AIDS"]),
        ("“Curly” quotes’ end…", ["“", "Curly", "”", "quotes", "’", "end", "…"]),
    ],
)
def test_natural_text_follows_the_corpus_conventions(text, tokens):
    (found,) = _tokenize([text])
    assert [t for t, _, _ in found] == tokens
    assert all(text[s:e] == t for t, s, e in found)


def test_offsets_count_characters_of_the_input_whatever_the_spacing():
    (found,) = _tokenize(["  Zürich\t\tand  Москва,\n1.5 "])
    assert found == [("Zürich", 2, 8), ("and", 10, 13), ("Москва", 15, 21), (",", 21, 22), ("1.5", 23, 26)]


def test_empty_blank_control_and_invalid_text():
    found = _tokenize(["", " \t\n ", "a\x00b\x1fc\x1ed", b"ok \xff bad"])
    assert found[0] == [] and found[1] == []
    assert [t for t, _, _ in found[2]] == ["a", "b", "c", "d"]
    assert [t for t, _, _ in found[3]] == ["ok", "\ufffd", "bad"], "a bad byte reads as U+FFFD"
