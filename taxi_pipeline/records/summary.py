"""What the newest run of a pipeline produced: blessing, headline metrics,
pushed model (the runners print it after a run; notebooks and tests use it to
find the latest evaluation and pushed model without hand-copied paths)."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

from taxi_pipeline.records.tfma_results import overall_metrics
from taxi_pipeline.records.figures import figure
from taxi_pipeline.records.metadata import is_blessed, is_pushed, pipeline_runs


@dataclasses.dataclass
class RunSummary:
    """The latest run of one pipeline."""

    pipeline_name: str
    run_id: str
    evaluation_uri: Optional[str] = None
    blessed: Optional[bool] = None
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    pushed_model: Optional[str] = None

    def describe(self) -> str:
        """A few human-readable lines for the end of a run."""
        blessing = {True: "BLESSED", False: "NOT blessed", None: "no evaluation"}
        lines = [f"{self.pipeline_name} (run {self.run_id}): model {blessing[self.blessed]}"]
        lines += [f"  {name:>16}: {figure(value)}" for name, value in self.metrics.items()]
        lines.append(
            f"  pushed model: {self.pushed_model}"
            if self.pushed_model
            else "  pushed model: none (only a blessed model is pushed)"
        )
        return "\n".join(lines)


def summarize(
    metadata_path: str, pipeline_name: str, headline_metrics: Sequence[str]
) -> RunSummary:
    """Blessing, headline metrics and pushed model of the newest run."""
    runs = pipeline_runs(metadata_path, pipeline_name)
    if not runs:
        raise LookupError(f"no run of pipeline {pipeline_name!r} in {metadata_path}")
    run = runs[-1]
    summary = RunSummary(pipeline_name=pipeline_name, run_id=run.run_id)
    evaluation = run.latest("ModelEvaluation")
    blessing = run.latest("ModelBlessing")
    pushed = run.latest("PushedModel")
    if blessing is not None:
        summary.blessed = is_blessed(blessing)
    if pushed is not None and is_pushed(pushed):
        summary.pushed_model = pushed.custom_properties["pushed_destination"].string_value
    if evaluation is not None:
        summary.evaluation_uri = evaluation.uri
        summary.metrics = overall_metrics(evaluation.uri, headline_metrics)
    return summary
