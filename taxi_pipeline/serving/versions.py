"""Loaded models and their versions, as TF Serving keeps them.

Each model has a base path holding numeric version folders and, from the
model config, a version policy (the latest N, all, or listed versions) and
version labels. The versions the policy names are loaded; one it no longer
names is unloaded once a named one is available (requests in flight keep the
object they started with), so a version that fails to load leaves the
previous one serving.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Dict, List, Mapping, Optional, Protocol, Union

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from taxi_pipeline.contract import base_path
from taxi_pipeline.serving import config
from taxi_pipeline.serving.batching import Batcher
from taxi_pipeline.serving.monitoring import Metrics

State = get_model_status_pb2.ModelVersionStatus.State
LOADING, AVAILABLE, END = State.LOADING, State.AVAILABLE, State.END
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
    fingerprint: tuple = ()  # its files when a load was tried (see _fingerprint)
    signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = dataclasses.field(default_factory=dict)


def _signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    return {k: v for k, v in saved.meta_graphs[0].signature_def.items() if not k.startswith("__")}


def _fingerprint(path: str) -> tuple:
    """The files of a version folder, their sizes and times: a load that
    failed is tried again when this changes."""
    try:
        return tuple(sorted(
            (os.path.join(root, f), tf.io.gfile.stat(os.path.join(root, f)).length,
             tf.io.gfile.stat(os.path.join(root, f)).mtime_nsec)
            for root, _, files in tf.io.gfile.walk(path) for f in files))
    except Exception:  # a file went while we looked: a change too
        return ("unreadable",)


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


Wanted = Union[int, str, None]  # a version number, a version label, or None for the latest


class ServedModel:
    """One model name: its base path, version policy, labels and versions."""

    def __init__(self, spec: model_server_config_pb2.ModelConfig, listener: Optional[VersionListener] = None,
                 metrics: Metrics = Metrics(enabled=False)):
        self.name = spec.name
        self._metrics = metrics
        self.base_path = spec.base_path
        self.policy = spec.model_version_policy
        self.labels: Dict[str, int] = dict(spec.version_labels)
        self._listener = listener
        self._versions: Dict[int, Version] = {}
        self._lock = threading.Lock()
        self.trouble = ""  # why polling is failing, "" while it works

    def poll(self) -> None:
        """Loads the versions the policy asks for, newest first, then unloads
        those it no longer does once one it asks for is available (or none is
        left to ask for): a new version replaces the old one without a gap, and
        one that fails to load leaves the old one serving. A base path that
        cannot be read changes nothing: what is loaded keeps serving."""
        try:
            found = self._complete_versions()
        except Exception as e:  # deleted, unmounted, no permission: TF Serving keeps serving too
            self.report(f"base path {self.base_path} cannot be read ({type(e).__name__}: {_reason(e)}); "
                        "the loaded versions keep serving")
            return
        self.report("")
        with self._lock:
            wanted = config.aspired(self.policy, found)
            to_load = [n for n in wanted if n not in self._versions or self._retry(self._versions[n])]
        for number in reversed(to_load):
            self._load(number)
        with self._lock:
            if wanted and not any(self._versions[n].state == AVAILABLE for n in wanted if n in self._versions):
                return
        self._end(keep=wanted)

    def _complete_versions(self) -> List[int]:
        """Version folders holding a SavedModel file; raises if the base path cannot be listed."""
        found = base_path.versions(tf.io.gfile.listdir(self.base_path))
        return [n for n in found if any(tf.io.gfile.exists(os.path.join(self.base_path, str(n), f))
                                        for f in ("saved_model.pb", "saved_model.pbtxt"))]

    def _retry(self, version: Version) -> bool:
        """Whether an ended version is loaded again: one that failed, a few
        polls in a row and then again whenever its files change (a copy still
        under way, however slow); one unloaded by policy, when it is wanted again."""
        if version.state != END:
            return False
        if not version.error:
            return True
        return version.attempts < _LOAD_ATTEMPTS or _fingerprint(self._path(version.number)) != version.fingerprint

    def report(self, trouble: str, exc_info: bool = False) -> None:
        """Records (and logs, once) what is wrong with this model's polling;
        "" once it is right again. The model's status shows it, and the
        metrics count each failing poll."""
        if trouble:
            self._metrics.background_error("version_poller", self.name)
        if trouble == self.trouble:
            return
        if trouble:
            logging.error("model %s: %s", self.name, trouble, exc_info=exc_info)
        else:
            logging.info("model %s: polling %s works again", self.name, self.base_path)
        self.trouble = trouble

    def _path(self, number: int) -> str:
        return os.path.join(self.base_path, str(number))

    def unload(self) -> None:
        """Ends every version (the model left the config)."""
        self._end(keep=[])

    def _end(self, keep) -> None:
        """Ends the available versions not in `keep`. Each gets a fresh END
        record: requests in flight hold the old object and finish with it."""
        with self._lock:
            ended = [n for n, v in self._versions.items() if v.state == AVAILABLE and n not in keep]
            for number in ended:
                self._versions[number] = Version(number, END)
        for number in ended:
            logging.info("model %s: version %d unloaded", self.name, number)
            if self._listener:
                self._listener.ended(self.name, number)

    def _load(self, number: int) -> None:
        path = self._path(number)
        fingerprint = _fingerprint(path)
        with self._lock:
            previous = self._versions.get(number)
            same = previous is not None and previous.error and previous.fingerprint == fingerprint
            attempts = previous.attempts if same else 0
            version = self._versions[number] = Version(number, LOADING, attempts=attempts + 1,
                                                       fingerprint=fingerprint)
        started = time.perf_counter()
        try:
            model = tf.saved_model.load(path)
            version.signature_defs = _signature_defs(path)
            version.model = model
        except Exception as e:  # any load failure leaves the old version serving
            self._metrics.model_loaded(path, False, time.perf_counter() - started)
            version.state, version.error = END, f"{type(e).__name__}: {e}"
            logging.error("model %s version %d failed to load: %s", self.name, number, version.error)
            return
        self._metrics.model_loaded(path, True, time.perf_counter() - started)
        with self._lock:
            version.state = AVAILABLE
        logging.info("model %s: version %d available", self.name, number)
        if self._listener:
            self._listener.available(self.name, number, path, version.signature_defs)

    def version(self, wanted: Wanted = None) -> Version:
        """The version a request names: the latest available, a number, or a
        label; TF Serving's NOT_FOUND / INVALID_ARGUMENT otherwise. Requests
        keep the object they got even if the version is unloaded meanwhile."""
        if isinstance(wanted, str):
            if wanted not in self.labels:
                raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {wanted}")
            wanted = self.labels[wanted]
        with self._lock:
            if wanted is None:
                available = [v for _, v in sorted(self._versions.items()) if v.state == AVAILABLE]
                if not available:
                    raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({self.name})")
                return available[-1]
            version = self._versions.get(wanted)
        if version is None or version.state != AVAILABLE:
            raise ServingError(
                "NOT_FOUND", f"Servable not found for request: Specific({self.name}, {wanted})"
            )
        return version

    def available(self) -> List[int]:
        with self._lock:
            return sorted(n for n, v in self._versions.items() if v.state == AVAILABLE)

    def status(self, version: Version) -> (str, str):
        """(error code name, message) of a version's status, as GetModelStatus
        gives it: INTERNAL for a failed load; OK otherwise, with the reason
        polling fails (if it does) as the message of the versions still served."""
        if version.error:
            return "INTERNAL", version.error
        return "OK", self.trouble if version.state == AVAILABLE else ""

    def statuses(self, wanted: Wanted = None) -> List[Version]:
        if isinstance(wanted, str):
            wanted = self.version(wanted).number
        with self._lock:
            versions = [v for n, v in sorted(self._versions.items()) if wanted is None or n == wanted]
        if not versions:
            raise ServingError(
                "NOT_FOUND",
                f"Could not find version {wanted} of model {self.name}" if wanted is not None
                else f"Could not find any versions of model {self.name}",
            )
        return versions


class ModelManager:
    """The models of one ModelServerConfig, polled for new versions in the
    background; `apply` moves to another config while serving."""

    def __init__(
        self, models: model_server_config_pb2.ModelServerConfig, poll_seconds: float = 1.0,
        batcher: Optional[Batcher] = None, listener: Optional[VersionListener] = None,
        allow_labels_for_unavailable: bool = False, metrics: Metrics = Metrics(enabled=False),
    ):
        self._initial = models
        self.models: Dict[str, ServedModel] = {}
        self._batcher = batcher
        self.metrics = metrics
        self._listener = listener
        self._allow_unavailable_labels = allow_labels_for_unavailable
        self._poll_seconds = poll_seconds
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Loads the first config's models; ConfigError if a label points at a
        version that did not load. (TF Serving checks labels before anything
        has loaded, so a label in a first config needs
        --allow_version_labels_for_unavailable_models there.)"""
        self.apply(self._initial, starting=True)
        if self._poll_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="version-poller", daemon=True)
            self._thread.start()

    def apply(self, models: model_server_config_pb2.ModelServerConfig, starting: bool = False) -> None:
        """Serves `models` from now on: new models load, removed ones unload,
        policies and labels change. A config that is refused (ConfigError)
        changes nothing."""
        config.check(models)
        with self._apply_lock:
            specs = {spec.name: spec for spec in models.model_config_list.config}
            current = dict(self.models)
            if not starting:
                self._check_labels(specs, current)
            kept = {name: m for name, m in current.items() if name in specs and m.base_path == specs[name].base_path}
            fresh = {name: ServedModel(spec, self._listener, self.metrics) for name, spec in specs.items() if name not in kept}
            for name, model in kept.items():
                model.policy = specs[name].model_version_policy
            for model in [*kept.values(), *fresh.values()]:
                model.poll()
            serving = {name: kept.get(name) or fresh[name] for name in specs}
            if starting:
                self._check_labels(specs, serving)
            for name, model in kept.items():
                model.labels = dict(specs[name].version_labels)
            self.models = serving
            for name, model in current.items():
                if self.models.get(name) is not model:
                    model.unload()
                    logging.info("model %s: no longer in the config, unloaded", name)

    def _check_labels(self, specs: Mapping[str, model_server_config_pb2.ModelConfig],
                      models: Mapping[str, ServedModel]) -> None:
        """ConfigError unless each label points at a version available in `models`."""
        if self._allow_unavailable_labels:
            return
        for name, spec in specs.items():
            model = models.get(name)
            available = model.available() if model is not None and model.base_path == spec.base_path else []
            for label, number in sorted(spec.version_labels.items()):
                if number not in available:
                    raise config.ConfigError(
                        f"Request to assign label to version {number} of model {name}, "
                        f"which is not currently available for inference (label {label!r})"
                    )

    def _loop(self) -> None:
        """Polls every model until stopped; whatever one poll raises is logged
        and shown in that model's status, and the next poll goes on."""
        while not self._stop.wait(self._poll_seconds):
            with self._apply_lock:
                models = list(self.models.values())
            for model in models:
                try:
                    model.poll()
                except Exception as e:
                    model.report(f"polling failed ({type(e).__name__}: {e}); the loaded versions keep serving",
                                 exc_info=True)

    def stop(self) -> None:
        self._stop.set()

    def model(self, name: str) -> ServedModel:
        if not name:
            raise ServingError("INVALID_ARGUMENT", "ModelSpec has no name specified.")
        model = self.models.get(name)
        if model is None:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
        return model

    def examples_input(self, name: str, version: Wanted, signature: str) -> str:
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
        self, name: str, version: Wanted, signature: str, inputs: Mapping[str, np.ndarray],
        exact_dtypes: bool = False,
    ) -> (int, Dict[str, np.ndarray]):
        """Calls a signature; INVALID_ARGUMENT names what does not fit it.
        Numbers are cast to the signature's dtypes, as TF Serving does for
        JSON, unless `exact_dtypes` (tensors, as its gRPC API takes them)."""
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
            if (spec.dtype == tf.string) != is_text or (
                    exact_dtypes and not is_text and tf.dtypes.as_dtype(value.dtype) != spec.dtype):
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
            if self._batcher is not None:
                self.metrics.batch_processed(name, signature, len(next(iter(batch.values()))))
            try:
                outputs = function(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in batch.items()})
            except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
                raise ServingError("INVALID_ARGUMENT", _reason(e)) from None
            return {k: v.numpy() for k, v in outputs.items()}

        if self._batcher is None:
            return served.number, call(arrays)
        return served.number, self._batcher.run((name, served.number, signature), call, arrays)
