"""Is the trained model servable? Checked before the Pusher, which needs the answer.

On Kubeflow, TFX's InfraValidator loads the model in real TF Serving, started as
a pod next to the pipeline's task, and sends it requests. Locally there is no
TF Serving binary, so `LocalServingCheck` does the same with this package's
TF Serving-API model server code. Both write an InfraBlessing the Pusher honours.

TFX 1.16's `KubeflowV2DagRunner` refuses to compile any instance of
`tfx.components.InfraValidator` (its step builder raises NotImplementedError
for that class alone). `ClusterInfraValidator` is the same component, the same
spec and the same executor, under a class the step builder compiles as an
ordinary container task. The executor then runs TFX's Kubernetes model-server
runner inside the KFP task pod; `_ensure_kfp_pod_env` supplies what that runner
reads from the environment and KFP 2 does not set.
"""

import os
import tempfile
from typing import MutableMapping

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.infra_validator import executor as infra_validator_executor
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import base_component, base_driver, executor_spec
from tfx.proto import infra_validator_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import kube_utils, path_utils

from taxi_pipeline.model_spec import ModelSpec

# Kubernetes mounts the pod's namespace here for its service account.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# TF Serving release matching TensorFlow 2.16, which trains and exports the models.
DEFAULT_TF_SERVING_TAG = "2.16.1"


def _ensure_kfp_pod_env(
    environ: MutableMapping[str, str] = os.environ,
    namespace_file: str = SERVICE_ACCOUNT_NAMESPACE,
) -> None:
    """Fills KFP_POD_NAME / KFP_NAMESPACE, which TFX's Kubernetes runner needs.

    KFP 1 set both; KFP 2 sets only the pod name. Kubernetes gives the pod's
    name as HOSTNAME and its namespace in the service-account mount.
    """
    if kube_utils.KFP_POD_NAME not in environ:
        if "HOSTNAME" not in environ or "KUBERNETES_SERVICE_HOST" not in environ:
            raise RuntimeError(
                "InfraValidator needs a Kubernetes cluster: it starts TF Serving as a pod next to "
                "this task, and this process is not in a Kubernetes pod (no KUBERNETES_SERVICE_HOST)"
            )
        environ[kube_utils.KFP_POD_NAME] = environ["HOSTNAME"]
    if kube_utils.KFP_NAMESPACE not in environ:
        try:
            with open(namespace_file) as f:
                environ[kube_utils.KFP_NAMESPACE] = f.read().strip()
        except OSError as e:
            raise RuntimeError(
                f"InfraValidator cannot tell this pod's namespace: KFP_NAMESPACE is unset and "
                f"{namespace_file} is unreadable ({e.strerror})"
            ) from None


class ClusterExecutor(infra_validator_executor.Executor):
    """TFX's InfraValidator executor, after completing the KFP 2 pod environment."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        _ensure_kfp_pod_env()
        super().Do(input_dict, output_dict, exec_properties)


class ClusterInfraValidator(base_component.BaseComponent):
    """`tfx.components.InfraValidator`, compilable by KubeflowV2DagRunner."""

    SPEC_CLASS = standard_component_specs.InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ClusterExecutor)
    DRIVER_CLASS = base_driver.BaseDriver

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        serving_spec: infra_validator_pb2.ServingSpec,
        request_spec: infra_validator_pb2.RequestSpec,
        validation_spec: infra_validator_pb2.ValidationSpec,
    ):
        super().__init__(
            spec=standard_component_specs.InfraValidatorSpec(
                model=model,
                examples=examples,
                blessing=types.Channel(type=standard_artifacts.InfraBlessing),
                serving_spec=serving_spec,
                request_spec=request_spec,
                validation_spec=validation_spec,
            )
        )


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
    from taxi_pipeline.serving.models import ModelManager

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
    num_examples: Parameter[int] = 3,
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
    model: ModelSpec, trained_model: types.BaseChannel, examples: types.BaseChannel
) -> base_component.BaseComponent:
    """The local stand-in for `cluster_infra_validator`, same inputs and output."""
    return LocalServingCheck(
        model=trained_model,
        examples=examples,
        signature_name=model.eval_config().model_specs[0].signature_name,
    ).with_id("InfraValidator")


def cluster_infra_validator(
    model: ModelSpec,
    trained_model: types.BaseChannel,
    examples: types.BaseChannel,
    tf_serving_tag: str = DEFAULT_TF_SERVING_TAG,
) -> ClusterInfraValidator:
    """Loads the trained model in `tensorflow/serving:<tag>` on the cluster and
    sends it a few stored eval examples through the signature TFMA scores with
    (every model has one that takes serialized tf.Examples)."""
    signature = model.eval_config().model_specs[0].signature_name
    return ClusterInfraValidator(
        model=trained_model,
        examples=examples,
        serving_spec=infra_validator_pb2.ServingSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServing(tags=[tf_serving_tag]),
            kubernetes=infra_validator_pb2.KubernetesConfig(),
        ),
        request_spec=infra_validator_pb2.RequestSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(
                signature_names=[signature]
            ),
            split_name="eval",
            num_examples=3,
        ),
        validation_spec=infra_validator_pb2.ValidationSpec(
            max_loading_time_seconds=600, num_tries=3
        ),
    ).with_id("InfraValidator")
