"""Is the trained model servable? Checked before the Pusher, which needs the answer.

On Kubeflow, TFX's InfraValidator loads the model in real TF Serving
(`taxi_pipeline.kubeflow.infra_validator`). Locally there is no TF Serving
binary, so `LocalServingCheck` does the same with this package's TF
Serving-API model server code. Both write an InfraBlessing the Pusher honours.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import base_component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from taxi_pipeline import settings
from taxi_pipeline.contract.definition import ModelDefinition


def _stored_examples(examples: standard_artifacts.Examples, split: str, count: int) -> np.ndarray:
    """The first `count` serialized tf.Examples of a split, as ExampleGen stored them."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    dataset = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
    return np.array([record.numpy() for record in dataset.take(count)], dtype=object)


def serving_problem(saved_model_dir: str, signature_name: str, serialized_examples: np.ndarray) -> str:
    """Why the model cannot serve, or "" when it can: it loads as a version of
    the local TF Serving-API server, has `serving_default` (what TF Serving
    answers by default), and answers every example through `signature_name`."""
    from taxi_pipeline.serving import config  # only where the check runs
    from taxi_pipeline.serving.versions import ModelManager

    with tempfile.TemporaryDirectory() as base:
        os.symlink(os.path.abspath(saved_model_dir), os.path.join(base, "1"))
        manager = ModelManager(config.build({"candidate": base}), poll_seconds=0)
        manager.start()
        (loaded,) = manager.model("candidate").statuses()
        if loaded.error:
            return f"it does not load: {loaded.error}"
        if "serving_default" not in loaded.model.signatures:
            return "it has no serving_default signature"
        try:
            name = manager.examples_input("candidate", None, signature_name)
            _, outputs = manager.run("candidate", None, signature_name, {name: serialized_examples})
        except Exception as e:  # the server's own error, as a client would see it
            return f"{signature_name} failed: {type(e).__name__}: {e}"
    wrong = {k: len(v) for k, v in outputs.items() if len(v) != len(serialized_examples)}
    return f"{signature_name} answered {wrong} for {len(serialized_examples)} examples" if wrong else ""


@component
def LocalServingCheck(
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    signature_name: Parameter[str],
    num_examples: Parameter[int] = settings.INFRA_VALIDATION_EXAMPLES,
) -> None:
    """The local pipeline's InfraValidator: `serving_problem` on a few stored
    eval examples. A model that fails is not blessed, so not pushed; the log
    says why."""
    problem = serving_problem(
        path_utils.serving_model_path(model.uri),
        signature_name,
        _stored_examples(examples, "eval", num_examples),
    )
    if problem:
        logging.error("LocalServingCheck: the model is not servable: %s", problem)
    blessing.set_int_custom_property("blessed", int(not problem))
    # TFX's InfraValidator leaves the same marker file in its blessing.
    marker = "INFRA_NOT_BLESSED" if problem else "INFRA_BLESSED"
    with tf.io.gfile.GFile(os.path.join(blessing.uri, marker), "w") as f:
        f.write(problem)


def local_serving_check(
    model: ModelDefinition, trained_model: types.BaseChannel, examples: types.BaseChannel
) -> base_component.BaseComponent:
    """The local stand-in for `cluster_infra_validator`, same inputs and output."""
    return LocalServingCheck(
        model=trained_model,
        examples=examples,
        signature_name=model.eval_config().model_specs[0].signature_name,
    ).with_id("InfraValidator")
