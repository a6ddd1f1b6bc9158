"""The local model server: gRPC (Python, or the C++ front) and REST over one
ModelManager, and the watcher that re-applies an edited model config file.
`python -m taxi_pipeline.serving` starts it from tensorflow_model_server's flags."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from concurrent import futures
from typing import Mapping, Optional, Tuple, Union

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from taxi_pipeline import settings
from taxi_pipeline.serving import config, grpc_api, rest_api
from taxi_pipeline.serving.batching import Batcher
from taxi_pipeline.serving.front import NATIVE_FRONT, TENSORFLOW_LIBRARY, NativeFront
from taxi_pipeline.serving.monitoring import Metrics
from taxi_pipeline.serving.versions import ModelManager


class ConfigWatcher:
    """Re-reads a model config file every few seconds and applies what changed;
    a file that does not parse or check is logged and the previous config
    keeps serving."""

    def __init__(self, path: str, seconds: float, manager: ModelManager, applied: config.ModelServerConfig):
        self._path, self._seconds, self._manager, self._applied = path, seconds, manager, applied
        self._refused = ""
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._loop, name="config-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        """One look at the file."""
        try:
            wanted = config.read(self._path)
            if wanted == self._applied:
                return
            self._manager.apply(wanted)
        except config.ConfigError as e:
            if str(e) != self._refused:
                logging.error("%s; the previous model config keeps serving", e)
            self._refused = str(e)
            return
        self._applied, self._refused = wanted, ""
        logging.info("model config %s applied: serving %s", self._path,
                     ", ".join(m.name for m in wanted.model_config_list.config))

    def _loop(self) -> None:
        """Looks until stopped; whatever a look raises is logged (once) and the
        next look goes on."""
        failing = ""
        while not self._stop.wait(self._seconds):
            try:
                self.check()
                failing = ""
            except Exception as e:
                self._manager.metrics.background_error("config_watcher")
                if str(e) != failing:
                    logging.exception("model config %s: reading or applying it failed; the previous "
                                      "config keeps serving", self._path)
                failing = str(e)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one client, or many, may take of the server (TF Serving's flag names)."""

    grpc_max_threads: int = 256  # gRPC calls in progress; beyond, RESOURCE_EXHAUSTED
    rest_api_num_threads: int = 64  # REST connections open; beyond, 503
    rest_api_timeout_in_ms: int = 30000  # a REST connection silent this long is closed
    shutdown_grace_seconds: float = 10.0  # how long requests in progress may finish after SIGTERM


