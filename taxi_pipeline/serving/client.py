"""gRPC client for the served models: works against TF Serving or the local server.

    python -m taxi_pipeline.serving.client taxi --csv data/taxi/data.csv --limit 5
    python -m taxi_pipeline.serving.client ner --text "London on Monday evening"
    echo "Angela Merkel visited Paris" | python -m taxi_pipeline.serving.client ner
    python -m taxi_pipeline.serving.client metadata --model_name ner

`ner` prints each sentence's token/tag pairs, then one line per entity:
type, start and end (characters of the sentence) and its text.

Common flags: --target HOST:PORT (default localhost:8500), --model_name,
--model_version N, --timeout SECONDS.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import taxi_pipeline  # noqa: F401  (Keras 2 before TensorFlow loads)
import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

import models
from models.ner import chunks
from taxi_pipeline.modeling.examples import to_tf_example


class ServingClient:
    """Predict, metadata and status calls of TF Serving's gRPC API."""

    def __init__(self, target: str = "localhost:8500", timeout: float = 10.0):
        self._channel = grpc.insecure_channel(target)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self.timeout = timeout

    def close(self) -> None:
        self._channel.close()

    @staticmethod
    def _spec(message, model: str, version: Optional[int], signature: Optional[str] = None):
        message.model_spec.name = model
        if version is not None:
            message.model_spec.version.value = version
        if signature is not None:
            message.model_spec.signature_name = signature
        return message

    def predict(
        self, model: str, inputs: Mapping[str, np.ndarray], signature: str = "serving_default",
        version: Optional[int] = None,
    ) -> Dict[str, np.ndarray]:
        request = self._spec(predict_pb2.PredictRequest(), model, version, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._predict.Predict(request, timeout=self.timeout)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def metadata(self, model: str, version: Optional[int] = None) -> dict:
        request = self._spec(get_model_metadata_pb2.GetModelMetadataRequest(), model, version)
        request.metadata_field.append("signature_def")
        response = self._predict.GetModelMetadata(request, timeout=self.timeout)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return {
            "version": response.model_spec.version.value,
            **json_format.MessageToDict(signatures, preserving_proto_field_name=True),
        }

    def status(self, model: str, version: Optional[int] = None) -> list:
        request = self._spec(get_model_status_pb2.GetModelStatusRequest(), model, version)
        response = self._models.GetModelStatus(request, timeout=self.timeout)
        return json_format.MessageToDict(response, preserving_proto_field_name=True).get(
            "model_version_status", []
        )

    def score_taxi_rows(
        self, rows: Iterable[Mapping[str, str]], model: str = "chicago_taxi", version: Optional[int] = None
    ) -> np.ndarray:
        """Tip probabilities of raw CSV rows, typed by the taxi model's own columns."""
        columns = models.get("taxi").raw_columns
        serialized = [to_tf_example(row, columns).SerializeToString() for row in rows]
        outputs = self.predict(model, {"examples": np.array(serialized, dtype=object)}, version=version)
        return outputs["probabilities"].reshape(-1)

    def tag_text(
        self, sentences: Sequence[str], model: str = "ner", version: Optional[int] = None
    ) -> List["TaggedSentence"]:
        """Each raw sentence's tokens, tags and entities."""
        outputs = self.predict(model, {"text": np.array(list(sentences), dtype=object)}, version=version)
        return [
            TaggedSentence(
                text,
                [(t.decode(), g.decode(), int(s), int(e)) for t, g, s, e in zip(*row) if t],
            )
            for text, *row in zip(sentences, outputs["tokens"], outputs["tags"], outputs["starts"], outputs["ends"])
        ]


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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--target", default="localhost:8500", help="gRPC address of the server (default: %(default)s)")
    p.add_argument("--model_version", type=int, help="ask for this version instead of the newest")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    taxi = sub.add_parser("taxi", help="tip probabilities of taxi CSV rows")
    taxi.add_argument("--model_name", default="chicago_taxi")
    taxi.add_argument("--csv", required=True, help="CSV file with the taxi columns")
    taxi.add_argument("--limit", type=int, default=10, help="rows to score (default: %(default)s)")
    ner = sub.add_parser("ner", help="tag sentences (--text, or lines on stdin)")
    ner.add_argument("--model_name", default="ner")
    ner.add_argument("--text", action="append", help="a sentence; repeat for several")
    meta = sub.add_parser("metadata", help="a model's signatures and status")
    meta.add_argument("--model_name", required=True)
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parser().parse_args(argv)
    client = ServingClient(args.target, args.timeout)
    try:
        if args.command == "taxi":
            with open(args.csv, newline="") as f:
                rows = [row for _, row in zip(range(args.limit), csv.DictReader(f))]
            for row, p in zip(rows, client.score_taxi_rows(rows, args.model_name, args.model_version)):
                print(f"{p:.4f}\t{row.get('payment_type', '')}\t{row.get('fare', '')}")
        elif args.command == "ner":
            sentences = args.text or [line.strip() for line in sys.stdin if line.strip()]
            for tagged in client.tag_text(sentences, args.model_name, args.model_version):
                print(" ".join(f"{token}/{tag}" for token, tag in tagged.pairs()))
                for text, kind, start, end in tagged.entities():
                    print(f"  {kind}\t{start}\t{end}\t{text}")
        else:
            print(json.dumps({"status": client.status(args.model_name, args.model_version),
                              "metadata": client.metadata(args.model_name, args.model_version)}, indent=2))
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)
    finally:
        client.close()


if __name__ == "__main__":
    main()
