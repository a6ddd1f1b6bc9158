"""Runs the pipelines on this machine: LocalDagRunner, Beam, SQLite ML Metadata.

    python local_runner.py --pipeline taxi [--data DIR] [--output_dir DIR]
                           [--train_steps N] [--verbose] [-- beam args]

Shows one line per component; the full logs of each run go to
<output_dir>/logs/<pipeline>-<run id>.log (and to the terminal with --verbose).
"""

from __future__ import annotations

import os
import argparse
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import taxi_pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from taxi_pipeline.pipeline.data_validation import InputDataError
from taxi_pipeline.runs import runner_flags
from taxi_pipeline.runs.layout import OutputLayout, new_run_id
from taxi_pipeline.runs.progress import PipelineFailed, PlainDisplay, display_for
from taxi_pipeline.runs.run_log import RunLog
from taxi_pipeline.settings import DEFAULT_OUTPUT_DIR

if TYPE_CHECKING:
    from taxi_pipeline.pipeline.definition import ModelDefinition
    from taxi_pipeline.runs import results


def run(argv: Optional[Sequence[str]] = None, quiet_exit: bool = False) -> List[results.RunSummary]:
    """Runs the selected pipelines in turn and returns what each produced.

    Raises PipelineFailed naming the component that failed and the log."""
    flags = runner_flags.parser(__doc__.splitlines()[0], DEFAULT_OUTPUT_DIR)
    args, beam_args = runner_flags.parse(flags, argv)
    if args.data and "://" not in args.data and not os.path.exists(args.data):
        flags.error(f"--data {args.data}: no such file or directory")
    names = runner_flags.selected_names(args)
    layout = OutputLayout(os.path.abspath(args.output_dir))
    with RunLog(verbose=args.verbose, quiet_exit=quiet_exit) as log:
        run_id = new_run_id()
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


def _run_models(
    selected: List[ModelDefinition], data: Dict[str, str], layout: OutputLayout, run_id: str,
    beam_args: List[str], args: argparse.Namespace, log: RunLog, display: PlainDisplay,
) -> List[results.RunSummary]:
    from tfx.orchestration.metadata import sqlite_metadata_connection_config

    from taxi_pipeline.pipeline.factory import create_pipeline
    from taxi_pipeline.runs import watched_run
    from taxi_pipeline.serving import config as serving_config

    summaries = []
    for model in selected:
        if summaries:
            run_id = new_run_id()
            log.write_to(layout.log_path(model.name, run_id))
        pipeline = create_pipeline(
            model,
            pipeline_root=layout.pipeline_root(model),
            data_root=data[model.name],
            serving_model_dir=layout.serving_model_dir(model),
            train_steps=args.train_steps,
            eval_steps=args.eval_steps,
            beam_pipeline_args=beam_args,
            metadata_connection_config=sqlite_metadata_connection_config(layout.metadata_path),
        )
        summary = watched_run.run(
            pipeline, model, run_id, layout.metadata_path, data[model.name], display, log.path
        )
        display.print(summary.describe())
        display.print(f"  full log: {log.path}")
        summaries.append(summary)
    if os.path.isdir(layout.serving_model_root):
        path = serving_config.write_for_serving_root(layout.serving_model_root)
        display.print(f"TF Serving model config: {path}")
    return summaries


def main() -> None:
    runner_flags.exit_on((InputDataError, PipelineFailed), lambda: run(quiet_exit=True))


if __name__ == "__main__":
    main()
