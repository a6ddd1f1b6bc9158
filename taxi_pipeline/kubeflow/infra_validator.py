"""TFX's InfraValidator on a Kubeflow cluster: the model loaded in real TF Serving.

TFX 1.16's `KubeflowV2DagRunner` refuses to compile any instance of
`tfx.components.InfraValidator` (its step builder raises NotImplementedError
for that class alone). `ClusterInfraValidator` is the same component, the same
spec and the same executor, under a class the step builder compiles as an
ordinary container task. The executor then runs TFX's Kubernetes model-server
runner inside the KFP task pod; `_ensure_kfp_pod_env` supplies what that runner
reads from the environment and KFP 2 does not set. Locally,
`taxi_pipeline.pipeline.servability` stands in for it.
"""

import os
from typing import MutableMapping

from tfx import types
from tfx.components.infra_validator import executor as infra_validator_executor
from tfx.dsl.components.base import base_component, base_driver, executor_spec
from tfx.proto import infra_validator_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import kube_utils

from taxi_pipeline import settings
from taxi_pipeline.contract.definition import ModelDefinition

# Kubernetes mounts the pod's namespace here for its service account.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


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



def cluster_infra_validator(
    model: ModelDefinition,
    trained_model: types.BaseChannel,
    examples: types.BaseChannel,
    tf_serving_tag: str = settings.TF_SERVING_TAG,
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
            num_examples=settings.INFRA_VALIDATION_EXAMPLES,
        ),
        validation_spec=infra_validator_pb2.ValidationSpec(
            max_loading_time_seconds=settings.INFRA_VALIDATION_LOAD_SECONDS, num_tries=3
        ),
    ).with_id("InfraValidator")
