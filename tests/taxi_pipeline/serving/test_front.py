"""The C++ gRPC front: it merges concurrent Predict calls, splits the answers,
and runs the models Python announces to it in TensorFlow's C API.

A small hand-made model keeps these tests fast. For the batching tests the
front sends batches to Python, whose first call is held back, so the calls
behind it queue in the front and reach Python together.
"""

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from taxi_pipeline.serving.server import Server
from taxi_pipeline.serving.batching import Batcher
from tests.conftest import native_front


class _Toy(tf.Module):
    def __init__(self, factor: float = 2.0):
        super().__init__()
        self.factor = tf.constant(factor)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def double(self, x):
        tf.debugging.assert_non_negative(x, message="x must not be negative")
        return {"y": x * self.factor, "label": tf.strings.as_string(x[:, 0])}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def total(self, x):
        return {"sum": tf.reduce_sum(x)}  # one number for the whole batch: not split by row


def _save_toy(base, version: int, factor: float = 2.0) -> None:
    toy = _Toy(factor)
    tf.saved_model.save(toy, str(base / str(version)), signatures={"serving_default": toy.double, "total": toy.total})


def _start(base, **kwargs):
    """A server over the toy model whose Python side records (and may hold) its Predict calls."""
    server = Server({"toy": str(base)}, port=0, rest_api_port=-1, poll_seconds=0,
                    batcher=Batcher(16, 1000), native_front=native_front(), **kwargs)
    rows_seen, gate = [], threading.Event()
    run = server.manager.run

    def recording_run(name, version, signature, inputs, **options):
        rows_seen.append((signature, len(next(iter(inputs.values())))))
        gate.wait(30)  # held until the test has queued its calls
        return run(name, version, signature, inputs, **options)

    server.manager.run = recording_run
    server.start()
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    return server, stub, rows_seen, gate


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """The front batching for Python: it runs no model itself."""
    base = tmp_path_factory.mktemp("toy") / "toy"
    _save_toy(base, 1)
    started = _start(base, tensorflow_library=None)
    yield started
    started[0].stop()


@pytest.fixture
def native(tmp_path):
    """The front running the toy model itself."""
    _save_toy(tmp_path / "toy", 1)
    started = _start(tmp_path / "toy")
    started[3].set()
    assert started[0].front.state("toy", 1, timeout=60) == "loaded"
    yield started
    started[0].stop()


def _request(x, signature="", input_name="x", dtype=np.float32):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = signature
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(np.asarray(x, dtype)))
    return request


