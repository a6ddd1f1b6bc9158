"""Where a local run writes: everything under one output folder.

    <output_dir>/pipelines/<pipeline>/   pipeline root (artifacts)
    <output_dir>/metadata.db             ML Metadata (SQLite), all pipelines
    <output_dir>/serving_model/<name>/   TF Serving model base paths
"""

import dataclasses
import os

from taxi_pipeline.model_spec import ModelSpec

# The repository checkout: embedded data and default output folders live in it.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where `local_runner.py` writes, and where the notebooks look, by default.
DEFAULT_OUTPUT_DIR = os.path.join(REPO_ROOT, "outputs")


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    output_dir: str

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.db")

    @property
    def serving_model_root(self) -> str:
        return os.path.join(self.output_dir, "serving_model")

    def pipeline_root(self, model: ModelSpec) -> str:
        return os.path.join(self.output_dir, "pipelines", model.pipeline_name)

    def serving_model_dir(self, model: ModelSpec) -> str:
        return os.path.join(self.serving_model_root, model.serving_name)
