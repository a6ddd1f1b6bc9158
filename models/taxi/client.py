"""Querying the served taxi model: raw CSV rows in, tip probabilities out.

    python -m taxi_pipeline.serving.client taxi --csv data/taxi/data.csv --limit 5
"""

from __future__ import annotations

import argparse
import csv
from typing import IO, Iterable, Mapping, Optional

import numpy as np

from models.taxi import features
from taxi_pipeline.modeling.examples import to_tf_example

HELP = "tip probabilities of taxi CSV rows"


def score_rows(client, rows: Iterable[Mapping[str, str]], model: str = "chicago_taxi",
               version: Optional[int] = None) -> np.ndarray:
    """Tip probabilities of raw CSV rows, sent as tf.Examples typed by the
    model's own columns, through a `ServingClient`."""
    serialized = [to_tf_example(row, features.RAW_COLUMNS).SerializeToString() for row in rows]
    outputs = client.predict(model, {"examples": np.array(serialized, dtype=object)}, version=version)
    return outputs["probabilities"].reshape(-1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", required=True, help="CSV file with the taxi columns")
    parser.add_argument("--limit", type=int, default=10, help="rows to score (default: %(default)s)")


def query(client, args: argparse.Namespace, out: IO[str]) -> None:
    """Prints each row's probability, payment type and fare."""
    with open(args.csv, newline="") as f:
        rows = [row for _, row in zip(range(args.limit), csv.DictReader(f))]
    for row, p in zip(rows, score_rows(client, rows, args.model_name, args.model_version)):
        out.write(f"{p:.4f}\t{row.get('payment_type', '')}\t{row.get('fare', '')}\n")
