"""Hostile input: malformed gRPC and REST requests get TF Serving's statuses,
the server stays up and small, valid requests between them all succeed, and
no request makes it open a file outside its model base paths.

Requests are built from tensorflow_serving.apis, raw bytes and raw HTTP, with
a seeded random generator; both gRPC paths (Python, C++ front) are fuzzed.
"""

import http.client
import json
import os
import random
import sys
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from taxi_pipeline.serving.server import Server
from taxi_pipeline.settings import MAX_MESSAGE_BYTES
from taxi_pipeline.serving.batching import Batcher
from tests.conftest import native_front

PREDICT = "/tensorflow.serving.PredictionService/Predict"
STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
REQUESTS = 1200  # malformed ones, over both protocols
_opened = []  # files opened while recording (an audit hook cannot be removed)
_recording = threading.Event()


def _audit(event, args):
    if _recording.is_set() and event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


class _Toy(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def double(self, x):
        return {"y": x * 2.0}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _json_error(payload: bytes) -> bool:
    """Whether an error reply is TF Serving's JSON {"error": ...}."""
    try:
        return "error" in json.loads(payload)
    except ValueError:
        return False


def _tensor(dims, dtype=types_pb2.DT_FLOAT, **values) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


def _predict(name="toy", tensor=None, key="x", **spec) -> bytes:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for field, value in spec.items():
        if field == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, field, value)
    if tensor is not None:
        request.inputs[key].CopyFrom(tensor)
    return request.SerializeToString()


def _grpc_cases(rng: random.Random):
    """(serialized request, the status codes TF Serving gives it)."""
    invalid, not_found = {grpc.StatusCode.INVALID_ARGUMENT}, {grpc.StatusCode.NOT_FOUND}
    good = _tensor([1, 2], float_val=[1.0, 2.0])
    fixed = [
        (_predict(tensor=_tensor([1, 2], types_pb2.DT_INT32, int_val=[1, 2])), invalid),
        (_predict(tensor=_tensor([1, 1], types_pb2.DT_STRING, string_val=[b"x"])), invalid),
        (_predict(tensor=_tensor([2], float_val=[1.0, 2.0])), invalid),
        (_predict(tensor=_tensor([1, 3], float_val=[1.0, 2.0, 3.0])), invalid),
        (_predict(tensor=_tensor([1, 2, 1], float_val=[1.0, 2.0])), invalid),
        (_predict(tensor=_tensor([1, 2], tensor_content=b"\0" * 5)), invalid),
        (_predict(tensor=_tensor([3, 2], tensor_content=b"\0" * 8)), invalid),
        (_predict(tensor=_tensor([1, 2], float_val=[1.0] * 7)), invalid),
        (_predict(tensor=_tensor([1 << 40, 2])), invalid),
        (_predict(tensor=_tensor([1 << 20, 1 << 20], float_val=[1.0])), invalid),
        (_predict(tensor=_tensor([-3, 2], float_val=[1.0])), invalid),
        (_predict(tensor=good, key="z"), invalid),
        (_predict(), invalid),
        (_predict(tensor=good, signature_name="nope"), invalid),
        (_predict(name="", tensor=good), invalid),
        (_predict(tensor=good, version=7), not_found),
        (_predict(tensor=good, version_label="nope"), invalid),
    ] + [(_predict(name=n, tensor=good), not_found)
         for n in ("../../etc", "/etc/passwd", "..", "toy/../..", "%2e%2e%2fetc", "toy\0", "t" * 5000)]
    cases = list(fixed)
    while len(cases) < REQUESTS // 2:
        choice = rng.random()
        if choice < 0.4:  # random bytes: undecodable, or decoding to nonsense
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
            cases.append((data, invalid | not_found | {grpc.StatusCode.INTERNAL}))
        elif choice < 0.7:  # a real request with bytes flipped
            data = bytearray(_predict(tensor=good))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            cases.append((bytes(data), None))  # may still be valid: any status but UNKNOWN
        else:
            cases.append(rng.choice(fixed))
    return cases


