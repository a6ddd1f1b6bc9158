"""Querying the served NER model: raw sentences in, tokens, tags and
entities with character offsets out.

    python -m taxi_pipeline.serving.client ner --text "London on Monday evening"
    echo "Angela Merkel visited Paris" | python -m taxi_pipeline.serving.client ner

prints each sentence's token/tag pairs, then one line per entity: type, start
and end (characters of the sentence) and its text.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import IO, List, Optional, Sequence, Tuple

import numpy as np

from models.ner import chunks

HELP = "tag sentences (--text, or lines on stdin)"


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
    """A sentence as the NER model read it: (token, tag, start, end) per token,
    offsets in characters of `text`."""

    text: str
    tokens: List[Tuple[str, str, int, int]]

    def pairs(self) -> List[Tuple[str, str]]:
        """(token, tag) of each token."""
        return [(token, tag) for token, tag, _, _ in self.tokens]

    def entities(self) -> List[Tuple[str, str, int, int]]:
        """(text, type, start, end) of each entity, in order; `text` is the
        sentence's own characters, spacing included."""
        spans = chunks.text_spans(
            [tag for _, tag, _, _ in self.tokens],
            [start for _, _, start, _ in self.tokens],
            [end for _, _, _, end in self.tokens],
        )
        return [(self.text[start:end], kind, start, end) for start, end, kind in sorted(spans)]


def tag_text(client, sentences: Sequence[str], model: str = "ner",
             version: Optional[int] = None) -> List[TaggedSentence]:
    """Each raw sentence's tokens, tags and entities, through a `ServingClient`."""
    outputs = client.predict(model, {"text": np.array(list(sentences), dtype=object)}, version=version)
    return [
        TaggedSentence(text, [(t.decode(), g.decode(), int(s), int(e)) for t, g, s, e in zip(*row) if t])
        for text, *row in zip(sentences, outputs["tokens"], outputs["tags"], outputs["starts"], outputs["ends"])
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", action="append", help="a sentence; repeat for several")


def query(client, args: argparse.Namespace, out: IO[str]) -> None:
    """Prints token/tag pairs, then the entities, of each sentence."""
    sentences = args.text or [line.strip() for line in sys.stdin if line.strip()]
    for tagged in tag_text(client, sentences, args.model_name, args.model_version):
        out.write(" ".join(f"{token}/{tag}" for token, tag in tagged.pairs()) + "\n")
        for text, kind, start, end in tagged.entities():
            out.write(f"  {kind}\t{start}\t{end}\t{text}\n")
