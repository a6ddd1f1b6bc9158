"""TFX's Pusher, writing each version folder whole.

TFX's filesystem Pusher copies the model straight into `<base>/<time>/`,
`saved_model.pb` last: a server that polls during a slow copy may fail to load
it, a copy that fails half-way leaves a folder that looks like a version, and
a push in the same second as a rollback finds the folder taken and records
the rollback's copy as its own. On a local base path this executor publishes
through `serving.base_path` instead (staged, renamed, numbered under a lock);
object stores, which have no atomic rename, keep TFX's own copy.
"""

from __future__ import annotations

from typing import Any, Dict, List

from tfx import types
from tfx.components import Pusher
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from taxi_pipeline.contract import base_path


class Executor(tfx_pusher.Executor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base = destination.filesystem.base_directory
        if destination.WhichOneof("destination") != "filesystem" or "://" in base:
            return super().Do(input_dict, output_dict, exec_properties)
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed)
            return
        model_path = self.GetModelPath(input_dict)
        version, serving_path = base_path.publish(model_path, base)
        io_utils.copy_dir(model_path, pushed.uri)
        self._MarkPushed(pushed, pushed_destination=serving_path, pushed_version=str(version))


def atomic_pusher(**kwargs) -> Pusher:
    """TFX's Pusher component, run by this module's Executor."""
    return Pusher(custom_executor_spec=executor_spec.ExecutorClassSpec(Executor), **kwargs)
