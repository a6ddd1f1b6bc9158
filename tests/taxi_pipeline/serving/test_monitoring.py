"""Metrics as TF Serving exposes them, scraped by a real Prometheus.

The monitoring config is written in TF Serving's text format; Debian's
`prometheus` (installed by `make prometheus`, part of `make test`) scrapes the
local server's REST port on loopback, and its HTTP API is asked for the
counts and statuses of the requests the test sent, over gRPC (both paths:
Python, and the C++ front answering calls itself) and REST.
"""

import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from taxi_pipeline.serving import monitoring
from taxi_pipeline.serving.batching import Batcher
from taxi_pipeline.serving.server import Server
from tests.conftest import native_front

PROMETHEUS = "/usr/bin/prometheus"


class _Double(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def double(self, x):
        return {"y": x * 2.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def test_the_monitoring_config_is_read_as_tf_serving_writes_it(tmp_path):
    config = tmp_path / "monitoring.config"
    config.write_text('prometheus_config {\n  enable: true,\n  path: "/metrics/here"\n}\n')
    assert monitoring.read_config(str(config)) == "/metrics/here"
    config.write_text("prometheus_config { enable: true }")
    assert monitoring.read_config(str(config)) == monitoring.DEFAULT_PATH
    config.write_text("prometheus_config { enable: false }")
    assert monitoring.read_config(str(config)) is None
    config.write_text("prometheus_config { enabled: true }")
    with pytest.raises(monitoring.MonitoringConfigError, match=r"monitoring.config.*enabled"):
        monitoring.read_config(str(config))


@pytest.fixture
def prometheus(tmp_path):
    """Starts Debian's prometheus scraping `target` every second: a function
    of (host:port, path) returning its HTTP API's base URL."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is not installed: run `make prometheus` (or `make test`)")
    started = []

    def start(target: str, path: str) -> str:
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n"
            f"scrape_configs:\n  - job_name: serving\n    metrics_path: {path}\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        port = _free_port()
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if _get(f"{base}/-/ready")[0] == 200:
                    return base
            except OSError:
                time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def _query(base: str, promql: str) -> dict:
    """{label values: value} of an instant query's vector result."""
    _, body = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    result = json.loads(body)["data"]["result"]
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in result}


@pytest.mark.parametrize("path", ["python", "native"])
def test_prometheus_scrapes_the_counts_and_statuses_of_what_was_sent(tmp_path, prometheus, path):
    module = _Double()
    tf.saved_model.save(module, str(tmp_path / "double" / "1"), signatures=module.double)
    config = tmp_path / "monitoring.config"
    config.write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
    front = native_front() if path == "native" else None
    server = Server({"double": str(tmp_path / "double")}, port=0, rest_api_port=0, poll_seconds=0,
                    batcher=Batcher(8, 1000), native_front=front, metrics_path=monitoring.read_config(str(config)))
    server.start()
    try:
        if front:
            assert server.front.state("double", 1, timeout=60) == "loaded"
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        sent = {"OK": 0, "INVALID_ARGUMENT": 0, "NOT_FOUND": 0}

        def grpc_call(values, version=None):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "double"
            if version:
                request.model_spec.version.value = version
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(values, np.float32)))
            try:
                stub.Predict(request, timeout=30)
                sent["OK"] += 1
            except grpc.RpcError as e:
                sent[e.code().name] += 1

        def rest_call(body: bytes):
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.rest_api_port}/v1/models/double:predict", data=body)
            try:
                urllib.request.urlopen(request, timeout=30).read()
                sent["OK"] += 1
            except urllib.error.HTTPError as e:
                assert e.code == 400
                sent["INVALID_ARGUMENT"] += 1

        for _ in range(7):
            grpc_call([[1.0, 2.0]])
        for _ in range(3):
            grpc_call([[1.0, 2.0, 3.0]])
        for _ in range(2):
            grpc_call([[1.0, 2.0]], version=9)
        for _ in range(4):
            rest_call(b'{"instances": [[1, 2]]}')
        rest_call(b'{"instances": [[1, 2, 3]]}')
        assert sent == {"OK": 11, "INVALID_ARGUMENT": 4, "NOT_FOUND": 2}

        base = prometheus(f"127.0.0.1:{server.rest_api_port}", "/monitoring/prometheus/metrics")
        by_status = 'sum by (status) (:tensorflow:serving:request_count{model_name="double"})'
        deadline = time.time() + 60
        while time.time() < deadline and len(_query(base, by_status)) < 3:
            time.sleep(0.5)
        assert _query(base, by_status) == {(("status", status),): float(n) for status, n in sent.items()}
        assert list(_query(base, 'up{job="serving"}').values()) == [1.0]
        latency = ('sum by (entrypoint) (:tensorflow:serving:request_latency_count'
                   '{model_name="double",API="Predict"})')
        assert _query(base, latency) == {(("entrypoint", "GRPC"),): 12.0, (("entrypoint", "REST"),): 5.0}
        ok_by_version = 'sum by (version) (:tensorflow:serving:request_count{model_name="double",status="OK"})'
        assert _query(base, ok_by_version) == {(("version", "1"),): 11.0}
        slow = ('sum(:tensorflow:serving:request_latency_bucket{model_name="double",le="+Inf"})'
                ' - sum(:tensorflow:serving:request_latency_count{model_name="double"})')
        assert list(_query(base, slow).values()) == [0.0], "every request is in the +Inf bucket"
        loads = _query(base, 'sum by (status) (:tensorflow:cc:saved_model:load_attempt_count)')
        assert loads == {(("status", "success"),): 1.0}
        if front:  # the front really answered the valid gRPC calls itself
            assert sum(t[5] for t in server.front.tallies()) == 7
    finally:
        server.stop()


def test_no_monitoring_config_serves_no_metrics(tmp_path):
    module = _Double()
    tf.saved_model.save(module, str(tmp_path / "double" / "1"), signatures=module.double)
    server = Server({"double": str(tmp_path / "double")}, port=0, rest_api_port=0, poll_seconds=0)
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(f"http://127.0.0.1:{server.rest_api_port}{monitoring.DEFAULT_PATH}")
        assert missing.value.code == 404
    finally:
        server.stop()


def test_the_server_command_refuses_a_bad_monitoring_config(tmp_path, capsys):
    from taxi_pipeline.serving.__main__ import main

    config = tmp_path / "monitoring.config"
    config.write_text("prometheus_config { enable: yes please }")
    with pytest.raises(SystemExit) as exit_:
        main(["--model_name", "m", "--model_base_path", str(tmp_path), "--monitoring_config_file", str(config)])
    assert exit_.value.code == 2 and "--monitoring_config_file" in capsys.readouterr().err
