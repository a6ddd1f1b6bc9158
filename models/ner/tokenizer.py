"""The raw-text tokenizer of the NER model, written in TensorFlow ops so the
serving graph carries it (and TF Serving needs nothing else to run it).

It follows the conventions of the GMB corpus the model is trained on, read
off `gmb_train.csv` (see `tests/models/ner/test_tokenizer.py` and
`bench/ner_tokenizer.py`): punctuation is its own token (`"`, `(`, `$`, `%`,
`,` and `:` outside numbers, `--`); hyphens stay inside words (`U.S.-led`,
`al-Qaida`); clitics split off (`Japan's` → `Japan` `'s`, `don't` → `do`
`n't`, `countries'` → `countries` `'`); a word-final period is its own token
unless the word is an abbreviation (`U.S.`, `Mr.`, `a.m.`, `F.`, `Inc.`),
which keeps it, also at the end of a sentence.

Besides the tokens it gives each token's start and end in the input, in
Unicode characters (`text[start:end]` in Python is the token), so a client
can map tags back onto its own string whatever the spacing.

Every rule only inserts token boundaries; no character is changed or
dropped except whitespace and control characters, which separate tokens.
"""

from typing import Tuple

import tensorflow as tf

# Marks a boundary the rules insert; control characters in the input are
# turned into spaces first, so it never comes from the input.
_CUT = "\x1f"
# Stands for a period that belongs to an abbreviation while the rules run.
_KEPT = "\x1e"

# Titles and abbreviations that keep their period (the corpus writes `Mr.`,
# `St.`, `Gen.`); sequences of single letters and periods (`U.S.`, `a.m.`,
# `F.`) keep theirs without a list.
ABBREVIATIONS = (
    "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Mt", "Ft", "Rep", "Sen", "Gov", "Gen", "Lt", "Col",
    "Maj", "Capt", "Sgt", "Adm", "Cmdr", "Cpl", "Pvt", "Rev", "Prof", "Pres", "Cong", "Inc", "Corp",
    "Co", "Ltd", "Bros", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct",
    "Nov", "Dec", "vs", "etc", "approx", "No",
)

_LETTER_OR_DIGIT = r"\pL\pN"
_APOSTROPHE = "'\u2019"

# (pattern, replacement) pairs applied in order; RE2 has no look-around, so
# context is captured and written back.
_RULES = (
    # Whitespace of any kind and control characters separate tokens.
    (r"[\pZ\p{Cc}]", " "),
    # Punctuation that is always a token of its own.
    (r"([\"()\[\]{}$%;?!&*+=<>@#|\\\x{2018}\x{201C}\x{201D}\x{201E}\x{00AB}\x{00BB}\x{2014}\x{2026}])", _CUT + r"\1" + _CUT),
    (r"(--+)", _CUT + r"\1" + _CUT),
    # Commas, colons and slashes, except between digits (1,000 3:30 1/2).
    (r"([^\pN]|^)([,:/])", r"\1" + _CUT + r"\2" + _CUT),
    (r"([,:/])([^\pN]|$)", _CUT + r"\1" + _CUT + r"\2"),
    # Clitics: Japan's, they'll, we've, don't; a possessive after a plural.
    (rf"(\pL)([{_APOSTROPHE}](?:s|S|ll|LL|ve|re|d|m|D|M))([^{_LETTER_OR_DIGIT}]|$)", r"\1" + _CUT + r"\2\3"),
    (rf"(\pL)([nN][{_APOSTROPHE}][tT])([^{_LETTER_OR_DIGIT}]|$)", r"\1" + _CUT + r"\2\3"),
    (rf"(\pL)([{_APOSTROPHE}])([^{_LETTER_OR_DIGIT}]|$)", r"\1" + _CUT + r"\2" + _CUT + r"\3"),
)

# Abbreviations whose final period stays in the word.
_PROTECT = (
    # A single letter and its period, first of a word: U. in U.S., F. in F. Kennedy.
    (rf"(^|[^{_LETTER_OR_DIGIT}.{_KEPT}'])(\pL)\.", r"\1\2" + _KEPT),
    # Each further letter-period of U.S.A. or H.I.V. (one per pass: matches do not overlap).
    (rf"(\pL{_KEPT}\pL)\.", r"\1" + _KEPT),
    (rf"(\pL{_KEPT}\pL)\.", r"\1" + _KEPT),
    (rf"(\pL{_KEPT}\pL)\.", r"\1" + _KEPT),
    (rf"(^|[^{_LETTER_OR_DIGIT}])({'|'.join(ABBREVIATIONS)})\.", r"\1\2" + _KEPT),
)


def _insert_boundaries(text: tf.Tensor) -> tf.Tensor:
    """`text` with spaces and _CUT marks between tokens; same characters otherwise."""
    for pattern, replacement in _RULES:
        text = tf.strings.regex_replace(text, pattern, replacement)
    for pattern, replacement in _PROTECT:
        text = tf.strings.regex_replace(text, pattern, replacement)
    # Any other word-final period is a token: "said." and "2005." but not "3.5".
    text = tf.strings.regex_replace(text, rf"([^ {_CUT}.])(\.+)([ {_CUT}]|$)", r"\1" + _CUT + r"\2\3")
    return tf.strings.regex_replace(text, _KEPT, ".")


def _exclusive_cumsum(lengths: tf.RaggedTensor) -> tf.RaggedTensor:
    """Per row, the sum of the lengths before each item."""
    flat = lengths.values
    total = tf.cumsum(flat, exclusive=True)
    row_first = tf.gather(total, lengths.row_starts())
    return lengths.with_values(total - tf.gather(row_first, lengths.value_rowids()))


def tokenize_with_offsets(text: tf.Tensor) -> Tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """(tokens, starts, ends) for a [batch] of strings, each [batch, (tokens)];
    starts and ends count Unicode characters of the input. Text that is not
    valid UTF-8 has its bad bytes read as U+FFFD."""
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    marked = _insert_boundaries(text)
    # Split at the input's own spaces first: each piece is one run of
    # non-space input characters, plus marks, which keeps offsets simple.
    pieces = tf.strings.split(marked, sep=" ")  # [batch, (pieces)], "" between two spaces
    piece_chars = tf.strings.length(tf.strings.regex_replace(pieces, _CUT, ""), unit="UTF8_CHAR")
    piece_starts = _exclusive_cumsum(piece_chars + 1)
    parts = tf.strings.split(pieces, sep=_CUT)  # [batch, (pieces), (parts)]
    part_chars = tf.strings.length(parts, unit="UTF8_CHAR")
    part_starts = _exclusive_cumsum(part_chars.values) + tf.expand_dims(piece_starts.values, -1)
    tokens = parts.values  # [batch * pieces, (parts)] → flatten to [batch, (tokens)]
    flat = lambda ragged: tf.RaggedTensor.from_row_splits(  # noqa: E731
        ragged.values, tf.gather(tokens.row_splits, pieces.row_splits)
    )
    token_text, token_starts, token_chars = flat(tokens), flat(part_starts), flat(part_chars.values)
    keep = token_chars > 0
    token_text = tf.ragged.boolean_mask(token_text, keep)
    token_starts = tf.cast(tf.ragged.boolean_mask(token_starts, keep), tf.int64)
    token_ends = token_starts + tf.cast(tf.ragged.boolean_mask(token_chars, keep), tf.int64)
    return token_text, token_starts, token_ends


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    """The tokens of a [batch] of strings, [batch, (tokens)]."""
    return tokenize_with_offsets(text)[0]
