"""The C++ gRPC front: it merges concurrent Predict calls and splits the answers.

A small hand-made model keeps these tests fast and their batches predictable:
the backend's first call is held back, so the calls behind it queue in the
front and reach the backend together.
"""

import os
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from taxi_pipeline.serving.__main__ import Server
from taxi_pipeline.serving.batching import Batcher
from tests.test_serving import native_front


class _Toy(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def double(self, x):
        tf.debugging.assert_non_negative(x, message="x must not be negative")
        return {"y": x * 2, "label": tf.strings.as_string(x[:, 0])}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def total(self, x):
        return {"sum": tf.reduce_sum(x)}  # one number for the whole batch: not split by row


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy") / "toy"
    toy = _Toy()
    tf.saved_model.save(toy, str(base / "1"), signatures={"serving_default": toy.double, "total": toy.total})
    server = Server({"toy": str(base)}, port=0, rest_api_port=-1, poll_seconds=0,
                    batcher=Batcher(16, 1000), native_front=native_front())
    rows_seen, gate = [], threading.Event()
    run = server.manager.run

    def recording_run(name, version, signature, inputs):
        rows_seen.append((signature, len(next(iter(inputs.values())))))
        gate.wait(30)  # held until the test has queued its calls
        return run(name, version, signature, inputs)

    server.manager.run = recording_run
    server.start()
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    yield server, stub, rows_seen, gate
    server.stop()


def _request(x, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    return request


def _concurrently(stub, requests, rows_seen, gate):
    """Sends the first request, queues the others behind it, then lets the backend go."""
    rows_seen.clear()
    gate.clear()
    results = [None] * len(requests)

    def call(i):
        try:
            results[i] = stub.Predict(requests[i], timeout=30)
        except grpc.RpcError as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(0,))]
    threads[0].start()
    while not rows_seen:
        time.sleep(0.01)  # the first call is in the backend, held at the gate
    threads += [threading.Thread(target=call, args=(i,)) for i in range(1, len(requests))]
    for t in threads[1:]:
        t.start()
    time.sleep(0.5)  # the rest reach the front and queue
    gate.set()
    for t in threads:
        t.join()
    return results


def test_concurrent_calls_are_merged_and_each_gets_its_own_rows(front):
    _, stub, rows_seen, gate = front
    inputs = [np.array([[i, i + 0.5]] * (1 + i % 2)) for i in range(9)]
    results = _concurrently(stub, [_request(x) for x in inputs], rows_seen, gate)
    for x, result in zip(inputs, results):
        assert isinstance(result, predict_pb2.PredictResponse), result
        np.testing.assert_allclose(tf.make_ndarray(result.outputs["y"]), x * 2)
        assert [v.decode() for v in tf.make_ndarray(result.outputs["label"])] == [f"{v:f}" for v in x[:, 0]]
        assert result.model_spec.version.value == 1
    # One call alone, then the eight queued behind it as one batch of their 12 rows.
    assert rows_seen == [("serving_default", 1), ("serving_default", sum(len(x) for x in inputs[1:]))]


def test_a_bad_request_fails_alone_when_its_batch_fails(front):
    _, stub, rows_seen, gate = front
    inputs = [np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]), np.array([[-1.0, 0.0]]), np.array([[5.0, 6.0]])]
    results = _concurrently(stub, [_request(x) for x in inputs], rows_seen, gate)
    assert isinstance(results[2], grpc.RpcError)
    assert results[2].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "x must not be negative" in results[2].details()
    for i in (0, 1, 3):
        np.testing.assert_allclose(tf.make_ndarray(results[i].outputs["y"]), inputs[i] * 2)
    # The merged call failed, so each of its requests was sent again on its own.
    assert rows_seen[:2] == [("serving_default", 1), ("serving_default", 3)]
    assert sorted(rows_seen[2:]) == [("serving_default", 1)] * 3


def test_outputs_that_do_not_split_by_row_are_answered_unbatched(front):
    _, stub, rows_seen, gate = front
    inputs = [np.array([[i, 1.0]]) for i in range(4)]
    results = _concurrently(stub, [_request(x, "total") for x in inputs], rows_seen, gate)
    assert [float(tf.make_ndarray(r.outputs["sum"])) for r in results] == [x.sum() for x in inputs]
    later = _concurrently(stub, [_request(x, "total") for x in inputs], rows_seen, gate)
    assert [float(tf.make_ndarray(r.outputs["sum"])) for r in later] == [x.sum() for x in inputs]
    assert all(rows == 1 for _, rows in rows_seen), "once seen, the signature is no longer batched"


def test_other_methods_and_bad_requests_are_relayed_with_their_status(front):
    _, stub, rows_seen, gate = front
    gate.set()
    wrong_input = predict_pb2.PredictRequest()
    wrong_input.model_spec.name = "toy"
    wrong_input.inputs["z"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 2), np.float32)))
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(wrong_input, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'z'" in error.value.details()
    unknown = _request([[1.0, 2.0]])
    unknown.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(unknown, timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    from tensorflow_serving.apis import get_model_metadata_pb2

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "toy"
    assert stub.GetModelMetadata(metadata, timeout=30).model_spec.version.value == 1


def test_front_refuses_bad_flags_and_a_taken_port(front):
    server = front[0]
    result = subprocess.run([native_front(), "--port", "0"], capture_output=True, text=True)
    assert result.returncode == 2 and "--backend" in result.stderr
    result = subprocess.run([native_front(), "--backend", "unix:/x", "--max_batch_size", "many"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--max_batch_size must be an integer" in result.stderr
    taken = Server({"toy": "/nowhere"}, port=server.port, rest_api_port=-1, poll_seconds=0,
                   native_front=native_front())
    with pytest.raises(RuntimeError, match="native gRPC front"):
        taken.start()
    assert not os.path.exists(taken._socket_dir), "its private socket folder is removed"
