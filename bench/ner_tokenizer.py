"""Benchmark: does the NER tokenizer give back the corpus's own tokens?

Joins each sentence of a GMB-format file with single spaces, tokenizes it
with the serving graph's tokenizer (`models/ner/tokenizer.py`), and prints
the share of sentences whose tokens equal the gold tokens exactly (target:
at least 99.5%), the offsets checked against the text, and the sentences
that differ.

    .venv/bin/python bench/ner_tokenizer.py [--data FILE]

Without --data it reads the embedded GMB sentences (data/ner/ner_dataset.csv).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import taxi_pipeline  # noqa: E402,F401  (Keras 2 before TensorFlow loads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(REPO, "data", "ner", "ner_dataset.csv"))
    p.add_argument("--show", type=int, default=10, help="differing sentences to print")
    args = p.parse_args()

    import tensorflow as tf

    from models.ner import readers, tokenizer

    gold = [sentence.tokens for sentence in readers.read_file(args.data)]
    texts = [" ".join(tokens) for tokens in gold]
    start = time.perf_counter()
    tokens, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts))
    seconds = time.perf_counter() - start
    found = [[t.decode() for t in row] for row in tokens.to_list()]
    same = sum(f == g for f, g in zip(found, gold))
    bad_offsets = sum(
        text[s:e] != t
        for text, row, row_starts, row_ends in zip(texts, found, starts.to_list(), ends.to_list())
        for t, s, e in zip(row, row_starts, row_ends)
    )
    rate = same / len(gold)
    print(f"data {args.data}: {len(gold)} sentences, {sum(map(len, gold))} tokens, tokenized in {seconds:.1f} s")
    print(f"sentences tokenized exactly as the corpus: {same} ({rate:.2%}); offsets off the text: {bad_offsets}")
    for f, g in [(f, g) for f, g in zip(found, gold) if f != g][: args.show]:
        print(f"  corpus:    {' | '.join(g)}\n  tokenizer: {' | '.join(f)}")
    print(f"target (>= 99.5% of sentences): {'MET' if rate >= 0.995 else 'NOT met'}")


if __name__ == "__main__":
    main()
