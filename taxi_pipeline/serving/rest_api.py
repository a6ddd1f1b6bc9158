"""TF Serving's REST API (`/v1/models/...`) over a ModelManager."""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import re
import socket
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from taxi_pipeline import settings
from taxi_pipeline.serving.monitoring import Metrics
from taxi_pipeline.serving.versions import ModelManager, ServingError, State, Wanted, class_scores, score_rows

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?:/(?P<metadata>metadata)|:(?P<verb>predict|classify|regress))?$"
)
_API = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
# TF Serving's HTTP statuses for its error codes (http_server.cc, ToHTTPStatusCode).
_HTTP = {"NOT_FOUND": HTTPStatus.NOT_FOUND, "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
         "FAILED_PRECONDITION": HTTPStatus.BAD_REQUEST, "RESOURCE_EXHAUSTED": HTTPStatus.TOO_MANY_REQUESTS}


def _decode(value: Any) -> Any:
    """JSON request values with {"b64": ...} turned into bytes."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def _encode(value) -> Any:
    """JSON of an output tensor; bytes become text, or {"b64": ...} if binary."""
    value = np.asarray(value)
    if value.dtype == object or value.dtype.kind == "S":
        return [_encode(v) for v in value] if value.ndim else _bytes(value.item())
    return value.tolist()


def _bytes(value) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    return value


def _example(features: Dict[str, Any]) -> bytes:
    """A tf.Example from a REST classify/regress example ({feature: value(s)})."""
    feature = {}
    for name, value in features.items():
        values = value if isinstance(value, list) else [value]
        if all(isinstance(v, bool) or isinstance(v, int) for v in values):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        elif all(isinstance(v, (int, float)) for v in values):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            encoded = [v if isinstance(v, bytes) else str(v).encode() for v in values]
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _predict(manager: ModelManager, name: str, version: Optional[int], body: dict) -> Tuple[int, dict]:
    """(the version that answered, the response body) of a :predict request."""
    signature = body.get("signature_name", "serving_default")
    if "instances" in body:
        instances = _decode(body["instances"])
        if instances and isinstance(instances[0], dict):
            keys = instances[0].keys()
            if any(set(i) != set(keys) for i in instances):
                raise ServingError("INVALID_ARGUMENT", "every instance must have the same named inputs")
            inputs = {k: _array(k, [i[k] for i in instances]) for k in keys}
        else:
            only = _only_input(manager, name, version, signature)
            inputs = {only: _array(only, instances)}
        served, outputs = manager.run(name, version, signature, inputs)
        if len(outputs) == 1:
            return served, {"predictions": _encode(next(iter(outputs.values())))}
        rows = len(next(iter(outputs.values())))
        return served, {"predictions": [{k: _encode(v[i]) for k, v in outputs.items()} for i in range(rows)]}
    if "inputs" in body:
        given = _decode(body["inputs"])
        if not isinstance(given, dict):
            given = {_only_input(manager, name, version, signature): given}
        inputs = {k: _array(k, v) for k, v in given.items()}
        served, outputs = manager.run(name, version, signature, inputs)
        return served, {"outputs": {k: _encode(v) for k, v in outputs.items()} if len(outputs) > 1
                        else _encode(next(iter(outputs.values())))}
    raise ServingError("INVALID_ARGUMENT", 'request body needs "instances" (row format) or "inputs" (columnar format)')


def _array(key: str, value) -> np.ndarray:
    """An input's JSON value as an array; INVALID_ARGUMENT if it is ragged or mixed."""
    try:
        array = np.array(value, dtype=object if _is_text(value) else None)
    except (ValueError, TypeError) as e:
        raise ServingError("INVALID_ARGUMENT", f"input {key!r} is not a tensor (ragged or mixed values): {e}") from None
    if array.dtype == object and not _is_text(value):
        raise ServingError("INVALID_ARGUMENT", f"input {key!r} is not a tensor of numbers or strings")
    return array


