"""What the shared pipeline factory needs to know about a model.

A model is a folder under `models/` whose `__init__.py` exposes `SPEC`, an
instance of `ModelDefinition`. The factory never branches on a model's name: every
difference between models is a field here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:  # hints only: the runners parse their flags before TFX and TFMA load
    import tensorflow_model_analysis as tfma
    from tfx.dsl.components.base import base_node

# The factory's `tuning`: search hyper-parameters now, or train with the best
# values of the latest search recorded in ML Metadata.
TUNE_SEARCH = "search"
TUNE_LATEST = "latest"

# What every model's preprocessing_fn and run_fn build on (taxi_pipeline/modeling).
SHARED_CODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "modeling")

# Raw column types as TFDV reports them in statistics.
INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"


@dataclasses.dataclass(frozen=True)
class ModelDefinition:
    """Describes one model to the pipeline factory and the runners.

    Attributes:
      name: the `--pipeline` value, also the folder name under `models/`.
      serving_name: model name under `serving_model/` and in TF Serving.
      package_dir: the model's folder; its sources fingerprint the cache.
      default_data: embedded data the pipeline reads when `--data` is absent.
      raw_columns: raw input columns and their types, the data contract the
        pipeline checks before training.
      example_gen: builds the ExampleGen component for a data path.
      check_data: raises `validation.InputDataError` naming the problem when a
        local data path cannot feed the model; runs before the pipeline starts.
      preprocessing_fn: dotted path of the tf.Transform preprocessing_fn.
      run_fn: dotted path of the Trainer's run_fn.
      tuner_fn: dotted path of the Tuner's tuner_fn (`--tune`); its search
        space sits next to the model's hyper-parameters.
      eval_config: builds the TFMA EvalConfig (thresholds decide blessing).
      headline_metrics: metric names the runners print after a run.
      train_steps: default number of training steps.
      eval_steps: default number of evaluation steps during training.
      hyperparameters: passed to the preprocessing_fn and run_fn through
        `custom_config`, so they live in one place and are part of the cache key.
      client: dotted path of the module that queries the served model from the
        command line (`python -m taxi_pipeline.serving.client <name>`): it
        defines `HELP`, `add_arguments(parser)` and `query(client, args, out)`.
    """

    name: str
    serving_name: str
    package_dir: str
    default_data: str
    raw_columns: Mapping[str, str]
    example_gen: Callable[[str], base_node.BaseNode]
    check_data: Callable[[str], object]
    preprocessing_fn: str
    run_fn: str
    tuner_fn: str
    eval_config: Callable[[], tfma.EvalConfig]
    headline_metrics: Sequence[str]
    train_steps: int
    eval_steps: int
    hyperparameters: Mapping[str, object] = dataclasses.field(default_factory=dict)
    client: str = ""

    @property
    def pipeline_name(self) -> str:
        """The TFX pipeline name; Kubeflow allows only [a-z0-9-] in it."""
        return self.serving_name.replace("_", "-")

    def code_version(self) -> str:
        """Hash of the Python sources of the model and of `SHARED_CODE_DIR`.

        The Transform and Trainer reference code by dotted path, which TFX's
        cache cannot see into; this hash in their `custom_config` makes an edit
        to the model's code, or to the shared code its run_fn calls (parsing
        in serving graphs, fitting, saving), invalidate their cached outputs.
        """
        digest = hashlib.sha256()
        for label, top in (("model", self.package_dir), ("shared", SHARED_CODE_DIR)):
            for root, dirs, files in os.walk(top):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for file_name in sorted(files):
                    if file_name.endswith(".py"):
                        path = os.path.join(root, file_name)
                        digest.update(f"{label}/{os.path.relpath(path, top)}".encode())
                        with open(path, "rb") as f:
                            digest.update(f.read())
        return digest.hexdigest()[:16]

    def custom_config(self) -> dict:
        """The `custom_config` given to this model's Transform and Trainer."""
        return {
            "hyperparameters": dict(self.hyperparameters),
            "code_version": self.code_version(),
        }
