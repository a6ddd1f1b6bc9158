"""Runs the pipelines on this machine: LocalDagRunner, Beam, SQLite ML Metadata.

    python local_runner.py --pipeline taxi [--data DIR] [--output_dir DIR]
                           [--train_steps N] [--tune | --reuse_tuning]
                           [--mlflow_tracking_uri URI] [--verbose] [-- beam args]

Shows one line per component; the full logs of each run go to
<output_dir>/logs/<pipeline>-<run id>.log (and to the terminal with --verbose).
"""

from __future__ import annotations

import os
import argparse
import shutil
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import taxi_pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from taxi_pipeline.pipeline.data_validation import InputDataError
from taxi_pipeline.runs import runner_flags, secrets
from taxi_pipeline.runs.layout import OutputInUse, OutputLayout, disk_size, new_run_id
from taxi_pipeline.runs.progress import PipelineFailed, PlainDisplay, display_for
from taxi_pipeline.runs.run_log import RunLog
from taxi_pipeline.settings import DEFAULT_OUTPUT_DIR

if TYPE_CHECKING:
    from taxi_pipeline.contract.definition import ModelDefinition
    from taxi_pipeline.records.summary import RunSummary


def run(argv: Optional[Sequence[str]] = None, quiet_exit: bool = False) -> List[RunSummary]:
    """Runs the selected pipelines in turn and returns what each produced.

    Raises PipelineFailed naming the component that failed and the log."""
    flags = runner_flags.parser(__doc__.splitlines()[0], DEFAULT_OUTPUT_DIR)
    flags.add_argument(
        "--mlflow_tracking_uri",
        help="also log each run to this MLflow tracking server (parameters, metrics per slice, "
        "trials, the TFMA summary) and register pushed versions in its model registry",
    )
    args, beam_args = runner_flags.parse(flags, argv)
    if args.data and "://" not in args.data and not os.path.exists(args.data):
        flags.error(f"--data {args.data}: no such file or directory")
    names = runner_flags.selected_names(args)
    layout = OutputLayout(os.path.abspath(args.output_dir))
    run_id = new_run_id()
    existed = os.path.exists(layout.output_dir)
    try:
        with layout.exclusive(f"local_runner run {run_id}"), RunLog(verbose=args.verbose, quiet_exit=quiet_exit) as log:
            # From here on TensorFlow's and TFX's start-up noise goes to the first
            # run's log; --help and flag errors above answer in a second.
            log.write_to(layout.log_path(names[0], run_id))
            selected = runner_flags.selected_models(args)
            data = {m.name: os.path.abspath(args.data) if args.data else m.default_data for m in selected}
            for model in selected:
                model.check_data(data[model.name])
            display = display_for(log.terminal, live=not args.verbose)
            try:
                return _run_models(selected, data, layout, run_id, beam_args, args, log, display)
            finally:
                display.close()
    except InputDataError:
        # Refused before any pipeline started: leave no trace of this run.
        if existed:
            os.remove(log.path)
        else:
            shutil.rmtree(layout.output_dir, ignore_errors=True)
        raise


def _run_models(
    selected: List[ModelDefinition], data: Dict[str, str], layout: OutputLayout, run_id: str,
    beam_args: List[str], args: argparse.Namespace, log: RunLog, display: PlainDisplay,
) -> List[RunSummary]:
    from tfx.orchestration.metadata import sqlite_metadata_connection_config

    from taxi_pipeline.pipeline.factory import create_pipeline
    from taxi_pipeline.records import metadata
    from taxi_pipeline.runs import mlflow_log, watched_run
    from taxi_pipeline.serving import config as serving_config

    if args.mlflow_tracking_uri:
        mlflow_log.check_reachable(args.mlflow_tracking_uri)

    summaries = []
    for model in selected:
        if summaries:
            run_id = new_run_id()
            log.write_to(layout.log_path(model.name, run_id))
        data_bytes = disk_size(data[model.name])
        model_beam_args = runner_flags.local_beam_args(beam_args, data_bytes)
        if model_beam_args != beam_args:
            display.print(
                f"  {model.name}: {data_bytes / 2**20:,.0f} MiB of input: Beam runs a worker "
                f"per core ({' '.join(model_beam_args)})"
            )
        pipeline = create_pipeline(
            model,
            pipeline_root=layout.pipeline_root(model),
            data_root=data[model.name],
            serving_model_dir=layout.serving_model_dir(model),
            train_steps=args.train_steps,
            eval_steps=args.eval_steps,
            beam_pipeline_args=model_beam_args,
            metadata_connection_config=sqlite_metadata_connection_config(layout.metadata_path),
            tuning=runner_flags.tuning(args),
            tune_trials=args.tune_trials,
        )
        if args.reuse_tuning and not metadata.recorded_artifacts(layout.metadata_path, model.pipeline_name, "HyperParameters"):
            raise runner_flags.RunnerError(
                f"--reuse_tuning: no tuning result of {model.pipeline_name} in {layout.metadata_path}; "
                "run with --tune first"
            )
        summary = watched_run.run(
            pipeline, model, run_id, layout.metadata_path, data[model.name], display, log.path
        )
        display.print(summary.describe())
        if args.mlflow_tracking_uri:
            try:
                logged = mlflow_log.log_run(args.mlflow_tracking_uri, model, layout.metadata_path, run_id, vars(args),
                                            layout.output_dir)
            except Exception as e:
                raise runner_flags.RunnerError(
                    secrets.redact(f"the run finished, but logging it to MLflow failed: {e!r}")) from e
            display.print(f"  MLflow: run {logged} in experiment {model.pipeline_name} "
                          f"at {secrets.redact(args.mlflow_tracking_uri)}")
        display.print(f"  full log: {log.path}")
        summaries.append(summary)
    if os.path.isdir(layout.serving_model_root):
        path = serving_config.write_for_serving_root(layout.serving_model_root)
        display.print(f"TF Serving model config: {path}")
    return summaries


def main() -> None:
    runner_flags.exit_on((InputDataError, PipelineFailed, runner_flags.RunnerError, OutputInUse), lambda: run(quiet_exit=True))


if __name__ == "__main__":
    main()
