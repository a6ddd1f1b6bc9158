"""python -m taxi_pipeline.registry over real runs: list, show, diff, rollback,
and the rolled-back version served by the local server to a client built
from tensorflow_serving.apis."""

import json
import os
import re

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

import models
from taxi_pipeline.registry.__main__ import main
from taxi_pipeline.serving.server import Server


def _registry(capfd, output_dir, *argv):
    capfd.readouterr()
    main(["--output_dir", output_dir, *argv])
    return capfd.readouterr().out


def _pushed(*cli_runs):
    """Versions the runs' own Pusher lines reported, in run order."""
    return [v for run in cli_runs for v in re.findall(r"^✓ Pusher +ran .* pushed version (\d+)", run.stdout, re.M)]


def _auc(cli_run):
    return float(re.search(r"^\s+auc: (\S+)$", cli_run.stdout, re.M).group(1))


def test_list_shows_every_push_with_its_metrics_data_code_and_hyperparameters(
        capfd, tuned, taxi_cli_run, taxi_cli_rerun, taxi_slice_dir):
    output_dir, tune, reuse = tuned
    listed = [json.loads(line) for line in _registry(capfd, output_dir, "list", "--model", "taxi", "--json").splitlines()]
    runs = (taxi_cli_run, taxi_cli_rerun, tune, reuse)
    assert [v["version"] for v in listed] == _pushed(*runs)
    for version, run in zip(listed, runs):
        assert version["blessed"] and version["metrics"]["auc"] == pytest.approx(_auc(run), abs=5e-5)
        assert version["data"] == f"{taxi_slice_dir} (span 0)"
        assert version["code_version"] == models.get("taxi").code_version()
    defaults = dict(models.get("taxi").hyperparameters)
    assert listed[0]["hyperparameters"] == defaults
    assert listed[2]["hyperparameters"] != defaults and listed[2]["hyperparameters"] == listed[3]["hyperparameters"]


def test_show_follows_the_lineage_from_data_to_push(capfd, tuned):
    output_dir, tune, _ = tuned
    (version,) = _pushed(tune)
    shown = _registry(capfd, output_dir, "show", version).splitlines()
    assert shown[0].startswith(f"chicago_taxi version {version}: pushed ")
    steps = [line.split()[0] for line in shown[2:16:2]]
    assert steps == ["data", "statistics", "schema", "transform", "model", "evaluation", "push"]
    for uri in shown[3:17:2]:
        assert os.path.exists(uri.strip()), uri
    assert "train" in shown[4] and "rows" in shown[4] and "BLESSED; auc" in shown[12]


def test_diff_puts_metrics_and_hyperparameters_side_by_side(capfd, tuned, taxi_cli_run):
    output_dir, tune, _ = tuned
    (first,) = _pushed(taxi_cli_run)
    (second,) = _pushed(tune)
    rows = {line.split()[0]: line for line in _registry(capfd, output_dir, "diff", first, second).splitlines()[1:]}
    change = _auc(tune) - _auc(taxi_cli_run)
    assert re.search(r"\(([-+]\d\.\d{4})\)", rows["auc"]).group(1) == f"{change:+.4f}"
    tuned_values = [k for k in ("hidden_units", "dropout", "learning_rate") if rows[k].endswith("≠")]
    assert tuned_values, "the tuned version trained with other hyper-parameters"
    assert not rows["seed"].endswith("≠") and not rows["data"].endswith("≠")


def test_rollback_serves_the_old_version_again(capfd, tuned, taxi_cli_run, taxi_frame):
    from taxi_pipeline.modeling.examples import to_tf_example
    from models.taxi import features

    output_dir, _, _ = tuned
    (first,) = _pushed(taxi_cli_run)
    serving_dir = os.path.join(output_dir, "serving_model", "chicago_taxi")
    answer = _registry(capfd, output_dir, "rollback", "--model", "taxi", "--to", first)
    new = re.search(r"pushed again as version (\d+)", answer).group(1)
    assert int(new) == max(int(v) for v in os.listdir(serving_dir) if v.isdigit())
    listed = [json.loads(line) for line in _registry(capfd, output_dir, "list", "--model", "taxi", "--json").splitlines()]
    assert (listed[-1]["version"], listed[-1]["rollback_of"], listed[-1]["serving"]) == (new, first, True)
    assert [v["version"] for v in listed if v["serving"]] == [new]

    server = Server({"chicago_taxi": serving_dir}, port=0, rest_api_port=-1, poll_seconds=0)
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "chicago_taxi"}), timeout=30)
        assert [s.version for s in status.model_version_status] == [int(new)]
        request = predict_pb2.PredictRequest(model_spec={"name": "chicago_taxi"})
        rows = [to_tf_example(r, features.RAW_COLUMNS).SerializeToString() for _, r in taxi_frame.head(5).iterrows()]
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(rows, dtype=tf.string))
        served = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    finally:
        server.stop()
    assert served.model_spec.version.value == int(new)
    original = tf.saved_model.load(os.path.join(os.path.dirname(listed[0]["destination"]), first))
    expected = original.signatures["serving_default"](examples=tf.constant(rows))["probabilities"].numpy()
    assert tf.make_ndarray(served.outputs["probabilities"]) == pytest.approx(expected, rel=1e-5)


def test_bad_requests_are_named_and_change_nothing(capfd, tuned, tmp_path):
    output_dir, _, _ = tuned
    serving_dir = os.path.join(output_dir, "serving_model", "chicago_taxi")
    before = sorted(os.listdir(serving_dir))
    with pytest.raises(SystemExit) as exit_:
        _registry(capfd, output_dir, "rollback", "--model", "taxi", "--to", "123")
    assert exit_.value.code == 1 and "chicago_taxi has no pushed version '123' recorded" in capfd.readouterr().err
    # A version folder nobody blessed (copied in by hand) is refused.
    newest = max(before, key=lambda v: int(v) if v.isdigit() else 0)
    os.rename(os.path.join(serving_dir, newest), os.path.join(serving_dir, "7"))
    try:
        with pytest.raises(SystemExit):
            _registry(capfd, output_dir, "rollback", "--model", "taxi", "--to", "7")
        assert "records no blessed push of it" in capfd.readouterr().err
    finally:
        os.rename(os.path.join(serving_dir, "7"), os.path.join(serving_dir, newest))
    assert sorted(os.listdir(serving_dir)) == before
    with pytest.raises(SystemExit) as exit_:
        main(["list", "--model", "nope"])
    assert exit_.value.code == 2 and "invalid choice: 'nope'" in capfd.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--output_dir", str(tmp_path), "list"])
    assert "no ML Metadata at" in str(exit_.value.code)
