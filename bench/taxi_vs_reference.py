"""Benchmark: this project's taxi pipeline against the TFX wheel's reference.

Runs, in one session and on the same data, `local_runner.py --pipeline taxi`
and `tfx/examples/chicago_taxi_pipeline/taxi_pipeline_native_keras.py` (each in
its own process, cold), then scores both trained models on the same eval split
with the same metric code. Prints wall times, their ratio, peak memory, AUC and
binary accuracy. Target: ours <= 0.33x the reference's wall time, with AUC and accuracy >=
the reference's.

    .venv/bin/python bench/taxi_vs_reference.py [--work_dir DIR]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import taxi_pipeline  # noqa: E402,F401  (Keras 2 before TensorFlow loads)
import models  # noqa: E402

DATA = models.get("taxi").default_data
TARGET_RATIO = 0.33


def _run_ours(work_dir: str) -> None:
    import local_runner

    local_runner.run(["--pipeline", "taxi", "--output_dir", work_dir])


def _run_reference(work_dir: str) -> None:
    from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as ref
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    BeamDagRunner().run(
        ref._create_pipeline(  # pylint: disable=protected-access
            pipeline_name="chicago_taxi_native_keras",
            pipeline_root=os.path.join(work_dir, "pipelines"),
            data_root=DATA,
            module_file=os.path.join(os.path.dirname(ref.__file__), "taxi_utils_native_keras.py"),
            serving_model_dir=os.path.join(work_dir, "serving_model"),
            metadata_path=os.path.join(work_dir, "metadata.db"),
            beam_pipeline_args=ref._beam_pipeline_args,  # pylint: disable=protected-access
        )
    )


def _timed_subprocess(which: str, work_dir: str) -> dict:
    """Runs one pipeline cold in a child process; wall time and peak RSS."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--only", which, "--work_dir", work_dir],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work_dir, "log.txt"), "w"),
    )
    wall = time.perf_counter() - start
    with open(os.path.join(work_dir, "peak_rss.json")) as f:
        return {"wall_s": wall, **json.load(f)}


def _eval_examples(work_dir: str):
    import tensorflow as tf

    files = glob.glob(os.path.join(work_dir, "pipelines", "**", "CsvExampleGen", "examples", "*", "Split-eval", "*"), recursive=True)
    return list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


def _auc(scores, labels) -> float:
    """Exact ROC AUC: probability a positive outranks a negative (ties half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _score(model_dir: str, signature: str, output: str, serialized):
    import numpy as np
    import tensorflow as tf

    fn = tf.saved_model.load(model_dir).signatures[signature]
    out = [fn(examples=tf.constant(serialized[i : i + 1024]))[output].numpy().reshape(-1) for i in range(0, len(serialized), 1024)]
    return np.concatenate(out)


def _labels(serialized):
    import numpy as np
    import tensorflow as tf

    labels = []
    for raw in serialized:
        example = tf.train.Example.FromString(raw)
        f = example.features.feature
        fare = (f["fare"].float_list.value or [0.0])[0]
        tips = (f["tips"].float_list.value or [0.0])[0]
        labels.append(np.float32(tips) > np.float32(fare) * np.float32(0.2))
    return np.array(labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work_dir", default=None)
    p.add_argument("--only", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.only:
        os.makedirs(args.work_dir, exist_ok=True)
        (_run_ours if args.only == "ours" else _run_reference)(args.work_dir)
        peak_kib = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        with open(os.path.join(args.work_dir, "peak_rss.json"), "w") as f:
            json.dump({"peak_rss_mib": peak_kib / 1024}, f)
        return

    import numpy as np

    work = args.work_dir or tempfile.mkdtemp(prefix="taxi_bench_")
    runs = {}
    for which in ("reference", "ours"):
        directory = os.path.join(work, which)
        os.makedirs(directory, exist_ok=True)
        runs[which] = _timed_subprocess(which, directory)

    serialized = _eval_examples(os.path.join(work, "ours"))
    labels = _labels(serialized)
    models = {
        "reference": (os.path.join(work, "reference", "serving_model"), "serving_default", "outputs"),
        "ours": (os.path.join(work, "ours", "serving_model", "chicago_taxi"), "score_stored_examples", "probabilities"),
    }
    for which, (base, signature, output) in models.items():
        version = max(os.listdir(base), key=int)
        scores = _score(os.path.join(base, version), signature, output, serialized)
        runs[which]["auc"] = _auc(scores, labels)
        runs[which]["binary_accuracy"] = float(np.mean((scores > 0.5) == labels))

    print(f"eval split: {len(labels)} examples, {labels.mean():.3f} positive; work dir {work}")
    print(f"{'':>10} {'wall s':>8} {'peak MiB':>9} {'AUC':>7} {'accuracy':>9}")
    for which, r in runs.items():
        print(f"{which:>10} {r['wall_s']:8.1f} {r['peak_rss_mib']:9.0f} {r['auc']:7.4f} {r['binary_accuracy']:9.4f}")
    ratio = runs["ours"]["wall_s"] / runs["reference"]["wall_s"]
    ok = ratio <= TARGET_RATIO and all(runs["ours"][m] >= runs["reference"][m] for m in ("auc", "binary_accuracy"))
    print(f"wall-time ratio ours/reference: {ratio:.2f} (target <= {TARGET_RATIO:.2f}); target {'MET' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
