"""Where a local run writes: everything under one output folder.

    <output_dir>/pipelines/<pipeline>/   pipeline root (artifacts)
    <output_dir>/metadata.db             ML Metadata (SQLite), all pipelines
    <output_dir>/serving_model/<name>/   TF Serving model base paths
"""

import dataclasses
import os

from taxi_pipeline.pipeline.definition import ModelDefinition


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    output_dir: str

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.db")

    @property
    def serving_model_root(self) -> str:
        return os.path.join(self.output_dir, "serving_model")

    def pipeline_root(self, model: ModelDefinition) -> str:
        return os.path.join(self.output_dir, "pipelines", model.pipeline_name)

    def serving_model_dir(self, model: ModelDefinition) -> str:
        return os.path.join(self.serving_model_root, model.serving_name)
