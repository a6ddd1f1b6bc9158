"""Shared fixtures: small slices of the embedded data, and one small pipeline run."""

import dataclasses
import os
import shutil
import subprocess
import sys

import taxi_pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
import pandas as pd
import pytest

import models

TAXI_SLICE_ROWS = 2000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Fixtures that run whole pipelines (minutes): tests using them are marked e2e,
# so `pytest -m "not e2e"` (`make test-fast`) runs the rest in a few minutes.
_PIPELINE_FIXTURES = {"taxi_cli_run", "taxi_cli_rerun", "taxi_run", "taxi_rerun", "tuned", "ner_run", "served"}


def pytest_collection_modifyitems(items):
    for item in items:
        if _PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def taxi_frame() -> pd.DataFrame:
    """The first rows of the embedded taxi CSV, as written in the file."""
    path = os.path.join(models.get("taxi").default_data, "data.csv")
    return pd.read_csv(path, nrows=TAXI_SLICE_ROWS, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def taxi_slice_dir(tmp_path_factory, taxi_frame) -> str:
    """A directory holding one CSV: a small slice of the taxi data."""
    directory = tmp_path_factory.mktemp("taxi_slice")
    taxi_frame.to_csv(directory / "data.csv", index=False)
    return str(directory)


def _run_pipeline(tmp_path_factory, name: str, data: str, train_steps: int):
    """One local pipeline run of model `name` on `data`: (output dir, RunSummary)."""
    import local_runner

    output_dir = str(tmp_path_factory.mktemp(f"{name}_run"))
    (summary,) = local_runner.run(
        ["--pipeline", name, "--data", data, "--output_dir", output_dir,
         "--train_steps", str(train_steps), "--eval_steps", "5"]
    )
    return output_dir, summary


@dataclasses.dataclass(frozen=True)
class CliRun:
    """What `python local_runner.py ...` printed, as a person running it sees it."""

    output_dir: str
    returncode: int
    stdout: str
    stderr: str


def run_local_runner(output_dir: str, *args: str, check: bool = True) -> CliRun:
    """Runs local_runner.py in a process of its own, output piped (no terminal)."""
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "local_runner.py"), "--output_dir", output_dir, *args],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    if check and result.returncode:
        pytest.fail(f"local_runner.py {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return CliRun(output_dir, result.returncode, result.stdout, result.stderr)


def _summary(output_dir: str, name: str):
    from taxi_pipeline.records.summary import summarize
    from taxi_pipeline.runs.layout import OutputLayout

    model = models.get(name)
    return summarize(OutputLayout(output_dir).metadata_path, model.pipeline_name, model.headline_metrics)


_TAXI_ARGS = ("--train_steps", "150", "--eval_steps", "5")


@pytest.fixture(scope="session")
def taxi_cli_run(tmp_path_factory, taxi_slice_dir) -> CliRun:
    """One taxi pipeline run on the slice through the command line, as a user starts it."""
    return run_local_runner(str(tmp_path_factory.mktemp("taxi_run")), "--data", taxi_slice_dir, *_TAXI_ARGS)


@pytest.fixture(scope="session")
def taxi_cli_rerun(taxi_run, taxi_slice_dir) -> CliRun:
    """A second run with unchanged inputs into the same output folder: it
    reuses the cache and evaluates against the first run's blessed model.
    (After `taxi_run`, which reads the first run's summary.)"""
    return run_local_runner(taxi_run[0], "--data", taxi_slice_dir, *_TAXI_ARGS)


@pytest.fixture(scope="session")
def taxi_run(taxi_cli_run):
    """The first taxi run: (output dir, RunSummary)."""
    return taxi_cli_run.output_dir, _summary(taxi_cli_run.output_dir, "taxi")


@pytest.fixture(scope="session")
def taxi_rerun(taxi_run, taxi_cli_rerun):
    """(output dir, first RunSummary, second RunSummary)."""
    output_dir, first = taxi_run
    return output_dir, first, _summary(output_dir, "taxi")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on a loopback port, SQLite backend and artifact
    store in a temporary folder; yields its URI."""
    import time
    import urllib.request

    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", str(folder / "artifacts"),
         "--workers", "1"],
        cwd=str(folder), stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "w"),
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(1)
    yield uri
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="session")
def tuned(tmp_path_factory, taxi_cli_rerun, taxi_slice_dir, mlflow_server):
    """A --tune run of two trials logged to MLflow, then a --reuse_tuning run
    (not logged), in a folder whose ML Metadata is a copy of the taxi runs'
    (their data steps come from the cache). Returns (output dir, tune CliRun,
    reuse CliRun)."""
    output_dir = str(tmp_path_factory.mktemp("tuned"))
    shutil.copy(os.path.join(taxi_cli_rerun.output_dir, "metadata.db"), output_dir)
    args = ("--data", taxi_slice_dir, "--train_steps", "20", "--eval_steps", "2")
    tune = run_local_runner(output_dir, *args, "--tune", "--tune_trials", "2", "--mlflow_tracking_uri", mlflow_server)
    reuse = run_local_runner(output_dir, *args, "--reuse_tuning")
    return output_dir, tune, reuse


def raw_instances(frame: pd.DataFrame, columns) -> list:
    """CSV rows as tf.Transform instance dicts; empty cells become no value."""
    casts = {"INT": int, "FLOAT": float, "STRING": str.encode}
    return [
        {
            name: [casts[kind](row[name])] if row[name] != "" else []
            for name, kind in columns.items()
        }
        for _, row in frame.iterrows()
    ]


@pytest.fixture(scope="session")
def taxi_transform(tmp_path_factory, taxi_frame):
    """Real tf.Transform analysis of the slice with the taxi preprocessing_fn.

    Returns (raw instances, transformed instances, TFTransformOutput).
    """
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from models.taxi import features, preprocessing

    dtypes = {"INT": tf.int64, "FLOAT": tf.float32, "STRING": tf.string}
    spec = {
        name: tf.io.VarLenFeature(dtypes[kind])
        for name, kind in features.RAW_COLUMNS.items()
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    raw = raw_instances(taxi_frame, features.RAW_COLUMNS)
    output_dir = str(tmp_path_factory.mktemp("taxi_transform"))
    with tft_beam.Context(temp_dir=os.path.join(output_dir, "tmp")):
        (transformed, _), transform_fn = (
            raw,
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing.preprocessing_fn, output_record_batches=False
        )
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(
        metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return raw, transformed, tft.TFTransformOutput(output_dir)


NER_SLICE_SENTENCES = 600


@pytest.fixture(scope="session")
def ner_slice_file(tmp_path_factory) -> str:
    """The first sentences of the embedded NER corpus, in its own GMB file."""
    from models.ner import readers

    path = models.get("ner").default_data
    with open(path, "rb") as f:
        text = readers.decode(f.read())
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("Sentence: ")]
    out = tmp_path_factory.mktemp("ner_slice") / "ner_dataset.csv"
    out.write_text("".join(lines[: starts[NER_SLICE_SENTENCES]]), encoding="utf-8")
    return str(out)


@pytest.fixture(scope="session")
def ner_run(tmp_path_factory, ner_slice_file):
    """One local NER pipeline run on the slice: (output dir, RunSummary)."""
    return _run_pipeline(tmp_path_factory, "ner", ner_slice_file, 250)


# The same float32 numbers, up to rounding: the native front runs the graph in
# TensorFlow's session runtime on one thread, which may add up in another order.
RTOL = 1e-5


def native_front() -> str:
    """The built C++ front; `make test` builds it first."""
    from taxi_pipeline.serving.front import NATIVE_FRONT

    if not os.access(NATIVE_FRONT, os.X_OK):
        pytest.fail(f"{NATIVE_FRONT} is not built: run `make native` (or `make test`)")
    return NATIVE_FRONT


@pytest.fixture(scope="module", params=["python", "native"])
def served(request, tmp_path_factory, taxi_run, ner_run):
    """A server on free loopback ports over copies of both pushed models, its
    gRPC answered by Python itself or by the C++ front before it, which runs
    the models in TensorFlow's C API: every gRPC test runs against both."""
    from taxi_pipeline.serving import config
    from taxi_pipeline.serving.server import Server
    from taxi_pipeline.serving.batching import Batcher
    from taxi_pipeline.serving.client import ServingClient

    root = tmp_path_factory.mktemp("serving")
    pushed = {"chicago_taxi": taxi_run[1].pushed_model, "ner": ner_run[1].pushed_model}
    for name, path in pushed.items():
        shutil.copytree(path, root / name / "1")
    models_ = config.read(config.write_for_serving_root(str(root)))
    front = native_front() if request.param == "native" else None
    server = Server(models_, port=0, rest_api_port=0, poll_seconds=0.2, batcher=Batcher(16, 2000), native_front=front)
    server.start()
    if front:  # the front runs both models itself, not only relays them
        assert [server.front.state(name, 1, timeout=120) for name in pushed] == ["loaded", "loaded"]
    client = ServingClient(f"127.0.0.1:{server.port}", timeout=30)
    yield server, client, root, pushed
    client.close()
    server.stop()


def save_scale_model(path: str, factor: float, shape=(None,)) -> None:
    """A SavedModel whose `serving_default` scales input `x` (float32, `shape`)
    by a variable `factor`: small versions to serve, told apart by their answers."""
    import tensorflow as tf

    module = tf.Module()
    module.factor = tf.Variable(factor)
    module.scale = tf.function(lambda x: {"y": x * module.factor},
                               input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    tf.saved_model.save(module, path, signatures=module.scale)
