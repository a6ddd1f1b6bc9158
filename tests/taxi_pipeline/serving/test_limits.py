"""Bounded resources and a graceful stop: what many clients, idle clients and
an orchestrator's SIGTERM do to the server.

The clients are tensorflow_serving.apis stubs, raw sockets and http.client;
the server under SIGTERM is the command a user starts
(`python -m taxi_pipeline.serving`), on loopback ports, bounded in time.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from taxi_pipeline.serving import batching
from taxi_pipeline.serving.batching import Batcher
from taxi_pipeline.serving.server import Limits, Server
from tests.conftest import REPO, native_front

SLOW_STEPS = 60000  # about half a second of work per call on these machines


class _Slow(tf.Module):
    """A model whose calls take `n` steps of work."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="n")])
    def slow(self, n):
        def step(i, acc):
            return i + 1, tf.tanh(tf.matmul(acc, acc) * 0.01)

        _, acc = tf.while_loop(lambda i, _: i < tf.reduce_max(n), step, [0, tf.eye(64)])
        return {"y": tf.cast(n, tf.float32) + tf.reduce_sum(acc) * 0}


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    base = tmp_path_factory.mktemp("slow") / "slow"
    module = _Slow()
    tf.saved_model.save(module, str(base / "1"), signatures=module.slow)
    return base


def _request(steps: int) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["n"].CopyFrom(tf.make_tensor_proto(np.array([steps], np.int32)))
    return request


def _held_server(base, front, limits):
    """A server whose Python model calls wait for the returned gate."""
    server = Server({"slow": str(base)}, port=0, rest_api_port=0, poll_seconds=0, native_front=front,
                    tensorflow_library=None, limits=limits)
    gate, run = threading.Event(), server.manager.run

    def held_run(*args, **kwargs):
        gate.wait(30)
        return run(*args, **kwargs)

    server.manager.run = held_run
    server.start()
    return server, gate


@pytest.mark.parametrize("path", ["python", "native"])
def test_grpc_calls_beyond_the_cap_are_resource_exhausted(slow_model, path):
    server, gate = _held_server(slow_model, native_front() if path == "native" else None,
                                Limits(grpc_max_threads=3))
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        held = [stub.Predict.future(_request(1), timeout=30) for _ in range(3)]
        time.sleep(0.5)  # the three are in progress, held
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(_request(1), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        gate.set()
        assert [float(tf.make_ndarray(f.result().outputs["y"])[0]) for f in held] == [1.0] * 3
        assert float(tf.make_ndarray(stub.Predict(_request(2), timeout=30).outputs["y"])[0]) == 2.0
    finally:
        gate.set()
        server.stop()


def _rest_predict(port: int, steps: int = 1):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/v1/models/slow:predict", body=json.dumps({"instances": [steps]}))
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        connection.close()


def test_rest_connections_are_capped_and_silent_ones_closed(slow_model):
    server = Server({"slow": str(slow_model)}, port=0, rest_api_port=0, poll_seconds=0,
                    limits=Limits(rest_api_num_threads=2, rest_api_timeout_in_ms=500))
    server.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", server.rest_api_port)) for _ in range(2)]
        time.sleep(0.1)
        status, payload = _rest_predict(server.rest_api_port)
        assert status == 503 and "limit of concurrent REST connections" in payload["error"]
        for connection in idle:  # the server lets silent clients go, freeing their threads
            connection.settimeout(5)
            assert connection.recv(1) == b""
            connection.close()
        assert _rest_predict(server.rest_api_port, 3) == (200, {"predictions": [3.0]})
    finally:
        server.stop()


def test_batcher_state_is_bounded_and_shrinks_when_clients_stop(monkeypatch):
    monkeypatch.setattr(batching, "MAX_KEYS", 4)
    monkeypatch.setattr(batching, "IDLE_SECONDS", 0.3)
    batcher = Batcher(max_batch_size=8, batch_timeout_micros=1000)

    def call(inputs):
        time.sleep(0.02)
        return {"y": inputs["x"] * 2}

    def batcher_threads():
        return sum(t.name == "batcher" for t in threading.enumerate())

    before = batcher_threads()
    errors = []

    def client(width):
        try:
            for _ in range(5):
                x = np.ones([1, width], np.float32)
                np.testing.assert_array_equal(batcher.run("model", call, {"x": x})["y"], x * 2)
        except Exception as e:  # pragma: no cover - shown by the assertion
            errors.append(e)

    # Clients inventing 20 input shapes, three at a time for each.
    threads = [threading.Thread(target=client, args=(width,)) for width in range(1, 21) for _ in range(3)]
    peak = 0
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, batcher_threads() - before)
        time.sleep(0.005)
    assert errors == []
    assert 0 < peak <= 4
    deadline = time.time() + 10
    while batcher_threads() > before and time.time() < deadline:
        time.sleep(0.05)
    assert batcher_threads() == before, "idle batch threads were meant to end"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cli(base, front: str, grace: float):
    """`python -m taxi_pipeline.serving` on free ports: (process, gRPC port, REST port)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taxi_pipeline.serving", "--model_name", "slow", "--model_base_path", str(base),
         "--port", "0", "--rest_api_port", str(_free_port()), "--native_front", front,
         "--shutdown_grace_seconds", str(grace), "--log_dir", str(base.parent / "logs")],
        cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in process.stderr:
        found = re.search(r"gRPC on [\d.]+:(\d+).* REST on [\d.]+:(\d+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
            return process, int(found[1]), int(found[2])
        if "serving slow:" in line:
            process.kill()
            raise AssertionError(f"unexpected start line: {line}")
    raise AssertionError(f"the server did not start (exit code {process.wait()})")


@pytest.mark.parametrize("front", ["off", "on"])
def test_sigterm_lets_requests_in_progress_finish(slow_model, front):
    native_front()  # built
    process, grpc_port, rest_port = _start_cli(slow_model, front, grace=30)
    calls, stop = [], threading.Event()  # (started, ended, outcome)

    def grpc_client():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
        while not stop.is_set():
            started = time.monotonic()
            try:
                stub.Predict(_request(SLOW_STEPS), timeout=60)
                outcome = "ok"
            except grpc.RpcError as e:
                outcome = e.code().name
            calls.append((started, time.monotonic(), outcome))

    def rest_client():
        while not stop.is_set():
            started = time.monotonic()
            try:
                outcome = "ok" if _rest_predict(rest_port, SLOW_STEPS)[0] == 200 else "http error"
            except OSError as e:
                outcome = type(e).__name__
            calls.append((started, time.monotonic(), outcome))

    clients = [threading.Thread(target=grpc_client) for _ in range(6)] + [threading.Thread(target=rest_client)
                                                                          for _ in range(2)]
    try:
        for t in clients:
            t.start()
        time.sleep(4)
        terminated = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
        exited = time.monotonic()
    finally:
        stop.set()
        for t in clients:
            t.join(timeout=70)
        if process.poll() is None:
            process.kill()
    # Calls sent well before the signal were in the server when it came.
    in_progress = [c for c in calls if c[0] < terminated - 0.1 and c[1] > terminated]
    failed = [c for c in calls if c[0] < terminated - 0.1 and c[2] != "ok"]
    assert len(in_progress) >= 4, f"the server was meant to be under load: {len(in_progress)} calls in progress"
    assert failed == [], f"{len(failed)} calls in progress at SIGTERM failed: {failed[:5]}"
    assert exited - terminated < 30
