"""Command-line flags shared by `local_runner.py` and `kubeflow_runner.py`."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional, Sequence, Tuple, Type

from taxi_pipeline.contract import catalog
from taxi_pipeline.contract.definition import TUNE_LATEST, TUNE_SEARCH, ModelDefinition

ALL = "all"


def parser(description: str, default_output_dir: str) -> argparse.ArgumentParser:
    """The flags every runner takes; runners add their own on the result."""
    p = argparse.ArgumentParser(
        description=description,
        usage="%(prog)s [flags] [-- beam pipeline args]",
        epilog=(
            "Arguments after `--` go to Apache Beam untouched, e.g. "
            "`-- --runner=DataflowRunner --project=P --region=R "
            "--temp_location=gs://B/tmp` or a Flink/Spark runner's flags."
        ),
    )
    p.add_argument(
        "--pipeline",
        default="taxi",
        choices=catalog.available() + [ALL],
        help="which model's pipeline to run (default: %(default)s); "
        f"`{ALL}` runs every model in turn",
    )
    p.add_argument(
        "--data",
        help="input data for the model instead of its embedded default "
        "(taxi: a directory of CSV files with the Chicago taxi columns; ner: a "
        "GMB ner_dataset.csv, Kubeflow ner.csv or CoNLL file, or a directory of "
        f"them); not allowed with --pipeline {ALL}",
    )
    p.add_argument(
        "--output_dir",
        default=default_output_dir,
        help="where pipeline roots, ML Metadata and pushed models go "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--train_steps",
        type=_positive_int,
        help="training steps (default: the model's own setting)",
    )
    p.add_argument(
        "--eval_steps",
        type=_positive_int,
        help="evaluation steps during training (default: the model's own setting)",
    )
    tuning = p.add_mutually_exclusive_group()
    tuning.add_argument(
        "--tune",
        action="store_true",
        help="search hyper-parameters with TFX's Tuner (the model's own search space) and "
        "train with the best ones found",
    )
    tuning.add_argument(
        "--reuse_tuning",
        action="store_true",
        help="train with the best hyper-parameters of the latest --tune search recorded in "
        "ML Metadata, without searching again",
    )
    p.add_argument(
        "--tune_trials",
        type=_positive_int,
        help="with --tune: trials to run (default: the model's own budget)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show the full absl/Beam/TensorFlow logs on the terminal (they "
        "always go to <output_dir>/logs/)",
    )
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def parse(
    p: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None
) -> Tuple[argparse.Namespace, List[str]]:
    """Parses `argv` into runner flags and the Beam arguments after `--`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: List[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, beam_args = argv[:split], argv[split + 1 :]
    args = p.parse_args(argv)
    if args.pipeline == ALL and args.data:
        p.error(f"--data names one model's data; it cannot be used with --pipeline {ALL}")
    if args.tune_trials and not args.tune:
        p.error("--tune_trials needs --tune")
    return args, beam_args


# Local input at least this big runs on Beam's multi-processing DirectRunner, a
# worker per core (the TFX penguin example's default); below it the workers'
# start-up (seconds per Beam step) costs more than the second core saves
# (`bench/scale.py` at 10× and 100× shows where the two cross).
MULTI_PROCESSING_FROM_BYTES = 100 << 20
MULTI_PROCESSING_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]


def local_beam_args(beam_args: Sequence[str], data_bytes: int) -> List[str]:
    """A local run's Beam arguments: the user's if any, else every core for big input."""
    if beam_args or data_bytes < MULTI_PROCESSING_FROM_BYTES:
        return list(beam_args)
    return list(MULTI_PROCESSING_ARGS)


def tuning(args: argparse.Namespace) -> Optional[str]:
    """The factory's `tuning` for --tune / --reuse_tuning (None: neither)."""
    return TUNE_SEARCH if args.tune else TUNE_LATEST if args.reuse_tuning else None


class RunnerError(ValueError):
    """The runner cannot do what its flags ask (e.g. --reuse_tuning before any --tune)."""


def selected_names(args: argparse.Namespace) -> List[str]:
    """The model names --pipeline selects (no model is imported yet)."""
    return catalog.available() if args.pipeline == ALL else [args.pipeline]


def selected_models(args: argparse.Namespace) -> List[ModelDefinition]:
    """The ModelDefinitions named by --pipeline (this imports TFX)."""
    return [catalog.get(name) for name in selected_names(args)]


def exit_on(errors: Tuple[Type[Exception], ...], run: Callable[[], object]) -> None:
    """Runs `run`; an expected error becomes its message on stderr and exit
    code 1 (argparse's usage errors exit 2)."""
    try:
        run()
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
