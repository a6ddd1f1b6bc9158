"""Benchmark: this project's NER model against the Kubeflow example's recipe.

Splits a GMB-format file by sentence (every fifth sentence held out), then
  - trains this project's model through the real pipeline
    (`local_runner.py --pipeline ner --data <train part>`; its ExampleGen keeps
    a tenth of that for its own evaluation), and tags the held-out sentences
    twice: as gold tokens through the model's `tag_tokens` signature, and as
    text (the tokens joined by single spaces) through `serving_default`, whose
    entities are matched by character span, so tokenization counts;
  - trains the Kubeflow example's recipe (Embedding 140 → Dropout 0.1 →
    BiLSTM 100 → TimeDistributed softmax, maxlen 140, batch 32, Adam) on the
    whole train part, scoring the held-out sentences after every epoch.
Prints entity F1 (CoNLL rules) on the held-out sentences and training times:
ours (the Trainer's run) against the time the recipe took to reach its best.

    .venv/bin/python bench/ner_vs_recipe.py [--data FILE] [--recipe_epochs N]

Without --data it uses the embedded GMB sentences (data/ner/ner_dataset.csv).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import taxi_pipeline  # noqa: E402,F401  (Keras 2 before TensorFlow loads)

MAXLEN = 140


def _split(path: str, work: str):
    from models.ner import readers

    sentences = list(readers.read_file(path))
    train = [s for i, s in enumerate(sentences) if i % 5]
    held_out = [(s.tokens, s.tags) for i, s in enumerate(sentences) if not i % 5]
    train_file = os.path.join(work, "train", "ner_dataset.csv")
    os.makedirs(os.path.dirname(train_file), exist_ok=True)
    import csv

    with open(train_file, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Sentence #", "Word", "POS", "Tag"])
        for number, (tokens, tags, pos) in enumerate(train, start=1):
            for i, (token, tag) in enumerate(zip(tokens, tags)):
                writer.writerow([f"Sentence: {number}" if i == 0 else "", token, pos[i] if pos else "", tag])
    return [(s.tokens, s.tags) for s in train], held_out, train_file


def _ours(train_file: str, work: str, held_out, extra_args):
    import tensorflow as tf
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    import local_runner
    from models.ner import chunks, metrics

    output = os.path.join(work, "ours")
    local_runner.run(["--pipeline", "ner", "--data", train_file, "--output_dir", output] + extra_args)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(output, "metadata.db")
    store = metadata_store.MetadataStore(config)
    trainer = max(store.get_executions_by_type("tfx.components.trainer.component.Trainer"), key=lambda e: e.id)
    train_seconds = (trainer.last_update_time_since_epoch - trainer.create_time_since_epoch) / 1000
    # The model just trained, blessed or not: the benchmark scores it either way.
    model = [
        a for a in store.get_artifacts_by_id([e.artifact_id for e in store.get_events_by_execution_ids([trainer.id])
                                              if e.type == metadata_store_pb2.Event.OUTPUT])
        if store.get_artifact_types_by_id([a.type_id])[0].name == "Model"
    ][0]
    signatures = tf.saved_model.load(os.path.join(model.uri, "Format-Serving")).signatures
    predicted = []
    from_text = metrics.Counts()
    for start in range(0, len(held_out), 256):
        batch = held_out[start : start + 256]
        width = max(len(t) for t, _ in batch)
        tokens = tf.constant([t + [""] * (width - len(t)) for t, _ in batch])
        tags = signatures["tag_tokens"](tokens=tokens)["tags"].numpy()
        predicted += [[x.decode() for x in row[: len(t)]] for row, (t, _) in zip(tags, batch)]
        served = signatures["serving_default"](text=tf.constant([" ".join(t) for t, _ in batch]))
        for row, (gold_tokens, gold_tags) in enumerate(batch):
            gold_starts = [sum(len(t) + 1 for t in gold_tokens[:i]) for i in range(len(gold_tokens))]
            gold_ends = [s + len(t) for s, t in zip(gold_starts, gold_tokens)]
            real = served["tokens"][row].numpy() != b""
            from_text.add_spans(
                chunks.text_spans(gold_tags, gold_starts, gold_ends),
                chunks.text_spans(
                    [x.decode() for x in served["tags"][row].numpy()[real]],
                    served["starts"][row].numpy()[real].tolist(),
                    served["ends"][row].numpy()[real].tolist(),
                ),
            )
    counts = metrics.count_tags([g for _, g in held_out], predicted)
    return counts.metrics(), from_text.metrics(), train_seconds


def _recipe(train, held_out, epochs: int):
    """The Kubeflow example's model, trained epoch by epoch; best F1 and its time."""
    import numpy as np
    import tensorflow as tf

    from models.ner import metrics

    words = sorted({w for tokens, _ in train for w in tokens})
    word_index = {w: i + 2 for i, w in enumerate(words)}  # 0 pad, 1 unknown
    tag_list = sorted({t for _, tags in train for t in tags})
    tag_index = {t: i for i, t in enumerate(tag_list)}

    def encode(sentences):
        x = np.zeros((len(sentences), MAXLEN), np.int32)
        y = np.full((len(sentences), MAXLEN), tag_index["O"], np.int32)
        for row, (tokens, tags) in enumerate(sentences):
            for col, (w, t) in enumerate(list(zip(tokens, tags))[:MAXLEN]):
                x[row, col] = word_index.get(w, 1)
                y[row, col] = tag_index.get(t, tag_index["O"])
        return x, y

    x_train, y_train = encode(train)
    x_held, _ = encode(held_out)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Embedding(input_dim=len(words) + 2, output_dim=140, input_length=MAXLEN),
            tf.keras.layers.Dropout(0.1),
            tf.keras.layers.Bidirectional(
                tf.keras.layers.LSTM(units=100, return_sequences=True, recurrent_dropout=0.1)
            ),
            tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(len(tag_list), activation="softmax")),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    best, best_seconds, elapsed, history = 0.0, 0.0, 0.0, []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0)
        elapsed += time.perf_counter() - start
        predicted_ids = model.predict(x_held, batch_size=256, verbose=0).argmax(-1)
        predicted = [[tag_list[i] for i in row[: len(t)]] for row, (t, _) in zip(predicted_ids, held_out)]
        f1 = metrics.count_tags([g for _, g in held_out], predicted).metrics()[metrics.ENTITY_F1]
        history.append((epoch, elapsed, f1))
        print(f"  recipe epoch {epoch}: {elapsed:.0f} s of training, held-out entity F1 {f1:.4f}", flush=True)
        if f1 > best:
            best, best_seconds = f1, elapsed
    return best, best_seconds, history


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(REPO, "data", "ner", "ner_dataset.csv"))
    p.add_argument("--recipe_epochs", type=int, default=6)
    p.add_argument("--train_steps", help="our model's training steps (default: its own)")
    p.add_argument("--skip_recipe", action="store_true", help="only train and score our model")
    p.add_argument("--work_dir")
    args = p.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="ner_bench_")
    train, held_out, train_file = _split(args.data, work)
    print(f"data {args.data}: {len(train)} train, {len(held_out)} held-out sentences; work dir {work}", flush=True)

    extra = ["--train_steps", args.train_steps] if args.train_steps else []
    ours, text, ours_seconds = _ours(train_file, work, held_out, extra)
    print(
        f"  ours: {ours_seconds:.0f} s of training, held-out entity F1 {ours['entity_f1']:.4f} "
        f"from gold tokens, {text['entity_f1']:.4f} from text",
        flush=True,
    )
    if args.skip_recipe:
        return
    best, best_seconds, _ = _recipe(train, held_out, args.recipe_epochs)

    print(f"{'':>12} {'entity F1':>10} {'precision':>10} {'recall':>8} {'train s':>8}")
    for name, scores in (("ours, tokens", ours), ("ours, text", text)):
        print(
            f"{name:>12} {scores['entity_f1']:10.4f} {scores['entity_precision']:10.4f} "
            f"{scores['entity_recall']:8.4f} {ours_seconds:8.0f}"
        )
    print(f"{'recipe':>12} {best:10.4f} {'':>10} {'':>8} {best_seconds:8.0f}  (best epoch)")
    met = min(ours["entity_f1"], text["entity_f1"]) >= 0.82 and ours_seconds <= best_seconds
    print(f"target (F1 >= 0.82 from tokens and from text, no more training time than the recipe): "
          f"{'MET' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
