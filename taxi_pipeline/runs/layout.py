"""Where a local run writes: everything under one output folder.

    <output_dir>/pipelines/<pipeline>/   pipeline root (artifacts)
    <output_dir>/metadata.db             ML Metadata (SQLite), all pipelines
    <output_dir>/serving_model/<name>/   TF Serving model base paths
    <output_dir>/logs/<--pipeline>-<run id>.log   full logs of each run
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Iterator

from taxi_pipeline.runs import secrets

if TYPE_CHECKING:  # only for hints: the serving code writes files here without TFMA
    from taxi_pipeline.contract.definition import ModelDefinition


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

    def log_path(self, name: str, run_id: str) -> str:
        return os.path.join(self.output_dir, "logs", f"{name}-{run_id}.log")

    @contextlib.contextmanager
    def exclusive(self, run: str) -> Iterator[None]:
        """Holds `<output_dir>/.lock` for one run: a second run on the same
        folder (whose SQLite ML Metadata and pushes it would share) stops with
        OutputInUse naming the holder. The kernel drops the lock when the
        holder exits, however it ends (SIGKILL included): no stale lock."""
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with open(path, encoding="utf-8") as f:
                    holder = f.read().strip() or "another run"
                raise OutputInUse(f"{self.output_dir} is in use by {holder}; wait for it to end or use another --output_dir") from None
            os.ftruncate(fd, 0)
            command = secrets.redact(" ".join(sys.argv))
            os.write(fd, json.dumps({"run": run, "pid": os.getpid(), "command": command}).encode())
            yield
        finally:
            os.close(fd)


def write_atomically(path: str, text: str) -> None:
    """Writes `path` whole or not at all (a temporary file renamed over it), so
    a reader polling it, or a crash while writing, never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def disk_size(path: str) -> int:
    """Bytes in a file, or in every file under a folder (0 if neither)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def new_run_id() -> str:
    """A run id as LocalDagRunner makes them (the start time, ISO 8601), chosen
    before the run so its log file can be named after it."""
    return datetime.datetime.now().isoformat()


class OutputInUse(RuntimeError):
    """Another run holds the output folder."""
