"""Runs the pipelines on this machine: LocalDagRunner, Beam, SQLite ML Metadata.

    python local_runner.py --pipeline taxi [--data DIR] [--output_dir DIR]
                           [--train_steps N] [-- beam args]
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Optional, Sequence

import taxi_pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from taxi_pipeline.pipeline.data_validation import InputDataError
from taxi_pipeline.runs import runner_flags
from taxi_pipeline.settings import DEFAULT_OUTPUT_DIR

if TYPE_CHECKING:
    from taxi_pipeline.runs import results


def run(argv: Optional[Sequence[str]] = None) -> List[results.RunSummary]:
    """Runs the selected pipelines in turn and returns what each produced."""
    flags = runner_flags.parser(__doc__.splitlines()[0], DEFAULT_OUTPUT_DIR)
    args, beam_args = runner_flags.parse(flags, argv)
    if args.data and "://" not in args.data and not os.path.exists(args.data):
        flags.error(f"--data {args.data}: no such file or directory")
    # TFX and TensorFlow load only now: --help and flag errors answer in a second.
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.metadata import sqlite_metadata_connection_config

    from taxi_pipeline.pipeline.factory import create_pipeline
    from taxi_pipeline.runs import results
    from taxi_pipeline.runs.layout import OutputLayout
    from taxi_pipeline.serving import config as serving_config

    layout = OutputLayout(os.path.abspath(args.output_dir))
    summaries = []
    for model in runner_flags.selected_models(args):
        data = os.path.abspath(args.data) if args.data else model.default_data
        model.check_data(data)
        pipeline = create_pipeline(
            model,
            pipeline_root=layout.pipeline_root(model),
            data_root=data,
            serving_model_dir=layout.serving_model_dir(model),
            train_steps=args.train_steps,
            eval_steps=args.eval_steps,
            beam_pipeline_args=beam_args,
            metadata_connection_config=sqlite_metadata_connection_config(layout.metadata_path),
        )
        LocalDagRunner().run(pipeline)
        summary = results.summarize(
            layout.metadata_path, pipeline.pipeline_info.pipeline_name, model.headline_metrics
        )
        print(summary.describe(), flush=True)
        summaries.append(summary)
    if os.path.isdir(layout.serving_model_root):
        path = serving_config.write_for_serving_root(layout.serving_model_root)
        print(f"TF Serving model config: {path}")
    return summaries


def main() -> None:
    from absl import logging

    logging.set_verbosity(logging.INFO)
    runner_flags.exit_on((InputDataError,), run)


if __name__ == "__main__":
    main()