def _refused(stub, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    return error.value


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
    deadline = time.time() + 30
    while not rows_seen:
        assert time.time() < deadline, f"the first call never reached the backend: {results[0]}"
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
    error = _refused(stub, _request(np.zeros((1, 2)), input_name="z"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "'z'" in error.details()
    unknown = _request([[1.0, 2.0]])
    unknown.model_spec.name = "nope"
    assert _refused(stub, unknown).code() == grpc.StatusCode.NOT_FOUND
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
    assert not os.path.exists(taken.front._socket_dir), "its private socket folder is removed"


def test_the_front_runs_announced_models_itself(native):
    server, stub, rows_seen, _ = native
    inputs = [np.array([[i, i + 0.5]] * (1 + i % 3), np.float32) for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda x: stub.Predict(_request(x), timeout=30), inputs))
    for x, result in zip(inputs, results):
        np.testing.assert_allclose(tf.make_ndarray(result.outputs["y"]), x * 2)
        assert [v.decode() for v in tf.make_ndarray(result.outputs["label"])] == [f"{v:f}" for v in x[:, 0]]
        assert (result.model_spec.name, result.model_spec.version.value) == ("toy", 1)
        assert result.model_spec.signature_name == "serving_default"
    filtered = _request([[1.0, 2.0]])
    filtered.output_filter.append("y")
    assert list(stub.Predict(filtered, timeout=30).outputs) == ["y"]
    total = stub.Predict(_request([[1.0, 2.0], [3.0, 4.0]], "total"), timeout=30)
    assert float(tf.make_ndarray(total.outputs["sum"])) == 10.0
    assert rows_seen == [], "Python ran none of them"


def test_what_the_front_cannot_run_is_answered_by_python(native):
    _, stub, rows_seen, _ = native
    error = _refused(stub, _request([[-1.0, 0.0]]))  # TensorFlow refuses it in the front
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "x must not be negative" in error.details()
    error = _refused(stub, _request(np.zeros((1, 2)), input_name="z"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "'z'" in error.details()
    error = _refused(stub, _request(np.ones((1, 2)), dtype=np.float64))  # not the signature's dtype, as TF Serving
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be float32, got float64" in error.details()
    error = _refused(stub, _request(np.ones((1, 3))))  # a shape the signature does not take
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "shape [1, 3]" in error.details()
    assert rows_seen == [("serving_default", 1)] * 4, "each of the four was Python's to answer"


def test_a_new_version_moves_to_the_front_and_the_old_one_leaves_it(native, tmp_path):
    server, stub, rows_seen, _ = native
    _save_toy(tmp_path / "toy", 2, factor=3.0)
    server.manager.models["toy"].poll()
    assert server.front.state("toy", 2, timeout=60) == "loaded"
    result = stub.Predict(_request([[1.0, 2.0]]), timeout=30)
    assert result.model_spec.version.value == 2
    np.testing.assert_allclose(tf.make_ndarray(result.outputs["y"]), [[3.0, 6.0]])
    old = _request([[1.0, 2.0]])
    old.model_spec.version.value = 1
    assert _refused(stub, old).code() == grpc.StatusCode.NOT_FOUND, "the front no longer runs version 1"
    assert rows_seen == [("serving_default", 1)], "only the call for the retired version reached Python"


def test_a_version_the_front_cannot_load_is_served_by_python(tmp_path):
    _save_toy(tmp_path / "toy", 1)
    server, stub, rows_seen, gate = _start(tmp_path / "toy", tensorflow_library=str(tmp_path / "no_tensorflow.so"))
    gate.set()
    try:
        state = server.front.state("toy", 1, timeout=60)
        assert state.startswith("failed") and "no_tensorflow.so" in state
        result = stub.Predict(_request([[1.0, 2.0]]), timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(result.outputs["y"]), [[2.0, 4.0]])
        assert rows_seen == [("serving_default", 1)]
    finally:
        server.stop()


def _wait(condition, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _answers(port: int) -> bool:
    """Whether a new client on `port` gets a Predict answered right now."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(_request([[1.0, 2.0]]), timeout=0.2, wait_for_ready=True).model_spec.version.value == 1
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def test_a_killed_front_is_restarted_and_only_calls_in_flight_fail(native):
    server, stub, _, _ = native
    clients, failures, answered, stop = 4, [], [], threading.Event()

    def load():
        while not stop.is_set():
            try:
                answered.append(stub.Predict(_request([[1.0, 2.0]]), timeout=30, wait_for_ready=True))
            except grpc.RpcError as e:
                failures.append((time.time(), e.code()))

    threads = [threading.Thread(target=load) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        _wait(lambda: len(answered) > 100)
        killed = server.front.pid
        os.kill(killed, 9)
        start = time.time()
        _wait(lambda: server.front.pid not in (None, killed) and _answers(server.port), seconds=10)
        restarted = time.time()
        assert server.front.state("toy", 1, timeout=30) == "loaded", "the version is announced again"
        before = len(answered)
        _wait(lambda: len(answered) > before + 100)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert restarted - start < 2, f"answering again {restarted - start:.1f} s after the kill"
    # What fails is what the kill cut: each client's call in flight, and at
    # most one more sent before its channel saw the connection close; calls
    # made while the front restarts wait for it (wait_for_ready), and none
    # fails once it is back.
    assert {code for _, code in failures} <= {grpc.StatusCode.UNAVAILABLE}, failures
    assert len(failures) <= 2 * clients, failures
    assert all(start <= at <= restarted for at, _ in failures), (start, restarted, failures)


def test_a_front_that_keeps_dying_is_given_up_for_python(native):
    from taxi_pipeline.serving.front import MAX_RESTARTS

    server = native[0]
    for _ in range(MAX_RESTARTS + 1):
        killed = server.front.pid
        os.kill(killed, 9)
        _wait(lambda: server.front.pid != killed)
    assert server.front.pid is None
    _wait(lambda: _answers(server.port), seconds=10)
