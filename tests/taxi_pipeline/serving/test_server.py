"""The local TF Serving-API server over pushed models, queried by the gRPC client and REST."""

import base64
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc, regression_pb2

import models
from taxi_pipeline.modeling.examples import to_tf_example
from taxi_pipeline.serving import config
from models.ner import client as ner_client
from models.taxi import client as taxi_client
from taxi_pipeline.serving.client import main as client_main
from tests.conftest import RTOL


def _rest(server, path, body=None):
    url = f"http://127.0.0.1:{server.rest_api_port}{path}"
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _taxi_rows(taxi_frame, n=20):
    return [row for _, row in taxi_frame.head(n).iterrows()]


def test_grpc_taxi_scores_match_the_saved_model(served, taxi_frame):
    _, client, _, pushed = served
    rows = _taxi_rows(taxi_frame)
    served_scores = taxi_client.score_rows(client, rows)
    columns = models.get("taxi").raw_columns
    serialized = tf.constant([to_tf_example(r, columns).SerializeToString() for r in rows])
    local = tf.saved_model.load(pushed["chicago_taxi"]).signatures["serving_default"](examples=serialized)
    np.testing.assert_allclose(served_scores, local["probabilities"].numpy().reshape(-1), rtol=RTOL)


def test_grpc_and_rest_ner_tags_match_the_saved_model(served):
    server, client, _, pushed = served
    sentences = ["London on Monday evening", "Angela Merkel visited Paris ."]
    local = tf.saved_model.load(pushed["ner"]).signatures["serving_default"](text=tf.constant(sentences))
    expected = [
        [(t.decode(), g.decode()) for t, g in zip(tokens, tags) if t]
        for tokens, tags in zip(local["tokens"].numpy(), local["tags"].numpy())
    ]
    tagged = ner_client.tag_text(client, sentences)
    assert [t.pairs() for t in tagged] == expected
    assert tagged[0].entities()[0][0] == "London", "entities carry the sentence's own text"
    status, body = _rest(server, "/v1/models/ner:predict", {"instances": sentences})
    assert status == 200
    assert [list(zip(p["tokens"], p["tags"])) for p in body["predictions"]] == [
        [(t, g) for t, g in row] + [("", "")] * (len(body["predictions"][i]["tokens"]) - len(row))
        for i, row in enumerate(expected)
    ]


def test_client_cli_prints_tags_and_entities(served, capsys):
    server = served[0]
    sentence = "Angela  Merkel visited London on Monday"
    client_main(["--target", f"127.0.0.1:{server.port}", "ner", "--text", sentence])
    pairs, *entities = capsys.readouterr().out.splitlines()
    assert [p.rsplit("/", 1)[0] for p in pairs.split(" ")] == ["Angela", "Merkel", "visited", "London", "on", "Monday"]
    for line in entities:
        kind, start, end, text = line.strip().split("\t")
        assert sentence[int(start):int(end)] == text and kind in {"geo", "org", "per", "gpe", "tim", "art", "eve", "nat"}
    assert ("geo", "London") in [(e.split("\t")[0].strip(), e.split("\t")[3]) for e in entities]


def test_rest_predict_b64_examples_and_columnar(served, taxi_frame):
    server, client, _, _ = served
    rows = _taxi_rows(taxi_frame, 5)
    columns = models.get("taxi").raw_columns
    b64 = [{"b64": base64.b64encode(to_tf_example(r, columns).SerializeToString()).decode()} for r in rows]
    status, row_format = _rest(server, "/v1/models/chicago_taxi:predict", {"instances": b64})
    assert status == 200
    status, columnar = _rest(server, "/v1/models/chicago_taxi/versions/1:predict", {"inputs": {"examples": b64}})
    assert status == 200
    expected = taxi_client.score_rows(client, rows)
    np.testing.assert_allclose(np.array(row_format["predictions"]).reshape(-1), expected, rtol=RTOL)
    np.testing.assert_allclose(np.array(columnar["outputs"]).reshape(-1), expected, rtol=RTOL)


def test_classify_and_regress(served, taxi_frame):
    server, client, _, _ = served
    rows = _taxi_rows(taxi_frame, 3)
    expected = taxi_client.score_rows(client, rows)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    columns = models.get("taxi").raw_columns
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "chicago_taxi"
    request.input.example_list.examples.extend(to_tf_example(r, columns) for r in rows)
    result = stub.Classify(request, timeout=30).result
    np.testing.assert_allclose([c.classes[1].score for c in result.classifications], expected, rtol=RTOL)
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "chicago_taxi"
    regress.input.CopyFrom(request.input)
    values = [r.value for r in stub.Regress(regress, timeout=30).result.regressions]
    np.testing.assert_allclose(values, expected, rtol=RTOL)
    example = {"payment_type": "Cash", "fare": 9.5, "trip_miles": 1.5, "trip_start_hour": 9}
    status, body = _rest(server, "/v1/models/chicago_taxi:classify", {"examples": [example]})
    assert status == 200 and [label for label, _ in body["results"][0]] == ["0", "1"]


