"""gRPC client for the served models: works against TF Serving or the local server.

    python -m taxi_pipeline.serving.client taxi --csv data/taxi/data.csv --limit 5
    python -m taxi_pipeline.serving.client ner --text "London on Monday evening"
    python -m taxi_pipeline.serving.client metadata --model_name ner

A command per model, whose own client module (`models/<name>/client.py`,
named by its definition) builds the requests and prints the answers;
`metadata` works for any model.

Common flags: --target HOST:PORT (default localhost:8500), --model_name,
--model_version N, --timeout SECONDS.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Dict, Mapping, Optional, Sequence, Tuple

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

from taxi_pipeline.contract import catalog


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


def _parser(queries: Mapping[str, object]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--target", default="localhost:8500", help="gRPC address of the server (default: %(default)s)")
    p.add_argument("--model_version", type=int, help="ask for this version instead of the newest")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (model, module) in queries.items():
        command = sub.add_parser(name, help=module.HELP)
        command.add_argument("--model_name", default=model.serving_name)
        module.add_arguments(command)
    meta = sub.add_parser("metadata", help="a model's signatures and status")
    meta.add_argument("--model_name", required=True)
    return p


def _queries() -> Dict[str, Tuple[object, object]]:
    """Each model with a client module: its name → (definition, module)."""
    found = {}
    for name in catalog.available():
        model = catalog.get(name)
        if model.client:
            found[name] = (model, importlib.import_module(model.client))
    return found


def main(argv: Optional[Sequence[str]] = None) -> None:
    queries = _queries()
    args = _parser(queries).parse_args(argv)
    client = ServingClient(args.target, args.timeout)
    try:
        if args.command in queries:
            queries[args.command][1].query(client, args, sys.stdout)
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
