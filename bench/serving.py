"""Benchmark: pushed models called in-process against the local server over gRPC.

Measures, in one run on loopback: batch-1 latency p50/p99 of the taxi model
in-process and through `python -m taxi_pipeline.serving` (its own process,
with the C++ gRPC front when built, measured once the front runs both models
itself) called by the project's Python client, throughput of 16 concurrent
gRPC clients sending single examples against in-process calls at batch 16,
and NER latency per sentence; the server once with the README's flags
(--enable_batching) and once tuned (batches of at most 16, 5 ms timeout).
Targets: gRPC p50 <= in-process p50 + 0.5 ms; 16 single-example clients >=
0.5x the in-process batch-16 throughput.

The 16 clients are `serving_load` (C++, `make native`): 16 threads, each with
its own connection, sending one example and waiting for the answer. Python
clients would spend more CPU than the server on these two cores and measure
themselves; their number is printed too, for reference.

    make native && .venv/bin/python bench/serving.py [--serving_root outputs/serving_model]

Needs pushed models: run `python local_runner.py --pipeline all` first.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import taxi_pipeline  # noqa: E402,F401  (Keras 2 before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import models  # noqa: E402
from taxi_pipeline.modeling.examples import to_tf_example  # noqa: E402
from taxi_pipeline.contract import base_path  # noqa: E402
from taxi_pipeline.serving.front import NATIVE_FRONT  # noqa: E402
from taxi_pipeline.serving.monitoring import Metrics  # noqa: E402
from taxi_pipeline.serving.client import ServingClient  # noqa: E402
from models.ner import client as ner_client  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402

LOAD = os.path.join(os.path.dirname(NATIVE_FRONT), "serving_load")

SENTENCES = ["London on Monday evening", "Angela Merkel met Kofi Annan in Zürich on Friday .",
             "Oil prices fell on Tuesday as OPEC agreed to raise output ."]


def _latest(base: str) -> str:
    versions = base_path.local_versions(base)
    if not versions:
        sys.exit(f"no pushed model under {base}: run `python local_runner.py --pipeline all` first")
    return os.path.join(base, str(versions[-1]))


def _percentiles(seconds) -> tuple:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _time_calls(fn, n: int) -> list:
    fn()  # warm up
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _throughput(worker, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def run(i):
        while time.perf_counter() < stop:
            counts[i] += worker()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def _load(port: int, examples: np.ndarray, seconds: float) -> float:
    """Examples per second answered to 16 `serving_load` clients sending `examples`."""
    if not os.access(LOAD, os.X_OK):
        sys.exit(f"{LOAD} is not built: run `make native`")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "chicago_taxi"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples))
    with open(os.path.join(REPO, "build", "native", "bench_predict.bin"), "wb") as f:
        f.write(request.SerializeToString())
    result = json.loads(subprocess.run(
        [LOAD, "--target", f"127.0.0.1:{port}", "--request", f.name, "--clients", "16", "--seconds", str(seconds)],
        check=True, capture_output=True, text=True,
    ).stdout)
    if result["failed"]:
        sys.exit(f"{result['failed']} of the load's calls failed: {result['error']}")
    return result["ok"] * len(examples) / result["seconds"]


def _wait_for_front(server: subprocess.Popen, names) -> None:
    """Reads the server's log until the native front runs `names` (or says it cannot)."""
    waiting = set(names)
    for line in server.stderr:
        for name in list(waiting):
            if f"model {name} version" in line and "runs in" in line:
                waiting.discard(name)
                if "runs in Python" in line:
                    print(f"note: {line.strip()}")
        if not waiting:
            break
    if waiting:
        sys.exit(f"the local server stopped before its front ran {sorted(waiting)}")
    threading.Thread(target=server.stderr.read, daemon=True).start()  # keep its pipe drained


def _count_one(metrics: Metrics) -> None:
    """What the server does for each request it answers in Python, with metrics on."""
    with metrics.request("Predict", "GRPC") as record:
        record.model, record.version, record.signature, record.status = "chicago_taxi", "1", "serving_default", "OK"