def _is_text(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (bytes, str))


def _only_input(manager, name, version, signature) -> str:
    function = manager.model(name).version(version).model.signatures.get(signature)
    if function is None:
        raise ServingError("INVALID_ARGUMENT", f"Serving signature name: \"{signature}\" not found")
    specs = function.structured_input_signature[1]
    if len(specs) != 1:
        raise ServingError("INVALID_ARGUMENT", f"signature {signature!r} has inputs {sorted(specs)}: name them")
    return next(iter(specs))


def _examples_verb(manager, name, version, body, verb) -> Tuple[int, dict]:
    signature = body.get("signature_name", "serving_default")
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise ServingError("INVALID_ARGUMENT", 'request body needs a non-empty "examples" list')
    context = body.get("context", {})
    serialized = np.array([_example({**context, **_decode(e)}) for e in examples], dtype=object)
    key = manager.examples_input(name, version, signature)
    served, outputs = manager.run(name, version, signature, {key: serialized})
    scores = score_rows(outputs)
    if verb == "regress":
        return served, {"results": [float(row[0]) for row in scores]}
    return served, {
        "results": [
            [[str(label), float(score)] for label, score in enumerate(class_scores(r))]
            for r in scores
        ]
    }


def _status(manager, name, version) -> dict:
    model = manager.model(name)
    return {
        "model_version_status": [
            {
                "version": str(v.number),
                "state": State.Name(v.state),
                "status": dict(zip(("error_code", "error_message"), model.status(v))),
            }
            for v in model.statuses(version)
        ]
    }


def _metadata(manager, name, version) -> dict:
    served = manager.model(name).version(version)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, value in served.signature_defs.items():
        signatures.signature_def[key].CopyFrom(value)
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(served.number)},
        "metadata": {"signature_def": json.loads(json_format.MessageToJson(signatures))},
    }


