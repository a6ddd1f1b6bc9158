"""The local server reads model config files as tensorflow_model_server does:
version policies, version labels, reloads, and configs it must refuse.

Configs are written here by hand, in TF Serving's text format, and requests
are built from tensorflow_serving.apis alone. Small hand-made models, one
factor per version, show which version answered.
"""

import json
import logging
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from taxi_pipeline.serving import config
from taxi_pipeline.serving.__main__ import main
from taxi_pipeline.serving.server import ConfigWatcher, Server
from tests.conftest import native_front, save_scale_model


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Two models: `scale` with versions 1-3 (y = x * version), `other` with 1 (y = 10x)."""
    root = tmp_path_factory.mktemp("bases")
    for name, versions in (("scale", {1: 1.0, 2: 2.0, 3: 3.0}), ("other", {1: 10.0})):
        for number, factor in versions.items():
            save_scale_model(str(root / name / str(number)), factor)
    return root


def _entry(name: str, base, extra: str = "") -> str:
    return f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" {extra} }}\n'


def _config_text(*entries: str) -> str:
    return "model_config_list {\n" + "".join(entries) + "}\n"


def _start(text: str, tmp_path, **kwargs):
    path = tmp_path / "models.config"
    path.write_text(text)
    server = Server(config.read(str(path)), port=0, rest_api_port=0, poll_seconds=0.2, **kwargs)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return server, path, prediction_service_pb2_grpc.PredictionServiceStub(channel), channel


def _predict(stub, name: str, version=None, label=None, x=1.0):
    """(version that answered, y) for one Predict built from tensorflow_serving.apis."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([x], np.float32)))
    response = stub.Predict(request, timeout=30)
    return response.model_spec.version.value, float(tf.make_ndarray(response.outputs["y"])[0])


def _states(channel, name: str) -> dict:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    return {s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
            for s in response.model_version_status}


def _wait(condition, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "policy, served, latest",
    [
        ("", [3], 3),
        ("model_version_policy { latest { num_versions: 2 } }", [2, 3], 3),
        ("model_version_policy { specific { versions: 1 versions: 2 versions: 9 } }", [1, 2], 2),
        ("model_version_policy { all {} }", [1, 2, 3], 3),
    ],
)
def test_version_policies(bases, tmp_path, policy, served, latest):
    server, _, stub, channel = _start(_config_text(_entry("scale", bases / "scale", policy)), tmp_path)
    try:
        assert [v for v, state in _states(channel, "scale").items() if state == "AVAILABLE"] == served
        assert _predict(stub, "scale") == (latest, float(latest))
        for number in served:
            assert _predict(stub, "scale", version=number) == (number, float(number))
        for number in sorted({1, 2, 3} - set(served)):
            with pytest.raises(grpc.RpcError) as error:
                _predict(stub, "scale", version=number)
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop()


def test_version_labels_over_grpc_and_rest(bases, tmp_path):
    labels = ('model_version_policy { specific { versions: 1 versions: 3 } } '
              'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 }')
    server, _, stub, _ = _start(_config_text(_entry("scale", bases / "scale", labels)), tmp_path)
    try:
        assert _predict(stub, "scale", label="stable") == (1, 1.0)
        assert _predict(stub, "scale", label="canary") == (3, 3.0)
        with pytest.raises(grpc.RpcError) as error:
            _predict(stub, "scale", label="nope")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Unrecognized servable version label: nope" in error.value.details()

        rest = f"http://127.0.0.1:{server.rest_api_port}/v1/models/scale"
        request = urllib.request.Request(f"{rest}/labels/canary:predict", json.dumps({"instances": [2.0]}).encode())
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert json.load(reply)["predictions"] == [6.0]
        with urllib.request.urlopen(f"{rest}/labels/stable", timeout=30) as reply:
            assert json.load(reply)["model_version_status"][0]["version"] == "1"
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(urllib.request.Request(f"{rest}/labels/nope:predict", b'{"instances": [1.0]}'))
        assert error.value.code == 400
    finally:
        server.stop()


def test_a_label_on_a_version_that_is_not_served_is_refused(bases, tmp_path):
    text = _config_text(_entry("scale", bases / "scale", 'version_labels { key: "stable" value: 1 }'))
    with pytest.raises(config.ConfigError, match="label to version 1 of model scale, which is not currently"):
        _start(text, tmp_path)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    server, _, stub, _ = _start(text, allowed, allow_labels_for_unavailable=True)
    try:
        with pytest.raises(grpc.RpcError) as error:
            _predict(stub, "scale", label="stable")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert _predict(stub, "scale") == (3, 3.0)
    finally:
        server.stop()


