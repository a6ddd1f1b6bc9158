"""A pipeline's runs and their artifacts, read back from ML Metadata."""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Mapping, Optional, Tuple

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.components.util import model_utils
from tfx.types import standard_artifacts


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a pipeline and the live artifacts recorded in it, by type name."""

    run_id: str
    created_ms: int
    artifacts: Mapping[str, Tuple[metadata_store_pb2.Artifact, ...]]

    def latest(self, type_name: str) -> Optional[metadata_store_pb2.Artifact]:
        """The newest artifact of `type_name` in this run, or None."""
        found = self.artifacts.get(type_name, ())
        return found[-1] if found else None


def read_only_store(metadata_path: str) -> metadata_store.MetadataStore:
    """The SQLite ML Metadata store of a local run, opened for reading only."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def is_blessed(blessing: metadata_store_pb2.Artifact) -> bool:
    """TFX's own verdict (`model_utils.is_model_blessed`) on the ML Metadata
    record of a ModelBlessing."""
    wrapped = standard_artifacts.ModelBlessing()
    wrapped.set_mlmd_artifact(blessing)
    return model_utils.is_model_blessed(wrapped)


def is_pushed(pushed: metadata_store_pb2.Artifact) -> bool:
    """Whether a PushedModel record says the Pusher pushed (TFX's `pushed` property)."""
    return "pushed" in pushed.custom_properties and pushed.custom_properties["pushed"].int_value == 1


def pipeline_runs(metadata_path: str, pipeline_name: str) -> List[Run]:
    """Every recorded run of `pipeline_name`, oldest first ([] when none).

    TFX records each run as a `pipeline_run` child context of the pipeline;
    outputs of failed executions are not LIVE and are left out.
    """
    store = read_only_store(metadata_path)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    contexts = sorted(
        (c for c in store.get_children_contexts_by_context(pipeline.id) if c.type == "pipeline_run"),
        key=lambda c: (c.create_time_since_epoch, c.id),
    )
    runs = []
    for context in contexts:
        by_type: Dict[str, List[metadata_store_pb2.Artifact]] = {}
        for artifact in sorted(store.get_artifacts_by_context(context.id), key=lambda a: a.id):
            if artifact.state == metadata_store_pb2.Artifact.LIVE:
                by_type.setdefault(type_names.get(artifact.type_id, ""), []).append(artifact)
        runs.append(
            Run(
                run_id=context.name,
                created_ms=context.create_time_since_epoch,
                artifacts={kind: tuple(found) for kind, found in by_type.items()},
            )
        )
    return runs


def recorded_artifacts(metadata_path: str, pipeline_name: str, type_name: str) -> List[metadata_store_pb2.Artifact]:
    """Every live artifact of `type_name` recorded in runs of `pipeline_name`, oldest first."""
    if not os.path.exists(metadata_path):
        return []
    found = {a.id: a for run in pipeline_runs(metadata_path, pipeline_name) for a in run.artifacts.get(type_name, ())}
    return [found[i] for i in sorted(found)]


def latest_run(metadata_path: str, pipeline_name: str) -> Optional[str]:
    """Name (run id) of the newest run of `pipeline_name`, or None."""
    runs = pipeline_runs(metadata_path, pipeline_name)
    return runs[-1].run_id if runs else None
