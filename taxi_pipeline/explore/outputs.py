"""A model's pipeline outputs, found through ML Metadata for the notebooks.

A notebook names an output folder and a model; everything else (which run,
which evaluation, which statistics) comes from MLMD, never from copied paths.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import List, Optional

from ml_metadata.proto import metadata_store_pb2

from taxi_pipeline.contract import catalog
from taxi_pipeline.records import metadata
from taxi_pipeline.runs.layout import OutputLayout
from taxi_pipeline.settings import DEFAULT_OUTPUT_DIR
from taxi_pipeline.contract.definition import ModelDefinition


class OutputNotFound(LookupError):
    """The output folder cannot answer the question; the message says what to run."""

    def _render_traceback_(self) -> List[str]:
        # IPython shows this instead of a stack trace: the message is the point.
        return [f"{type(self).__name__}: {self}"]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One TFMA evaluation (an Evaluator execution) and its verdict."""

    run_id: str
    created: datetime.datetime
    uri: str
    blessed: Optional[bool]


@dataclasses.dataclass(frozen=True)
class ModelOutputs:
    """The recorded runs of one model's pipeline in one output folder."""

    model: ModelDefinition
    output_dir: str
    runs: List[metadata.Run]

    def latest_artifact(self, type_name: str) -> metadata_store_pb2.Artifact:
        """The newest `type_name` artifact (e.g. "ExampleStatistics") in any run."""
        for run in reversed(self.runs):
            artifact = run.latest(type_name)
            if artifact is not None:
                return artifact
        raise OutputNotFound(
            f"no {type_name} artifact in any of the {len(self.runs)} run(s) of the "
            f"{self.model.pipeline_name} pipeline in {self.output_dir}"
        )

    def evaluations(self) -> List[Evaluation]:
        """Every evaluation, oldest first; a cached one is listed once."""
        found, seen = [], set()
        for run in self.runs:
            evaluation = run.latest("ModelEvaluation")
            if evaluation is None or evaluation.uri in seen:
                continue
            seen.add(evaluation.uri)
            blessing = run.latest("ModelBlessing")
            found.append(
                Evaluation(
                    run_id=run.run_id,
                    created=datetime.datetime.fromtimestamp(run.created_ms / 1000),
                    uri=evaluation.uri,
                    blessed=None if blessing is None else metadata.is_blessed(blessing),
                )
            )
        return found

    def latest_evaluation(self) -> Evaluation:
        """The newest evaluation; OutputNotFound says why there is none."""
        evaluations = self.evaluations()
        if not evaluations:
            raise OutputNotFound(
                f"the {self.model.pipeline_name} pipeline in {self.output_dir} has "
                f"{len(self.runs)} run(s) but no evaluation: every run stopped before "
                "the Evaluator (see its DataGate or Trainer logs, or notebooks/data_validation.ipynb)"
            )
        return evaluations[-1]


def find(output_dir: Optional[str], model_name: str) -> ModelOutputs:
    """The runs of `model_name` recorded under `output_dir` (None: the runners' default).

    Raises OutputNotFound with the command to run when there are none.
    """
    try:
        model = catalog.get(model_name)
    except ValueError as e:
        raise OutputNotFound(str(e)) from None
    output_dir = os.path.abspath(output_dir or DEFAULT_OUTPUT_DIR)
    layout = OutputLayout(output_dir)
    command = f"python local_runner.py --pipeline {model.name} --output_dir {output_dir}"
    if not os.path.isfile(layout.metadata_path):
        raise OutputNotFound(
            f"no pipeline output in {output_dir} (no metadata.db): run `{command}` first"
        )
    runs = metadata.pipeline_runs(layout.metadata_path, model.pipeline_name)
    if not runs:
        raise OutputNotFound(
            f"{layout.metadata_path} holds no run of the {model.pipeline_name} pipeline: "
            f"run `{command}` first"
        )
    return ModelOutputs(model=model, output_dir=output_dir, runs=runs)
