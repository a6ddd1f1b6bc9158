"""Small requests that declare huge tensors cost the server no more than their
own bytes, on both gRPC paths (Python, and the C++ front that runs models).

Every request here is a few dozen bytes built from tensorflow's own protos: a
shape of millions of elements carrying one value, or a shape whose element
count overflows 32 or 64 bits when multiplied, for every dtype TF Serving's
TensorProto can carry and ranks 1 to 4. Each must be refused with
INVALID_ARGUMENT before anything of the declared size is allocated: the
serving process grows by a few MB at most and the front never dies.
"""

import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from taxi_pipeline.serving.batching import Batcher
from taxi_pipeline.serving.server import Server
from tests.conftest import native_front

# Inputs of unknown rank for each dtype the front runs itself, so that a
# request reaches tensor allocation instead of a shape check.
_RUN_DTYPES = {"float": tf.float32, "double": tf.float64, "int32": tf.int32, "int64": tf.int64,
               "bool": tf.bool, "string": tf.string}
_VALUE = {"float_val": 1.0, "double_val": 1.0, "int_val": 1, "int64_val": 1, "bool_val": True,
          "string_val": b"x", "half_val": 1, "scomplex_val": 1.0, "dcomplex_val": 1.0,
          "uint32_val": 1, "uint64_val": 1}
_FIELD = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val", types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val", types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val", types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val", types_pb2.DT_BFLOAT16: "half_val", types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val", types_pb2.DT_QINT8: "int_val", types_pb2.DT_QUINT8: "int_val",
    types_pb2.DT_QINT32: "int_val",
}
_SIGNATURE = {types_pb2.DT_FLOAT: "float", types_pb2.DT_DOUBLE: "double", types_pb2.DT_INT32: "int32",
              types_pb2.DT_INT64: "int64", types_pb2.DT_BOOL: "bool", types_pb2.DT_STRING: "string"}


def _shapes(rank: int):
    """Declared shapes of one rank: millions of elements, and products that
    overflow 32 and 64 bits (with and without a zero dimension)."""
    ones = [1] * (rank - 1)
    shapes = [[2_000_000] + ones, [(1 << 32) + 1] + ones, [(1 << 63) - 1] + ones]
    if rank >= 2:
        shapes += [[65536, 65537] + ones[1:], [1 << 32, (1 << 32) + 1] + ones[1:], [1 << 62, 4] + ones[1:]]
    if rank >= 3:
        shapes += [[1 << 21] * 3 + ones[2:], [0, 1 << 62, 4] + ones[2:], [1 << 62, 4, 0] + ones[2:]]
    if rank >= 4:
        shapes += [[1 << 16] * 4]
    return shapes


def _tensor(dtype, dims, **values) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


def _hostile_requests():
    """(description, request) pairs, each a few dozen bytes."""
    for dtype, field in sorted(_FIELD.items()):
        signature = _SIGNATURE.get(dtype, "float")
        for rank in range(1, 5):
            for dims in _shapes(rank):
                tensors = [_tensor(dtype, dims, **{field: [_VALUE[field]]})]
                if dtype != types_pb2.DT_STRING:  # 8 bytes of content: matches a count that wraps
                    tensors.append(_tensor(dtype, dims, tensor_content=b"\1" * 8))
                for tensor in tensors:
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = "any"
                    request.model_spec.signature_name = signature
                    request.inputs["x"].CopyFrom(tensor)
                    yield f"{types_pb2.DataType.Name(dtype)} {dims}", request
    for dtype in (types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, 999):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "any"
        request.inputs["x"].CopyFrom(_tensor(dtype, [2_000_000]))
        yield f"dtype {dtype}", request


class _AnyRank(tf.Module):
    """One signature per dtype, of unknown rank: the front runs each."""


def _save(path: str) -> None:
    module = _AnyRank()
    signatures = {}
    for name, dtype in _RUN_DTYPES.items():
        function = tf.function(lambda x: {"y": tf.identity(x)},
                               input_signature=[tf.TensorSpec(None, dtype, name="x")])
        setattr(module, name, function)
        signatures[name] = function
    tf.saved_model.save(module, path, signatures=signatures)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.fixture(scope="module", params=["python", "native"])
def server(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("any_rank") / "any"
    _save(str(base / "1"))
    front = native_front() if request.param == "native" else None
    served = Server({"any": str(base)}, port=0, rest_api_port=-1, poll_seconds=0, batcher=Batcher(8, 1000),
                    native_front=front)
    served.start()
    if front:
        assert served.front.state("any", 1, timeout=60) == "loaded"
    yield served
    served.stop()


def test_small_requests_declaring_huge_tensors_are_refused_at_their_own_cost(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))

    def valid_call(signature, values):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "any"
        request.model_spec.signature_name = signature
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(values))
        answer = stub.Predict(request, timeout=30)
        np.testing.assert_array_equal(tf.make_ndarray(answer.outputs["y"]), values)

    for _ in range(10):  # warm up both paths before measuring memory
        valid_call("float", np.ones([2, 3], np.float32))
        valid_call("string", np.array([[b"a"], [b"b"]], dtype=object))
    pids = [os.getpid()] + ([server.front.pid] if server.front else [])
    before = [_rss_mb(pid) for pid in pids]

    wrong, largest, sent = [], 0, 0
    for description, request in _hostile_requests():
        largest = max(largest, request.ByteSize())
        sent += 1
        try:
            stub.Predict(request, timeout=30)
            wrong.append((description, "OK"))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                wrong.append((description, e.code(), e.details()))
    assert largest < 100, "the requests were meant to be small"
    assert sent > 500
    assert wrong == [], f"{len(wrong)} of {sent} requests were not refused as INVALID_ARGUMENT: {wrong[:8]}"
    if server.front:
        assert server.front.pid == pids[1], "the front died and was restarted"
    valid_call("int64", np.arange(6, dtype=np.int64).reshape(3, 2))
    growth = [_rss_mb(pid) - b for pid, b in zip(pids, before)]
    assert max(growth) < 16, f"the serving processes grew by {growth} MB answering {sent} requests of <100 bytes"