def test_metadata_and_status(served):
    server, client, _, _ = served
    meta = client.metadata("ner")
    assert meta["version"] == 1
    assert {"serving_default", "tag_tokens"} <= set(meta["signature_def"])
    assert client.status("chicago_taxi") == [{"version": "1", "state": "AVAILABLE"}]
    status, body = _rest(server, "/v1/models/chicago_taxi")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _rest(server, "/v1/models/ner/versions/1/metadata")
    assert status == 200 and "serving_default" in body["metadata"]["signature_def"]["signatureDef"]


@pytest.mark.parametrize(
    "model, version, inputs, code",
    [
        ("nope", None, {"text": np.array([b"x"], dtype=object)}, grpc.StatusCode.NOT_FOUND),
        ("ner", 99, {"text": np.array([b"x"], dtype=object)}, grpc.StatusCode.NOT_FOUND),
        ("ner", None, {"sentence": np.array([b"x"], dtype=object)}, grpc.StatusCode.INVALID_ARGUMENT),
        ("ner", None, {"text": np.array([1.0, 2.0])}, grpc.StatusCode.INVALID_ARGUMENT),
        ("ner", None, {"text": np.array([[b"x"]], dtype=object)}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_grpc_requests_get_tf_serving_status_codes(served, model, version, inputs, code):
    _, client, _, _ = served
    with pytest.raises(grpc.RpcError) as error:
        client.predict(model, inputs, version=version)
    assert error.value.code() == code
    assert error.value.details()


@pytest.mark.parametrize(
    "path, body, code",
    [
        ("/v1/models/nope:predict", {"instances": ["x"]}, 404),
        ("/v1/models/ner/versions/7:predict", {"instances": ["x"]}, 404),
        ("/v1/models/ner:predict", b"{not json", 400),
        ("/v1/models/ner:predict", {"instances": [{"sentence": "x"}]}, 400),
        ("/v1/models/ner:predict", {"rows": []}, 400),
        ("/v1/models/ner:explode", {"instances": ["x"]}, 404),
    ],
)
def test_bad_rest_requests_get_http_codes(served, path, body, code):
    server, client, _, _ = served
    status, reply = _rest(server, path, body)
    assert status == code and reply["error"]
    assert client.status("ner")[0]["state"] == "AVAILABLE", "the server stays up"


def test_new_version_is_picked_up_without_failing_requests(served):
    server, client, root, pushed = served
    failures, versions, stop = [], set(), threading.Event()

    def loop():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "ner"
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.array([b"London on Monday"], dtype=object)))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        while not stop.is_set():
            try:
                versions.add(stub.Predict(request, timeout=30).model_spec.version.value)
            except grpc.RpcError as e:
                failures.append(e)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        time.sleep(0.5)
        shutil.copytree(pushed["ner"], root / "ner" / "2")
        deadline = time.time() + 60
        while 2 not in versions and time.time() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert versions >= {1, 2}
    assert [s["state"] for s in client.status("ner")] == ["END", "AVAILABLE"]


def test_corrupt_version_leaves_the_old_one_serving(served, taxi_frame):
    server, client, root, _ = served
    broken = root / "chicago_taxi" / "5"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a saved model")
    deadline = time.time() + 30
    while time.time() < deadline and not any(s["version"] == "5" and s["state"] == "END" for s in client.status("chicago_taxi")):
        time.sleep(0.2)
    statuses = {s["version"]: s for s in client.status("chicago_taxi")}
    assert statuses["5"]["state"] == "END" and statuses["5"]["status"]["error_message"]
    assert statuses["1"]["state"] == "AVAILABLE"
    assert len(taxi_client.score_rows(client, _taxi_rows(taxi_frame, 2))) == 2


def test_two_pushed_versions_served_by_policy_and_labels_through_a_reload(ner_run, tmp_path):
    from taxi_pipeline.serving.server import ConfigWatcher, Server

    base = tmp_path / "ner"
    for number in (1, 2):
        shutil.copytree(ner_run[1].pushed_model, base / str(number))

    def write(canary: int) -> None:  # by hand, in TF Serving's text format
        (tmp_path / "models.config").write_text(f"""model_config_list {{
  config {{
    name: "ner"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: {canary} }}
  }}
}}
""")

    write(canary=2)
    path = str(tmp_path / "models.config")
    server = Server(config.read(path), port=0, rest_api_port=-1, poll_seconds=0)
    server.start()
    watcher = ConfigWatcher(path, 0.1, server.manager, config.read(path))
    watcher.start()
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))

    def tag(label: str):
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.version_label = "ner", label
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.array([b"Angela Merkel visited Paris"], dtype=object)))
        response = stub.Predict(request, timeout=30)
        return response.model_spec.version.value, tf.make_ndarray(response.outputs["tags"]).tolist()

    try:
        (stable, tags), (canary, canary_tags) = tag("stable"), tag("canary")
        assert (stable, canary) == (1, 2) and tags == canary_tags
        write(canary=1)
        deadline = time.time() + 30
        while tag("canary")[0] != 1:
            assert time.time() < deadline, "the moved label never took effect"
            time.sleep(0.1)
    finally:
        watcher.stop()
        server.stop()
