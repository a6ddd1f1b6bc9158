"""Readers for the NER file formats people have, each yielding sentences.

- GMB / Kaggle `ner_dataset.csv`: `Sentence #,Word,POS,Tag`, the sentence
  number only on a sentence's first row; the original file is Latin-1.
- The Kubeflow example's `ner.csv`: columns include `sentence_idx`, `word` and
  `tag` (and `pos`), the sentence index on every row.
- CoNLL-2002/2003 column files: a token per line, its tag in the last column
  (with three columns or more, the POS tag in the second), a blank line
  between sentences, `-DOCSTART-` lines ignored.

Sentences carry their POS tags where the file has one for every token (the
tagger learns to predict them as a second task); else `pos` is empty.

The format is recognised from the file's first line. Every problem raises
`InputDataError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Iterator, List, NamedTuple

import tensorflow as tf

from taxi_pipeline.pipeline.data_validation import InputDataError


class Sentence(NamedTuple):
    """One sentence: its tokens, their IOB tags and their POS tags (or none)."""

    tokens: List[str]
    tags: List[str]
    pos: List[str]  # one per token, or empty


def _sentence(tokens: List[str], tags: List[str], pos: List[str]) -> Sentence:
    return Sentence(tokens, tags, pos if all(pos) else [])


_TAG = re.compile(r"^(O|[BI]-[^\s-][^\s]*)$")

GMB, KUBEFLOW, CONLL = "gmb", "kubeflow", "conll"


def decode(data: bytes) -> str:
    """UTF-8 text, or Latin-1 (the GMB file's encoding) when it is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def detect_format(first_line: str) -> str:
    """Which reader a file needs, from its first line."""
    header = [c.strip().lower() for c in next(csv.reader([first_line]), [])]
    if header[:1] == ["sentence #"]:
        return GMB
    if {"sentence_idx", "word", "tag"} <= set(header):
        return KUBEFLOW
    return CONLL


def check_tag(tag: str, where: str) -> str:
    """`tag` if it follows the IOB scheme (O, B-type, I-type), else an error."""
    if not _TAG.match(tag):
        raise InputDataError(
            f"{where}: tag {tag!r} is not in the IOB scheme "
            "(expected O, B-<type> or I-<type>, e.g. B-geo, I-tim)"
        )
    return tag


def _gmb(text: str, path: str) -> Iterator[Sentence]:
    rows = csv.reader(io.StringIO(text))
    next(rows)
    tokens: List[str] = []
    tags: List[str] = []
    pos: List[str] = []
    for line_number, row in enumerate(rows, start=2):
        if not row:
            continue
        where = f"{path}:{line_number}"
        if len(row) != 4:
            raise InputDataError(f"{where}: expected 4 fields (Sentence #,Word,POS,Tag), got {len(row)}")
        if row[0].strip():
            if tokens:
                yield _sentence(tokens, tags, pos)
            tokens, tags, pos = [], [], []
        elif not tokens and line_number == 2:
            raise InputDataError(f"{where}: the first row must start a sentence ('Sentence: 1')")
        tokens.append(row[1])
        pos.append(row[2].strip())
        tags.append(check_tag(row[3].strip(), where))
    if tokens:
        yield _sentence(tokens, tags, pos)


def _kubeflow(text: str, path: str) -> Iterator[Sentence]:
    rows = csv.reader(io.StringIO(text))
    header = [c.strip().lower() for c in next(rows)]
    idx, word, tag = (header.index(c) for c in ("sentence_idx", "word", "tag"))
    pos_column = header.index("pos") if "pos" in header else None
    current, tokens, tags, pos = None, [], [], []
    for line_number, row in enumerate(rows, start=2):
        if not row:
            continue
        where = f"{path}:{line_number}"
        if len(row) != len(header):
            raise InputDataError(f"{where}: expected {len(header)} fields, got {len(row)}")
        if row[idx] != current and tokens:
            yield _sentence(tokens, tags, pos)
            tokens, tags, pos = [], [], []
        current = row[idx]
        tokens.append(row[word])
        pos.append(row[pos_column].strip() if pos_column is not None else "")
        tags.append(check_tag(row[tag].strip(), where))
    if tokens:
        yield _sentence(tokens, tags, pos)


def _conll(text: str, path: str) -> Iterator[Sentence]:
    tokens: List[str] = []
    tags: List[str] = []
    pos: List[str] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                yield _sentence(tokens, tags, pos)
            tokens, tags, pos = [], [], []
            continue
        where = f"{path}:{line_number}"
        if len(fields) < 2:
            raise InputDataError(f"{where}: expected a token and a tag, got {line!r}")
        tokens.append(fields[0])
        pos.append(fields[1] if len(fields) >= 3 else "")
        tags.append(check_tag(fields[-1], where))
    if tokens:
        yield _sentence(tokens, tags, pos)


def read_text(text: str, path: str) -> Iterator[Sentence]:
    """Sentences of one file's decoded text."""
    if not text.strip():
        raise InputDataError(f"{path}: file is empty")
    reader = {GMB: _gmb, KUBEFLOW: _kubeflow, CONLL: _conll}[detect_format(text.splitlines()[0])]
    found = False
    for sentence in reader(text, path):
        found = True
        yield sentence
    if not found:
        raise InputDataError(f"{path}: no sentences found")


def read_file(path: str) -> Iterator[Sentence]:
    """Sentences of the file at `path` (any filesystem TensorFlow can read)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return read_text(decode(f.read()), path)


def check_path(path: str) -> int:
    """Reads every NER file at `path` (a file or a directory) before a run.

    Returns the number of sentences; raises InputDataError on the first
    problem, so a bad file fails in seconds rather than inside Beam.
    """
    if tf.io.gfile.isdir(path):
        files = sorted(
            f"{path.rstrip('/')}/{name}"
            for name in tf.io.gfile.listdir(path)
            if not tf.io.gfile.isdir(f"{path.rstrip('/')}/{name}")
        )
        if not files:
            raise InputDataError(f"no file in data directory {path!r}")
    elif tf.io.gfile.exists(path):
        files = [path]
    else:
        raise InputDataError(f"data path {path!r} does not exist")
    return sum(1 for name in files for _ in read_file(name))