class Server:
    """gRPC and REST servers over one ModelManager; `start` returns at once.

    With `native_front` (the path of `serving_front`), the public gRPC port is
    the C++ front's: it runs Predict calls (batched, with a `batcher`) itself with
    `tensorflow_library` (None: it sends each batch here), relaying everything
    else to this process's gRPC services on a private Unix socket.
    """

    def __init__(self, models: Union[config.ModelServerConfig, Mapping[str, str]], host: str = "127.0.0.1",
                 port: int = 8500, rest_api_port: int = 8501, poll_seconds: float = 1.0, grpc_workers: int = 16,
                 batcher: Optional[Batcher] = None, native_front: Optional[str] = None,
                 tensorflow_library: Optional[str] = TENSORFLOW_LIBRARY,
                 allow_labels_for_unavailable: bool = False, limits: Limits = Limits(),
                 metrics_path: Optional[str] = None):
        """`metrics_path`: the REST path of the Prometheus metrics (from the
        monitoring config); None counts nothing."""
        self.limits = limits
        self.front: Optional[NativeFront] = None
        if native_front:
            self.front = NativeFront(
                native_front, host, port, batcher.max_batch_size if batcher else 1,
                int(batcher.timeout * 1e6) if batcher else 0, settings.MAX_MESSAGE_BYTES,
                tensorflow_library, num_batch_threads=1 if batcher else os.cpu_count() or 1,
                max_concurrent_requests=limits.grpc_max_threads, grace_seconds=limits.shutdown_grace_seconds,
            )
        if not isinstance(models, config.ModelServerConfig):
            models = config.build(models)
        self.metrics = Metrics(enabled=metrics_path is not None,
                               front_tallies=self.front.tallies if self.front else None)
        self.manager = ModelManager(models, poll_seconds, batcher, self.front if tensorflow_library else None,
                                    allow_labels_for_unavailable, self.metrics)
        self._host, self._grpc_workers, self._fallback = host, grpc_workers, None
        if self.front:
            self.front.on_trouble = lambda: self.metrics.background_error("native_front")
            self.grpc, _ = self._grpc_server(self.front.backend)
            self.front.on_give_up = self._take_over_port
            self.port = None  # the front's, once started
        else:
            self.grpc, self.port = self._grpc_server(f"{host}:{port}")
        self.rest = rest_api.server(self.manager, host, rest_api_port, limits.rest_api_num_threads,
                                    limits.rest_api_timeout_in_ms / 1000, self.metrics,
                                    metrics_path) if rest_api_port >= 0 else None
        self.rest_api_port = self.rest.server_address[1] if self.rest else None

    def _grpc_server(self, address: str) -> Tuple[grpc.Server, int]:
        """A gRPC server (not started) of this server's services on `address`."""
        options = [("grpc.max_receive_message_length", settings.MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", settings.MAX_MESSAGE_BYTES),
                   ("grpc.so_reuseport", 0)]  # a taken port is an error, not shared
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._grpc_workers), options=options,
                             maximum_concurrent_rpcs=self.limits.grpc_max_threads)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            grpc_api.PredictionService(self.manager, settings.MAX_MESSAGE_BYTES, self.metrics), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(grpc_api.ModelService(self.manager), server)
        return server, server.add_insecure_port(address)

    def _take_over_port(self) -> None:
        """The front was given up: answer its public port in Python."""
        self._fallback, _ = self._grpc_server(f"{self._host}:{self.port}")
        self._fallback.start()

    def start(self) -> None:
        """Loads the models and opens the ports; ConfigError (ports closed
        again) if the model config cannot be served."""
        try:
            self.manager.start()
        except Exception:
            self.grpc.stop(grace=0)
            if self.rest:
                self.rest.server_close()
            if self.front:
                self.front.close()
            raise
        self.grpc.start()
        if self.front:
            try:
                self.front.start()
            except RuntimeError:
                self.grpc.stop(grace=0)
                self.front.close()
                raise
            self.port = self.front.port
        if self.rest:
            threading.Thread(target=self.rest.serve_forever, name="rest", daemon=True).start()

    def stop(self, grace_seconds: Optional[float] = None) -> None:
        """Stops accepting requests, lets those in progress finish for up to
        `grace_seconds` (default: the limits'), then closes everything. The
        front drains first: what it relays is answered by the Python services."""
        grace = self.limits.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        deadline = time.monotonic() + grace
        self.manager.stop()
        rest_drained = []
        if self.rest:  # REST stops accepting at once and drains alongside gRPC
            draining = threading.Thread(target=lambda: rest_drained.append(self.rest.drain(grace)), name="rest-drain")
            draining.start()
        if self.front:
            self.front.stop(grace)
        left = max(0.0, deadline - time.monotonic())
        stopped = [self.grpc.stop(grace=left)] + ([self._fallback.stop(grace=left)] if self._fallback else [])
        for event in stopped:
            event.wait()
        if self.rest:
            draining.join()
            if not rest_drained[0]:
                logging.warning("REST requests still in progress after %.0f s were cut", grace)


def native_front(choice: str) -> Optional[str]:
    """The front binary to run for --native_front, None for Python's own gRPC server."""
    built = os.access(NATIVE_FRONT, os.X_OK)
    if choice == "on" and not built:
        raise SystemExit(f"--native_front on: {NATIVE_FRONT} is not built; run `make native`")
    if choice == "auto" and not built:
        logging.warning("the C++ gRPC front is not built (`make native`): gRPC is answered in Python, "
                        "about 2 ms slower per call")
    return NATIVE_FRONT if choice != "off" and built else None
