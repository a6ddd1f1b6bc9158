"""Benchmark: a pipeline on N× its data, one machine.

Taxi: N × 15,002 rows are resampled (with replacement, a fixed seed) from the
shipped CSV into a temporary folder. NER (`--pipeline ner`): the embedded GMB
file is repeated N times (N files in one folder). `local_runner.py` runs on
them into a fresh output folder with the default flags (Beam arguments after
`--` are passed on). Printed per N: wall time, peak RSS of the runner and its
children, each stage's time from its ML Metadata execution (create to last
update), rows (taxi) or sentences (NER) per second of the ExampleGen and eval
examples per second of the Evaluator, and the eval metrics. Peak RSS is that
of the largest single process (the runner or a Beam worker), as getrusage
reports.

    .venv/bin/python bench/scale.py [--pipeline taxi|ner] [--factors 1 10 100] [--train_steps N] [-- beam args]
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

STAGES = ["ExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator"]
# Per pipeline: its ExampleGen's node id and the metrics printed.
PIPELINES = {
    "taxi": ("CsvExampleGen", ["auc", "binary_accuracy"]),
    "ner": ("FileBasedExampleGen", ["entity_f1", "token_accuracy"]),
}


def _data(pipeline: str, factor: int, folder: str) -> int:
    """Writes the N× data into `folder`; returns its rows (taxi) or sentences (NER)."""
    os.makedirs(folder)
    if pipeline == "ner":
        import models
        from models.ner.readers import check_path

        source = models.get("ner").default_data
        for i in range(factor):
            shutil.copy(source, os.path.join(folder, f"part-{i:04d}.csv"))
        return check_path(folder)
    shipped = pd.read_csv(os.path.join(REPO, "data", "taxi", "data.csv"), dtype=str, keep_default_na=False)
    rows = shipped.sample(n=len(shipped) * factor, replace=factor > 1, random_state=factor)
    rows.to_csv(os.path.join(folder, "data.csv"), index=False)
    return len(rows)


def _stage_seconds(metadata_path: str, pipeline_name: str, example_gen: str):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    seconds = {}
    for stage in STAGES:
        node_id = example_gen if stage == "ExampleGen" else stage
        node = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
        executions = store.get_executions_by_context(node.id) if node else []
        if executions:
            e = max(executions, key=lambda x: x.id)
            seconds[stage] = (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
    return seconds


def _run(pipeline: str, factor: int, train_steps: int, beam_args) -> dict:
    import models
    from taxi_pipeline.records.summary import summarize

    example_gen, metric_names = PIPELINES[pipeline]
    pipeline_name = models.get(pipeline).pipeline_name
    work = tempfile.mkdtemp(prefix=f"scale-{pipeline}-{factor}x-")
    rows = _data(pipeline, factor, os.path.join(work, "data"))
    output = os.path.join(work, "out")
    command = [sys.executable, os.path.join(REPO, "local_runner.py"), "--pipeline", pipeline,
               "--data", os.path.join(work, "data"), "--output_dir", output, "--train_steps", str(train_steps)]
    if beam_args:
        command += ["--", *beam_args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    metadata = os.path.join(output, "metadata.db")
    summary = summarize(metadata, pipeline_name, [*metric_names, "example_count"])
    stages = _stage_seconds(metadata, pipeline_name, example_gen)
    shutil.rmtree(work)  # the N× data and outputs: gigabytes at 100×
    return {"rows": rows, "wall": wall, "rss_gb": max(peak, before) / 2**20, "stages": stages, "metrics": summary.metrics}


def main() -> None:
    argv = sys.argv[1:]
    beam_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pipeline", choices=sorted(PIPELINES), default="taxi")
    p.add_argument("--factors", type=int, nargs="+", default=[1, 10, 100])
    p.add_argument("--train_steps", type=int, default=500)
    args = p.parse_args(argv)
    import taxi_pipeline  # noqa: F401  (Keras 2 before TensorFlow loads)

    metric_names = PIPELINES[args.pipeline][1]
    print(f"{'rows':>10} {'wall s':>7} {'RSS GB':>7} " + " ".join(f"{s:>13}" for s in STAGES)
          + f" {'gen rows/s':>10} {'eval ex/s':>9} " + " ".join(f"{m:>15}" for m in metric_names), flush=True)
    for factor in args.factors:
        r = _run(args.pipeline, factor, args.train_steps, beam_args)
        st = r["stages"]
        eval_rows = r["metrics"].get("example_count", 0)
        print(f"{r['rows']:>10,} {r['wall']:7.0f} {r['rss_gb']:7.2f} "
              + " ".join(f"{st.get(s, float('nan')):12.0f}s" for s in STAGES)
              + f" {r['rows'] / st['ExampleGen']:10,.0f} {eval_rows / st['Evaluator']:9,.0f} "
              + " ".join(f"{r['metrics'].get(m, float('nan')):15.4f}" for m in metric_names),
              flush=True)


if __name__ == "__main__":
    main()
