"""What production does to a model base path, and the server and registry
surviving it: the folder vanishing and coming back under load, names that are
not versions, a copy slower than any poll, a push that fails half-way, pushes
and rollbacks in the same second, a rollback during a run.

Clients are built from tensorflow_serving.apis and plain HTTP; versions are
small SavedModels with a variable, so a half-copied one cannot load.
"""

import errno
import http.client
import json
import os
import re
import shutil
import threading
import time

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
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from taxi_pipeline.contract import base_path
from taxi_pipeline.serving import config
from taxi_pipeline.serving.server import Server
from tests.conftest import native_front, save_scale_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """SavedModels scaling by 1, 2 and 3, to copy in as versions."""
    root = tmp_path_factory.mktemp("saved")
    for factor in (1, 2, 3):
        save_scale_model(str(root / str(factor)), float(factor), shape=(None, 2))
    return root


def _status(stub, name="toy"):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return {s.version: s for s in stub.GetModelStatus(request, timeout=30).model_version_status}


def _factor(stub) -> float:
    """The scale the served version applies (its version's identity)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones([1, 2], np.float32)))
    return float(tf.make_ndarray(stub.Predict(request, timeout=30).outputs["y"])[0, 0])


def _wait(condition, seconds=60, what="condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=["python", "native"])
def server(request, tmp_path, saved):
    base = tmp_path / "models" / "toy"
    base.mkdir(parents=True)
    shutil.copytree(saved / "1", base / "1")
    front = native_front() if request.param == "native" else None
    served = Server({"toy": str(base)}, port=0, rest_api_port=0, poll_seconds=0.1, native_front=front)
    served.start()
    if front:
        assert served.front.state("toy", 1, timeout=60) == "loaded"
    channel = grpc.insecure_channel(f"127.0.0.1:{served.port}")
    yield (served, base, prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    served.stop()


class _Load:
    """gRPC and REST predictions in a loop until stopped; what fails is kept."""

    def __init__(self, served, stub):
        self.failures, self.calls, self._stop = [], 0, threading.Event()
        self._threads = [threading.Thread(target=self._grpc, args=(stub,)),
                         threading.Thread(target=self._rest, args=(served.rest_api_port,))]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        for t in self._threads:
            t.join()

    def _grpc(self, stub):
        while not self._stop.is_set():
            try:
                _factor(stub)
                self.calls += 1
            except grpc.RpcError as e:
                self.failures.append(("grpc", e.code(), e.details()))

    def _rest(self, port):
        while not self._stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/v1/models/toy:predict", body=json.dumps({"instances": [[1.0, 1.0]]}))
            reply = connection.getresponse()
            payload = reply.read()
            connection.close()
            if reply.status != 200:
                self.failures.append(("rest", reply.status, payload[:200]))
            self.calls += 1


def test_a_vanished_base_path_keeps_serving_until_it_returns(server, saved):
    served, base, stub, models = server
    moved = base.parent / "toy-away"
    with _Load(served, stub) as load:
        _wait(lambda: load.calls > 20, what="the first calls")
        os.rename(base, moved)
        _wait(lambda: "cannot be read" in _status(models)[1].status.error_message, what="the status to say why")
        time.sleep(1.0)  # ten polls without the folder
        status = _status(models)[1]
        assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        assert status.status.error_code == 0, "still served: the version itself is fine"
        assert _factor(stub) == 1.0
        os.rename(moved, base)
        shutil.copytree(saved / "2", base / ".copy")
        os.rename(base / ".copy", base / "2")
        _wait(lambda: _factor(stub) == 2.0, what="version 2 after the base path returned")
    assert load.failures == [], f"{len(load.failures)} of {load.calls} calls failed: {load.failures[:5]}"
    assert load.calls > 50
    assert _status(models)[2].status.error_message == ""


def test_folders_that_are_not_versions_are_ignored_by_server_registry_and_rollback(server, saved):
    served, base, stub, models = server
    for odd in ("²", "٣", "1.5", "-3", " 7", "08a", ".incoming-9-x", "9 "):
        (base / odd).mkdir()
    (base / "12").write_text("a file, not a folder")
    time.sleep(0.5)
    assert sorted(_status(models)) == [1]
    assert base_path.local_versions(str(base)) == [1, 12]
    version, path = base_path.publish(str(saved / "2"), str(base))
    assert version > 12 and os.path.isdir(path)
    _wait(lambda: _factor(stub) == 2.0, what="the version published after the odd folders")
    assert sorted(_status(models)) == [1, version]
    assert all(s.status.error_message == "" for s in _status(models).values())


def test_a_copy_slower_than_many_polls_is_served_once_complete(server, saved):
    """Copied by hand, file by file, the SavedModel file first: every poll
    during the copy fails to load it, and the finished copy is served."""
    served, base, stub, models = server
    target = base / "2"
    files = sorted((p.relative_to(saved / "2") for p in (saved / "2").rglob("*") if p.is_file()),
                   key=lambda p: (p.name != "saved_model.pb", str(p)))
    seen_failing = False
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(saved / "2" / relative, target / relative)
        deadline = time.time() + 0.6  # six polls between two files
        while time.time() < deadline:
            status = _status(models).get(2)
            seen_failing |= status is not None and bool(status.status.error_message)
            time.sleep(0.05)
    assert seen_failing, "the half-copied version was meant to fail to load first"
    _wait(lambda: _factor(stub) == 2.0, what="the completed copy")
    assert _status(models)[2].status.error_message == ""


def test_a_poller_that_raises_is_shown_in_the_status_and_goes_on(tmp_path, saved, monkeypatch):
    base = tmp_path / "toy"
    shutil.copytree(saved / "1", base / "1")
    served = Server({"toy": str(base)}, port=0, rest_api_port=0, poll_seconds=0.1, metrics_path="/metrics")
    served.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{served.port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        aspired = config.aspired

        def broken(*args):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(config, "aspired", broken)
        _wait(lambda: "polling failed (RuntimeError: disk on fire)" in _status(models)[1].status.error_message,
              what="the poller's error in the status")
        connection = http.client.HTTPConnection("127.0.0.1", served.rest_api_port, timeout=30)
        connection.request("GET", "/v1/models/toy")
        assert "disk on fire" in connection.getresponse().read().decode()
        connection.request("GET", "/metrics")
        failures = re.search(r'^serving_background_error_count\{loop="version_poller",model_name="toy"\} (\S+)$',
                             connection.getresponse().read().decode(), re.M)
        assert failures and float(failures.group(1)) >= 1, "each failing poll is counted in the metrics"
        monkeypatch.setattr(config, "aspired", aspired)
        base_path.publish(str(saved / "2"), str(base))
        _wait(lambda: _factor(stub) == 2.0, what="a version pushed after the poller recovered")
        assert all(s.status.error_message == "" for s in _status(models).values())
    finally:
        served.stop()


def test_versions_published_in_the_same_second_never_collide(tmp_path, saved, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.5)
    base = str(tmp_path / "toy")
    numbers, errors = [], []

    def push():
        try:
            numbers.append(base_path.publish(str(saved / "1"), base)[0])
        except Exception as e:  # pragma: no cover - shown by the assertion
            errors.append(e)

    threads = [threading.Thread(target=push) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == list(range(1_700_000_000, 1_700_000_006))
    assert sorted(os.listdir(base)) == sorted(str(n) for n in numbers)


def test_a_push_that_fails_half_way_leaves_nothing_behind(server, saved, monkeypatch):
    served, base, stub, models = server
    copied = []
    real_copy = shutil.copyfile

    def disk_fills(src, dst, **kwargs):
        if copied:
            raise OSError(errno.ENOSPC, "No space left on device")
        copied.append(src)
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", disk_fills)
    with pytest.raises(shutil.Error, match="No space left"):
        base_path.publish(str(saved / "2"), str(base))
    monkeypatch.undo()
    assert copied, "the copy was meant to start"
    assert os.listdir(base) == ["1"]
    time.sleep(0.3)
    assert sorted(_status(models)) == [1] and _factor(stub) == 1.0


def _pusher_inputs(tmp_path, saved):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "trainer")
    shutil.copytree(saved / "3", tmp_path / "trainer" / "Format-Serving")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    return {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]}


def test_the_pipeline_pusher_and_a_rollback_in_the_same_second_get_their_own_versions(tmp_path, saved, monkeypatch):
    from taxi_pipeline.pipeline.pusher import Executor

    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.2)
    base = tmp_path / "serving"
    rolled_back, _ = base_path.publish(str(saved / "1"), str(base))  # what a rollback does
    properties = {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(
        pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base))))}
    pushes = []
    for i in range(2):
        pushed = standard_artifacts.PushedModel()
        pushed.uri = str(tmp_path / f"pushed{i}")
        Executor().Do(_pusher_inputs(tmp_path / f"run{i}", saved),
                      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]}, properties)
        pushes.append(pushed)
    versions = [int(p.get_string_custom_property("pushed_version")) for p in pushes]
    assert [rolled_back, *versions] == [1_800_000_000, 1_800_000_001, 1_800_000_002]
    for pushed, version in zip(pushes, versions):
        assert pushed.get_string_custom_property("pushed_destination") == str(base / str(version))
        loaded = tf.saved_model.load(str(base / str(version)))
        assert float(loaded.factor.numpy()) == 3.0, "each push wrote its own model"


def test_a_rollback_waits_for_no_run_it_is_refused_while_one_holds_the_output(tmp_path, capfd):
    from taxi_pipeline.registry.__main__ import main
    from taxi_pipeline.runs.layout import OutputLayout

    layout = OutputLayout(str(tmp_path))
    open(layout.metadata_path, "w").close()
    with layout.exclusive("local_runner run 2026-01-01T00:00:00"):
        with pytest.raises(SystemExit) as exit_:
            main(["--output_dir", str(tmp_path), "rollback", "--model", "taxi", "--to", "1"])
    assert exit_.value.code == 1
    assert "is in use by" in capfd.readouterr().err
    assert not os.path.exists(os.path.join(str(tmp_path), "serving_model"))
