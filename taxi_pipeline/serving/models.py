"""Loaded models and their versions, as TF Serving keeps them.

Each model has a base path holding numeric version folders. The newest one
that loads is served; a newer one replaces it once it has loaded (requests in
flight keep the object they started with), and a version that fails to load
leaves the previous one serving.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Dict, List, Mapping, Optional, Protocol

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from taxi_pipeline.serving.batching import Batcher

# ModelVersionStatus.State values of tensorflow_serving/apis/get_model_status.proto.
LOADING, AVAILABLE, END = 20, 30, 50
_LOAD_ATTEMPTS = 3


class ServingError(Exception):
    """A request TF Serving would refuse; `code` is a grpc.StatusCode name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class Version:
    """One version folder: its state and, once loaded, the model."""

    number: int
    state: int = LOADING
    error: str = ""
    attempts: int = 0
    model: Optional[object] = None
    signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = dataclasses.field(default_factory=dict)


def _signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    return {k: v for k, v in saved.meta_graphs[0].signature_def.items() if not k.startswith("__")}


def _reason(error: Exception) -> str:
    """The line of a TensorFlow error that says what was wrong with the input."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    noise = ("Graph execution error", "Detected at node", "<stack", "[[", "File ")
    useful = [line for line in lines if not line.startswith(noise)]
    return (useful or lines or [type(error).__name__])[0]


def score_rows(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """[examples, scores] from a signature's outputs, for Classify and Regress."""
    for key in ("scores", "probabilities", "outputs"):
        if key in outputs:
            value = np.asarray(outputs[key], dtype=float)
            return value.reshape(len(value), -1)
    if len(outputs) == 1:
        value = np.asarray(next(iter(outputs.values())), dtype=float)
        return value.reshape(len(value), -1)
    raise ServingError("INVALID_ARGUMENT", f"no score output among {sorted(outputs)}")


def class_scores(row: np.ndarray) -> np.ndarray:
    """Per-class scores; a single sigmoid output is P(class 1), so both classes."""
    return np.array([1 - row[0], row[0]]) if row.size == 1 else row