def _measure_server(args, flags, examples) -> dict:
    """Latencies and throughputs through `python -m taxi_pipeline.serving FLAGS`."""
    port = _free_port()
    native = os.access(NATIVE_FRONT, os.X_OK)
    server = subprocess.Popen(
        [sys.executable, "-m", "taxi_pipeline.serving", "--port", str(port), "--rest_api_port", "0",
         "--model_config_file", os.path.join(args.serving_root, "models.config"), *flags],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if native else subprocess.DEVNULL, text=True,
    )
    try:
        if native:
            _wait_for_front(server, ("chicago_taxi", "ner"))
        client = ServingClient(f"127.0.0.1:{port}", timeout=30)
        deadline = time.time() + 120
        while True:
            try:
                client.status("chicago_taxi")
                client.status("ner")
                break
            except Exception:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the local server did not start")
                time.sleep(0.5)
        result = {
            "grpc_1": _time_calls(lambda: client.predict("chicago_taxi", {"examples": examples[:1]}), args.calls),
            "grpc_ner": _time_calls(lambda: ner_client.tag_text(client, SENTENCES[:1]), args.calls),
        }
        clients = [ServingClient(f"127.0.0.1:{port}", timeout=30) for _ in range(16)]
        local_idx = threading.local()

        def one_example():
            if not hasattr(local_idx, "client"):
                local_idx.client = clients[threading.get_ident() % 16]
            local_idx.client.predict("chicago_taxi", {"examples": examples[:1]})
            return 1

        result["python_throughput"] = _throughput(one_example, 16, args.seconds)
        result["throughput"] = _load(port, examples[:1], args.seconds)
        return result
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serving_root", default=os.path.join(REPO, "outputs", "serving_model"))
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    taxi_dir = _latest(os.path.join(args.serving_root, "chicago_taxi"))
    ner_dir = _latest(os.path.join(args.serving_root, "ner"))

    columns = models.get("taxi").raw_columns
    with open(os.path.join(models.get("taxi").default_data, "data.csv"), newline="") as f:
        rows = [r for _, r in zip(range(64), csv.DictReader(f))]
    examples = np.array([to_tf_example(r, columns).SerializeToString() for r in rows], dtype=object)

    taxi = tf.saved_model.load(taxi_dir).signatures["serving_default"]
    ner = tf.saved_model.load(ner_dir).signatures["serving_default"]
    local_1 = _time_calls(lambda: taxi(examples=tf.constant(examples[:1])), args.calls)
    local_16 = _time_calls(lambda: taxi(examples=tf.constant(examples[:16])), args.calls)
    local_ner = _time_calls(lambda: ner(text=tf.constant(SENTENCES[:1])), args.calls)
    local_throughput = 16 / np.median(local_16)

    monitoring_config = os.path.join(tempfile.mkdtemp(prefix="bench-serving-"), "monitoring.config")
    with open(monitoring_config, "w") as f:
        f.write('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
    results = {name: _measure_server(args, flags, examples) for name, flags in (
        ("README flags", ["--enable_batching"]),
        ("README flags + metrics", ["--enable_batching", "--monitoring_config_file", monitoring_config,
                                    "--rest_api_port", str(_free_port())]),
        ("tuned", ["--enable_batching", "--max_batch_size", "16", "--batch_timeout_micros", "5000"]),
    )}
    metrics = Metrics()
    counted = _time_calls(lambda: _count_one(metrics), args.calls * 10)

    l50, l99 = _percentiles(local_1)
    n50, n99 = _percentiles(local_ner)
    print(f"{'latency, p50 / p99 ms':<34} {'taxi b1':>15} {'NER sentence':>15}")
    print(f"{'  in-process':<34} {l50:6.2f} / {l99:6.2f} {n50:6.2f} / {n99:6.2f}")
    for name, r in results.items():
        g50, g99 = _percentiles(r["grpc_1"])
        gn50, gn99 = _percentiles(r["grpc_ner"])
        print(f"{'  gRPC, ' + name:<34} {g50:6.2f} / {g99:6.2f} {gn50:6.2f} / {gn99:6.2f}")
    print(f"taxi throughput, in-process batch 16: {local_throughput:.0f} ex/s")
    without, with_metrics = (_percentiles(results[k]["grpc_1"])[0] for k in ("README flags", "README flags + metrics"))
    print(f"metrics: gRPC p50 {with_metrics - without:+.3f} ms with --monitoring_config_file (target <= 0.05); "
          f"counting one request in Python {np.median(counted) * 1e6:.1f} us (the front counts its own in C++)")
    for name, r in results.items():
        g50, _ = _percentiles(r["grpc_1"])
        print(f"  {name}: 16 gRPC clients x 1 example {r['throughput']:.0f} ex/s "
              f"(ratio {r['throughput'] / local_throughput:.2f}, target >= 0.50); "
              f"gRPC p50 overhead {g50 - l50:.2f} ms (target <= 0.5); "
              f"16 Python client threads {r['python_throughput']:.0f} ex/s")

if __name__ == "__main__":
    main()
