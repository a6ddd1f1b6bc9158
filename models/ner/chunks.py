"""IOB chunking: entities (start, end, type) from tag sequences, CoNLL rules.

A chunk starts at B-x, or at I-x after O or after another type, and runs
while I-x of the same type follows (as conlleval reads tags). Plain Python,
so clients can use it without TensorFlow Model Analysis.
"""

from typing import Hashable, Iterable, Optional, Sequence, Set, Tuple

Span = Tuple[int, int, Hashable]


def spans(pairs: Iterable[Tuple[str, Hashable]]) -> Set[Span]:
    """Entity chunks (start, end exclusive, type) of (prefix, type) pairs.

    `prefix` is "B", "I" or "O" (anything else counts as O).
    """
    found: Set[Span] = set()
    start: Optional[int] = None
    kind: Hashable = None
    position = -1
    for position, (prefix, current) in enumerate(pairs):
        continues = prefix == "I" and start is not None and current == kind
        if start is not None and not continues:
            found.add((start, position, kind))
            start = None
        if prefix == "B" or (prefix == "I" and not continues):
            start, kind = position, current
    if start is not None:
        found.add((start, position + 1, kind))
    return found


def tag_spans(tags: Sequence[str]) -> Set[Span]:
    """Entity chunks of IOB tag strings such as ["B-geo", "O", "B-tim", "I-tim"]."""
    return spans((t[:1], t[2:]) if t[1:2] == "-" else ("O", None) for t in tags)


def text_spans(tags: Sequence[str], starts: Sequence[int], ends: Sequence[int]) -> Set[Span]:
    """Entity chunks of tagged tokens as character spans (start, end, type) of
    the text the tokens came from, so tokenizations can be compared."""
    return {(starts[first], ends[last - 1], kind) for first, last, kind in tag_spans(tags)}
