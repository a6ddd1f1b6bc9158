"""One local pipeline run a person can watch: a run id known before it
starts (so its log file can be named after it), a progress line per
component, and on failure the component, the error's own message and the
log path instead of a stack trace from inside Beam."""

from __future__ import annotations

import logging
import os
from typing import Optional

from absl import logging as absl_logging
from tfx.dsl.compiler import constants
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.orchestration import pipeline as pipeline_py
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import runtime_parameter_utils

from taxi_pipeline.contract.definition import ModelDefinition
from taxi_pipeline.records import summary
from taxi_pipeline.runs import beam_overhead, component_results
from taxi_pipeline.runs.layout import disk_size
from taxi_pipeline.runs.progress import ComponentWatcher, PipelineFailed, PlainDisplay


class _LocalDagRunnerWithRunId(LocalDagRunner):
    """LocalDagRunner with the run id chosen by the caller: TFX's own is
    substituted inside `run_with_ir`, too late to name the run's log file."""

    def __init__(self, run_id: str):
        super().__init__()
        self._run_id = run_id

    def run_with_ir(self, pipeline, run_options=None):
        runtime_parameter_utils.substitute_runtime_parameter(
            pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: self._run_id}
        )
        return super().run_with_ir(pipeline, run_options)


def error_message(error: BaseException) -> str:
    """The error's own message: the type and text of the innermost cause,
    without the worker tracebacks Beam pastes into the messages it re-raises."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).split("Traceback (most recent call last)")[0].strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _input_size(path: str) -> str:
    return f"reading {disk_size(path) / 2**20:.1f} MiB" if os.path.exists(path) else ""


def run(
    pipeline: pipeline_py.Pipeline,
    model: ModelDefinition,
    run_id: str,
    metadata_path: str,
    data_path: str,
    display: PlainDisplay,
    log_path: Optional[str] = None,
) -> summary.RunSummary:
    """Runs `pipeline` with LocalDagRunner as run `run_id`, showing each
    component on `display`; returns the run's summary or raises PipelineFailed."""
    name = pipeline.pipeline_info.pipeline_name
    example_gens = [c.id for c in pipeline.components if isinstance(c, FileBasedExampleGen)]
    watcher = ComponentWatcher(
        display,
        lambda node: component_results.outcome(metadata_path, name, run_id, node, model.headline_metrics),
        details={node: _input_size(data_path) for node in example_gens},
    )
    absl_logging.set_verbosity(absl_logging.INFO)
    display.print(f"{name}: run {run_id}")
    root = logging.getLogger()
    root.addHandler(watcher)
    # Every component's Beam pipeline runs in this process.
    beam_overhead.install()
    try:
        _LocalDagRunnerWithRunId(run_id).run(pipeline)
    except Exception as e:
        component = watcher.failed()
        logging.getLogger(__name__).exception("%s failed in %s", name, component or "the pipeline")
        raise PipelineFailed(name, component, error_message(e), log_path) from e
    finally:
        root.removeHandler(watcher)
    return summary.summarize(metadata_path, name, model.headline_metrics)