def _rest_cases(rng: random.Random):
    """(method, path, body or None, extra headers, HTTP statuses TF Serving gives it)."""
    predict = "/v1/models/toy:predict"
    fixed = [
        ("POST", predict, b"{not json", {}, {400}),
        ("POST", predict, b"[" * 100000 + b"]" * 100000, {}, {400}),
        ("POST", predict, b'{"instances": "\xff\xfe"}', {}, {400}),
        ("POST", predict, b'{"instances": [[1, 2], [3]]}', {}, {400}),
        ("POST", predict, b'{"instances": [["a", "b"]]}', {}, {400}),
        ("POST", predict, b'{"instances": [[1, 2, 3]]}', {}, {400}),
        ("POST", predict, b'{"instances": [{"x": [1, 2]}, {"y": [1, 2]}]}', {}, {400}),
        ("POST", predict, b'{"inputs": {"x": [[1, 2]]}, "instances": []}', {}, {400}),
        ("POST", predict, b'{"instances": [[1e400, NaN]]}', {}, {200, 400}),
        ("POST", predict, b'{"signature_name": 5, "instances": [[1, 2]]}', {}, {400}),
        ("POST", predict, b"[]", {}, {400}),
        ("POST", predict, b"", {"Content-Length": "-5"}, {400}),
        ("POST", predict, b"", {"Content-Length": "many"}, {400}),
        ("POST", predict, b"", {"Content-Length": str(MAX_MESSAGE_BYTES + 1)}, {429}),
        ("POST", "/v1/models/../../etc/passwd:predict", b'{"instances": [[1, 2]]}', {}, {404}),
        ("POST", "/v1/models/%2e%2e%2fetc:predict", b'{"instances": [[1, 2]]}', {}, {404}),
        ("GET", "/v1/models/..%2f..%2fetc%2fpasswd", None, {}, {404}),
        ("GET", "/../../../../etc/passwd", None, {}, {404}),
        ("GET", "/v1/models/toy/versions/99", None, {}, {404}),
        ("GET", "/v1/models/toy/labels/nope", None, {}, {400}),
        ("POST", "/v1/models/toy/versions/99999999999999999999999:predict", b'{"instances": [[1, 2]]}', {}, {404}),
        ("DELETE", predict, None, {}, {404, 405, 501}),
    ]
    cases = list(fixed)
    while len(cases) < REQUESTS // 2:
        choice = rng.random()
        if choice < 0.4:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
            cases.append(("POST", predict, body, {}, {400}))
        elif choice < 0.7:
            body = bytearray(b'{"instances": [[1.0, 2.0]]}')
            for _ in range(rng.randint(1, 3)):
                body[rng.randrange(len(body))] = rng.getrandbits(8)
            cases.append(("POST", predict, bytes(body), {}, {200, 400}))
        else:
            cases.append(rng.choice(fixed))
    return cases


@pytest.fixture(scope="module", params=["python", "native"])
def toy_server(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz") / "toy"
    toy = _Toy()
    tf.saved_model.save(toy, str(base / "1"), signatures=toy.double)
    front = native_front() if request.param == "native" else None
    server = Server({"toy": str(base)}, port=0, rest_api_port=0, poll_seconds=0, batcher=Batcher(16, 1000),
                    native_front=front)
    server.start()
    if front:
        assert server.front.state("toy", 1, timeout=60) == "loaded"
    yield server, str(base)
    server.stop()


def test_malformed_requests_get_tf_serving_statuses_and_harm_nothing(toy_server):
    server, base = toy_server
    rng = random.Random(0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}",
                                    options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)])
    raw_predict = channel.unary_unary(PREDICT)  # bytes in, bytes out
    good = _predict(tensor=_tensor([1, 2], float_val=[1.0, 2.0]))

    def valid_call():
        answer = predict_pb2.PredictResponse.FromString(raw_predict(good, timeout=30))
        np.testing.assert_allclose(tf.make_ndarray(answer.outputs["y"]), [[2.0, 4.0]])

    def rest(method, path, body, headers):
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_api_port, timeout=30)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            sent = dict(headers)
            if body is not None and "Content-Length" not in sent:
                sent["Content-Length"] = str(len(body))
            for key, value in sent.items():
                connection.putheader(key, value)
            connection.endheaders(body if body is not None and "Content-Length" not in headers else None)
            reply = connection.getresponse()
            payload = reply.read()
            return reply.status, payload
        finally:
            connection.close()

    for _ in range(20):  # warm up before measuring memory
        valid_call()
        rest("POST", "/v1/models/toy:predict", b'{"instances": [[1, 2]]}', {})
    pids = [os.getpid()] + ([server.front.pid] if server.front else [])
    memory_before = [_rss_mb(pid) for pid in pids]

    wrong, valid = [], 0
    _recording.set()
    try:
        for i, (data, expected) in enumerate(_grpc_cases(rng)):
            try:
                raw_predict(data, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            if (expected is not None and code not in expected) or code in (grpc.StatusCode.UNKNOWN,
                                                                            grpc.StatusCode.UNAVAILABLE):
                wrong.append(("grpc", i, data[:80], code))
            if i % 10 == 0:
                valid_call()
                valid += 1
        try:
            raw_predict(b"\0" * (MAX_MESSAGE_BYTES + 10), timeout=60)
            wrong.append(("grpc", "oversize", "", grpc.StatusCode.OK))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                wrong.append(("grpc", "oversize", "", e.code()))
        for i, (method, path, body, headers, expected) in enumerate(_rest_cases(rng)):
            status, payload = rest(method, path, body, headers)
            if status not in expected or (status >= 400 and not _json_error(payload)):
                wrong.append(("rest", i, (method, path, (body or b"")[:80]), status))
            if i % 10 == 0:
                valid_call()
                status, payload = rest("POST", "/v1/models/toy:predict", b'{"instances": [[1, 2]]}', {})
                assert status == 200 and json.loads(payload) == {"predictions": [[2.0, 4.0]]}
                valid += 1
    finally:
        _recording.clear()
    assert wrong == [], f"{len(wrong)} requests got a status TF Serving would not give: {wrong[:10]}"
    assert valid >= 100
    growth = [_rss_mb(pid) - before for pid, before in zip(pids, memory_before)]
    assert max(growth) < 100, f"memory grew by {growth} MB"
    allowed = (os.path.realpath(base), sys.prefix, sys.base_prefix, os.path.dirname(os.__file__), "/proc/self", "/dev/")
    outside = sorted({p for p in _opened if not os.path.realpath(p).startswith(allowed)})
    assert outside == [], f"requests opened files outside the model base path: {outside[:10]}"