def handler_class(manager: ModelManager, metrics: Metrics, metrics_path: Optional[str] = None):
    """A request handler class bound to `manager`, counting requests in
    `metrics` and serving them at `metrics_path` (None: not served)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # requests are not logged, like TF Serving
            pass

        def _reply(self, status: int, payload: dict) -> None:
            self._reply_text(status, json.dumps(payload).encode(), "application/json")

        def _reply_text(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> Tuple[str, Wanted, Optional[str], Optional[str]]:
            match = _ROUTE.match(self.path)
            if not match:
                raise ServingError("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
            version = int(match["version"]) if match["version"] else urllib.parse.unquote(match["label"] or "") or None
            return match["name"], version, match["metadata"], match["verb"]

        def _body(self) -> Any:
            """The request's JSON body; INVALID_ARGUMENT if it is not JSON,
            RESOURCE_EXHAUSTED (unread, the connection closed) if too large."""
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self.close_connection = True
                raise ServingError("INVALID_ARGUMENT", f"bad Content-Length {length!r}")
            if int(length) > settings.MAX_MESSAGE_BYTES:
                self.close_connection = True
                raise ServingError("RESOURCE_EXHAUSTED", f"request body of {length} bytes exceeds {settings.MAX_MESSAGE_BYTES}")
            try:
                return json.loads(self.rfile.read(int(length)) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {e}") from None
            except RecursionError:
                raise ServingError("INVALID_ARGUMENT", "JSON Parse error: nested too deeply") from None

        def _serve(self, method: str) -> None:
            with self.server.request_in_progress():
                if self.server.draining:
                    self.close_connection = True
                self._answer(method)

        def _answer(self, method: str) -> None:
            if method == "GET" and metrics_path and self.path == metrics_path:
                return self._reply_text(HTTPStatus.OK, metrics.scrape(), "text/plain; version=0.0.4; charset=utf-8")
            try:
                name, version, metadata, verb = self._route()
            except ServingError as e:
                return self._reply(_HTTP.get(e.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": str(e)})
            api = _API[verb] if verb else "GetModelMetadata" if metadata else "GetModelStatus"
            with metrics.request(api, "REST") as record:
                record.model = name
                try:
                    manager.model(name)  # an unknown model is NOT_FOUND before anything else
                    if method == "GET" and not verb:
                        payload = _metadata(manager, name, version) if metadata else _status(manager, name, version)
                    elif method == "POST" and verb:
                        body = self._body()
                        if not isinstance(body, dict):
                            raise ServingError("INVALID_ARGUMENT", "request body must be a JSON object")
                        record.signature = str(body.get("signature_name", "serving_default"))
                        if verb == "predict":
                            served, payload = _predict(manager, name, version, body)
                        else:
                            served, payload = _examples_verb(manager, name, version, body, verb)
                        record.version = str(served)
                    else:
                        raise ServingError("NOT_FOUND", f"Malformed request: {method} {self.path}")
                    record.status = "OK"
                    self._reply(HTTPStatus.OK, payload)
                except ServingError as e:
                    record.status = e.code
                    self._reply(_HTTP.get(e.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": str(e)})
                except Exception as e:  # the server stays up whatever a request does
                    record.status = "INTERNAL"
                    self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"})

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PUT(self):
            self._serve("PUT")

        def do_DELETE(self):
            self._serve("DELETE")

    return Handler


class RestServer(ThreadingHTTPServer):
    """The REST server: a thread per connection, at most `max_connections` of
    them (the next is answered 503 and closed at once), each closed after
    `timeout` seconds without a byte from its client; `drain` waits for the
    requests in progress."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusals: "queue.Queue" = queue.Queue(maxsize=64)
        threading.Thread(target=self._refuse, name="rest-refusals", daemon=True).start()
        self._in_progress = 0
        self._idle = threading.Condition()
        self.draining = False

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            try:  # one thread answers every refusal, so refusing costs no thread per client
                self._refusals.put_nowait(request)
            except queue.Full:
                self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def _refuse(self) -> None:
        while True:
            connection = self._refusals.get()
            _refuse_busy(connection)
            self.shutdown_request(connection)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def request_in_progress(self) -> Iterator[None]:
        with self._idle:
            self._in_progress += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_progress -= 1
                self._idle.notify_all()

    def drain(self, grace_seconds: float) -> bool:
        """Stops accepting connections and waits up to `grace_seconds` for the
        requests in progress; whether they all finished."""
        self.draining = True
        self.shutdown()
        self.server_close()
        with self._idle:
            return self._idle.wait_for(lambda: self._in_progress == 0, grace_seconds)


def _refuse_busy(connection) -> None:
    """503, as TF Serving's HTTP server answers when it has no thread free.
    The request is read (up to 64 KiB, for at most a second) before and after
    the answer, so that closing does not reset the connection under a client
    still sending, which would lose the answer."""
    body = json.dumps({"error": "the server is at its limit of concurrent REST connections; retry later"}).encode()
    deadline = time.monotonic() + 1.0
    try:
        connection.settimeout(0.2)
        try:
            connection.recv(65536)
        except OSError:
            pass
        connection.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                           b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        connection.shutdown(socket.SHUT_WR)
        read = 0
        while read < 65536 and time.monotonic() < deadline:
            chunk = connection.recv(4096)
            if not chunk:
                break
            read += len(chunk)
    except OSError:
        pass


def server(manager: ModelManager, host: str, port: int, max_connections: int = 64,
           timeout_seconds: float = 30.0, metrics: Optional[Metrics] = None,
           metrics_path: Optional[str] = None) -> RestServer:
    """The REST server (not started)."""
    handler = handler_class(manager, metrics or Metrics(enabled=False), metrics_path)
    handler.timeout = timeout_seconds  # per read on the socket: an idle or stalled client is let go
    return RestServer((host, port), handler, max_connections)
