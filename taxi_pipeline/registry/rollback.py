"""Rollback: a blessed version pushed again as the newest version folder.

TF Serving serves the newest version under a model's base path (its default
`latest` policy), so copying an earlier version there under a new, higher
number is what makes every server watching the path serve it again, with no
server restart and nothing rewritten in place. The copy is published whole,
numbered as a push would be (`serving.base_path`); then ML
Metadata records it as a push of its own (a `Rollback` execution from the
source PushedModel to a new one), so `list` shows it and where it came from.
"""

from __future__ import annotations

import os
import shutil

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from taxi_pipeline.contract.definition import ModelDefinition
from taxi_pipeline.records import lineage
from taxi_pipeline.records.lineage import ModelVersion, RegistryError
from taxi_pipeline.contract import base_path


def _record(metadata_path: str, model: ModelDefinition, source: ModelVersion, version: str, destination: str) -> None:
    """A Rollback execution, input the source push, output the new push, in
    the pipeline's context; all in one ML Metadata transaction."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    store = metadata_store.MetadataStore(config)
    source_pushed = source.lineage[-1].artifact
    execution_type = metadata_store_pb2.ExecutionType(name=lineage.ROLLBACK_TYPE)
    execution_type.properties["rollback_of"] = metadata_store_pb2.STRING
    execution = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(execution_type),
        last_known_state=metadata_store_pb2.Execution.COMPLETE,
    )
    execution.properties["rollback_of"].string_value = source.version
    pushed = metadata_store_pb2.Artifact(
        type_id=source_pushed.type_id, uri=destination, state=metadata_store_pb2.Artifact.LIVE
    )
    pushed.custom_properties["pushed"].int_value = 1
    pushed.custom_properties["pushed_destination"].string_value = destination
    pushed.custom_properties["pushed_version"].string_value = version

    def event(kind, key):
        e = metadata_store_pb2.Event(type=kind)
        e.path.steps.add().key = key
        return e

    pipeline = store.get_context_by_type_and_name("pipeline", model.pipeline_name)
    store.put_execution(
        execution,
        [(source_pushed, event(metadata_store_pb2.Event.INPUT, "pushed_model")),
         (pushed, event(metadata_store_pb2.Event.OUTPUT, "pushed_model"))],
        [pipeline],
        reuse_context_if_already_exist=True,
    )


def rollback(metadata_path: str, model: ModelDefinition, serving_dir: str, to_version: str) -> ModelVersion:
    """Pushes blessed version `to_version` again as the newest version; returns the new version."""
    found = lineage.versions(metadata_path, model, serving_dir)
    if to_version not in [v.version for v in found] and os.path.isdir(os.path.join(serving_dir, to_version)):
        raise RegistryError(
            f"{model.serving_name} version {to_version} is in {serving_dir}, but ML Metadata records no "
            "blessed push of it: only a version the pipeline blessed and pushed can be served again"
        )
    source = lineage.find(found, to_version, model.serving_name)
    if not source.blessed:
        raise RegistryError(f"{model.serving_name} version {to_version} was never blessed: it cannot be served again")
    # What was served, or else the Trainer's own export of the same model.
    candidates = [source.destination, os.path.join(source.model_uri, "Format-Serving")]
    files = next((c for c in candidates if c and os.path.isfile(os.path.join(c, "saved_model.pb"))), None)
    if files is None:
        raise RegistryError(f"{model.serving_name} version {to_version}: its files are gone ({source.destination})")
    number, destination = base_path.publish(files, serving_dir)
    version = str(number)
    try:
        _record(metadata_path, model, source, version, destination)
    except Exception:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return lineage.find(lineage.versions(metadata_path, model, serving_dir), version, model.serving_name)