@pytest.mark.parametrize(
    "text, message",
    [
        ('model_config_list {\n  config {\n    name: "a"\n    basepath: "/x"\n  }\n}\n', r":4:5 : .*no field named \"basepath\""),
        ('model_config_list { config { name: "a" base_path: "/x" model_platform: "tensorflow" }\n', r":1:\d+ : Expected \"}\""),
        (_config_text(_entry("a", "/x"), _entry("a", "/y")), "Illegal to list model a multiple times"),
        ('model_config_list { config { name: "a" base_path: "/x" } }', "nor ModelServerConfig::model_platform"),
        ('model_config_list { config { name: "a" base_path: "/x" model_platform: "onnx" } }',
         "requests unsupported platform onnx"),
        ("", "lists no model"),
    ],
)
def test_configs_tf_serving_refuses_are_refused_naming_the_line(tmp_path, capsys, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.read(str(path))
    with pytest.raises(SystemExit):
        main(["--model_config_file", str(path), "--port", "0", "--rest_api_port", "0"])
    assert str(path) in capsys.readouterr().err


def test_config_written_here_is_read_back_by_text_format(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    (tmp_path / "taxi").mkdir()
    (tmp_path / "ner").mkdir()
    with open(config.write_for_serving_root(str(tmp_path))) as f:
        read = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    assert [(c.name, c.base_path, c.model_platform) for c in read.model_config_list.config] == [
        ("ner", "/models/ner", "tensorflow"), ("taxi", "/models/taxi", "tensorflow")]


@pytest.mark.parametrize("front", ["python", "native"])
def test_reload_adds_removes_and_relabels_without_failing_requests(bases, tmp_path, caplog, front):
    policy = "model_version_policy { all {} }"
    first = _config_text(_entry("scale", bases / "scale", policy + ' version_labels { key: "canary" value: 2 }'))
    server, path, stub, channel = _start(first, tmp_path, native_front=native_front() if front == "native" else None)
    watcher = ConfigWatcher(str(path), 0.1, server.manager, config.read(str(path)))
    watcher.start()
    failures, answers, stop = [], [], threading.Event()

    def load():  # a client of the model every config keeps
        while not stop.is_set():
            try:
                answers.append(_predict(stub, "scale", version=1))
            except grpc.RpcError as e:
                failures.append(e)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        assert _predict(stub, "scale", label="canary") == (2, 2.0)
        with pytest.raises(grpc.RpcError):
            _predict(stub, "other")

        path.write_text(_config_text(_entry("scale", bases / "scale", policy + ' version_labels { key: "canary" value: 3 }'),
                                     _entry("other", bases / "other")))
        _wait(lambda: _predict(stub, "scale", label="canary")[0] == 3)
        assert _predict(stub, "other", x=2.0) == (1, 20.0)

        with caplog.at_level(logging.ERROR):
            path.write_text(_config_text(_entry("scale", bases / "scale")) + "oops {")
            _wait(lambda: "previous model config keeps serving" in caplog.text)
        assert str(path) in caplog.text
        assert _predict(stub, "other") == (1, 10.0), "a broken config changes nothing"

        path.write_text(_config_text(_entry("scale", bases / "scale", policy)))
        _wait(lambda: "other" not in server.manager.models)
        with pytest.raises(grpc.RpcError) as error:
            _predict(stub, "other")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as error:
            _predict(stub, "scale", label="canary")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _states(channel, "scale") == {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}
    finally:
        stop.set()
        thread.join()
        watcher.stop()
        server.stop()
    assert failures == []
    assert len(answers) > 10 and set(answers) == {(1, 1.0)}


def test_a_narrower_policy_unloads_versions_once_reloaded(bases, tmp_path):
    server, path, stub, channel = _start(_config_text(_entry("scale", bases / "scale", "model_version_policy { all {} }")),
                                         tmp_path)
    try:
        server.manager.apply(config.parse(_config_text(_entry("scale", bases / "scale",
                                                              "model_version_policy { latest { num_versions: 2 } }"))))
        assert _states(channel, "scale") == {1: "END", 2: "AVAILABLE", 3: "AVAILABLE"}
        assert _predict(stub, "scale") == (3, 3.0)
    finally:
        server.stop()