class VersionListener(Protocol):
    """Told of each version as it starts and stops being served (the native front)."""

    def available(self, name: str, number: int, path: str,
                  signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> None: ...

    def ended(self, name: str, number: int) -> None: ...


class ServedModel:
    """One model name: its base path and loaded versions."""

    def __init__(self, name: str, base_path: str, listener: Optional[VersionListener] = None):
        self.name = name
        self.base_path = base_path
        self._listener = listener
        self._versions: Dict[int, Version] = {}
        self._lock = threading.Lock()

    def poll(self) -> None:
        """Loads version folders not seen before; newest success is served."""
        try:
            found = sorted(int(d) for d in tf.io.gfile.listdir(self.base_path) if d.strip("/").isdigit())
        except tf.errors.NotFoundError:
            found = []
        with self._lock:
            serving = max((n for n, v in self._versions.items() if v.state == AVAILABLE), default=-1)
            # A version may fail while it is still being copied in: retry a few polls.
            candidates = [
                n for n in found
                if n > serving and (n not in self._versions or self._versions[n].attempts < _LOAD_ATTEMPTS)
            ]
        for number in candidates[-1:]:
            self._load(number)

    def _load(self, number: int) -> None:
        with self._lock:
            version = self._versions.setdefault(number, Version(number))
            version.state, version.attempts = LOADING, version.attempts + 1
        path = os.path.join(self.base_path, str(number))
        try:
            model = tf.saved_model.load(path)
            version.signature_defs = _signature_defs(path)
            version.model = model
        except Exception as e:  # any load failure leaves the old version serving
            version.state, version.error = END, f"{type(e).__name__}: {e}"
            logging.error("model %s version %d failed to load: %s", self.name, number, version.error)
            return
        with self._lock:
            replaced = [old for old in self._versions.values() if old.state == AVAILABLE]
            for old in replaced:
                old.state, old.model = END, None
            version.state = AVAILABLE
        logging.info("model %s: serving version %d", self.name, number)
        if self._listener:
            self._listener.available(self.name, number, path, version.signature_defs)
            for old in replaced:
                self._listener.ended(self.name, old.number)

    def version(self, number: Optional[int] = None) -> Version:
        """The served version, or the named one; NOT_FOUND if not available."""
        with self._lock:
            if number is None:
                available = [v for v in self._versions.values() if v.state == AVAILABLE]
                if not available:
                    raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({self.name})")
                return available[-1]
            version = self._versions.get(number)
        if version is None or version.state != AVAILABLE:
            raise ServingError(
                "NOT_FOUND", f"Servable not found for request: Specific({self.name}, {number})"
            )
        return version

    def statuses(self, number: Optional[int] = None) -> List[Version]:
        with self._lock:
            versions = [v for n, v in sorted(self._versions.items()) if number is None or n == number]
        if not versions:
            raise ServingError(
                "NOT_FOUND",
                f"Could not find version {number} of model {self.name}" if number is not None
                else f"Could not find any versions of model {self.name}",
            )
        return versions


class ModelManager:
    """Every served model, polled for new versions in the background."""

    def __init__(
        self, models: Mapping[str, str], poll_seconds: float = 1.0, batcher: Optional[Batcher] = None,
        listener: Optional[VersionListener] = None,
    ):
        self.models = {name: ServedModel(name, path, listener) for name, path in models.items()}
        self._batcher = batcher
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        for model in self.models.values():
            model.poll()
        if self._poll_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="version-poller", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            for model in self.models.values():
                model.poll()

    def stop(self) -> None:
        self._stop.set()

    def model(self, name: str) -> ServedModel:
        if name not in self.models:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
        return self.models[name]

    def examples_input(self, name: str, version: Optional[int], signature: str) -> str:
        """The one input of a signature that takes serialized tf.Examples."""
        function = self.model(name).version(version).model.signatures.get(signature)
        if function is None:
            raise ServingError("INVALID_ARGUMENT", f"Serving signature name: \"{signature}\" not found")
        specs = function.structured_input_signature[1]
        if len(specs) != 1 or next(iter(specs.values())).dtype != tf.string:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"signature {signature!r} does not take serialized tf.Examples (inputs: {sorted(specs)})",
            )
        return next(iter(specs))

    def run(
        self, name: str, version: Optional[int], signature: str, inputs: Mapping[str, np.ndarray]
    ) -> (int, Dict[str, np.ndarray]):
        """Calls a signature; INVALID_ARGUMENT names what does not fit it."""
        served = self.model(name).version(version)
        function = served.model.signatures.get(signature or "serving_default")
        if function is None:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Serving signature name: \"{signature}\" not found in signature def "
                f"(available: {', '.join(sorted(served.model.signatures))})",
            )
        specs = function.structured_input_signature[1]
        unknown = sorted(set(inputs) - set(specs))
        missing = sorted(set(specs) - set(inputs))
        if unknown or missing:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"signature {signature!r} takes inputs {sorted(specs)}; "
                + (f"unknown: {unknown} " if unknown else "")
                + (f"missing: {missing}" if missing else ""),
            )
        arrays = {}
        for key, spec in specs.items():
            value = np.asarray(inputs[key])
            is_text = value.dtype.kind in "SU" or (
                value.dtype == object and all(isinstance(v, (bytes, str)) for v in value.flat)
            )
            if (spec.dtype == tf.string) != is_text:
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f"input {key!r} must be {spec.dtype.name}, got {'strings' if is_text else value.dtype.name}",
                )
            if not spec.shape.is_compatible_with(value.shape):
                raise ServingError(
                    "INVALID_ARGUMENT", f"input {key!r} has shape {list(value.shape)}, signature expects {spec.shape}"
                )
            arrays[key] = value

        def call(batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
            try:
                outputs = function(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in batch.items()})
            except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
                raise ServingError("INVALID_ARGUMENT", _reason(e)) from None
            return {k: v.numpy() for k, v in outputs.items()}

        if self._batcher is None:
            return served.number, call(arrays)
        return served.number, self._batcher.run((name, served.number, signature), call, arrays)
