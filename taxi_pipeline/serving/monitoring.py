"""Prometheus metrics, as TF Serving exposes them (`--monitoring_config_file`).

The config file is TF Serving's `MonitoringConfig` text proto:

    prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }

and the REST port then serves Prometheus' text format at that path, with TF
Serving's metric names (its `/tensorflow/...` names with `/` written `:`):

    :tensorflow:serving:request_count{model_name, status}      counter
    :tensorflow:serving:request_latency{model_name, API, entrypoint}
                                                 histogram, microseconds
    :tensorflow:cc:saved_model:load_attempt_count{model_path, status}
    :tensorflow:cc:saved_model:load_latency{model_path}         microseconds
    :tensorflow:serving:batching:processed_batch_size_v2{model_name, op_name, batch_size}

and, where TF Serving has no equivalent, the failures of the server's own
background loops (each failing poll, config check or front death):

    serving_background_error_count{loop, model_name}

Request metrics also carry `version` and `signature_name` labels (queries
written for TF Serving's labels still match). `Metrics.request` is the one
place a request is counted, whichever API and path it came by; the C++ front
keeps tallies of the requests it answers itself in the same buckets, and
`scrape` adds them in (`front_tallies`).

The installed `tensorflow-serving-api` wheel does not ship
`monitoring_config.proto`, so its two messages are declared here as TF
Serving declares them (package `tensorflow.serving`, same field numbers).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

DEFAULT_PATH = "/monitoring/prometheus/metrics"
# TF Serving's request latency buckets: 10 µs × 1.8^i, 33 of them (about 20 minutes).
LATENCY_BUCKETS_US: Tuple[float, ...] = tuple(10 * 1.8 ** i for i in range(33))


def _monitoring_config_class():
    pool = descriptor_pool.Default()
    name = "tensorflow_serving/config/monitoring_config.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto(name=name, package="tensorflow.serving", syntax="proto3")
        prometheus = proto.message_type.add(name="PrometheusConfig")
        prometheus.field.add(name="enable", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                             label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
        prometheus.field.add(name="path", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                             label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
        monitoring = proto.message_type.add(name="MonitoringConfig")
        monitoring.field.add(name="prometheus_config", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                             type_name=".tensorflow.serving.PrometheusConfig",
                             label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
        pool.Add(proto)
    return message_factory.MessageFactory(pool).GetPrototype(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


MonitoringConfig = _monitoring_config_class()


class MonitoringConfigError(ValueError):
    """A monitoring config file that cannot be read, named with its problem."""


def read_config(path: str) -> Optional[str]:
    """The REST path to serve metrics at, or None when Prometheus is not enabled."""
    try:
        with open(path, encoding="utf-8") as f:
            config = text_format.Parse(f.read(), MonitoringConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as e:
        raise MonitoringConfigError(f"--monitoring_config_file {path}: {e}") from None
    if not config.prometheus_config.enable:
        return None
    route = config.prometheus_config.path or DEFAULT_PATH
    if not route.startswith("/") or route.startswith("/v1/"):
        raise MonitoringConfigError(f"--monitoring_config_file {path}: path {route!r} must start with / "
                                    "and not with /v1/ (the model API's)")
    return route


# One tally line of the C++ front, as `front_tallies` gives them:
# (model, version, signature, API, status, count, latency bucket counts, latency sum µs).
FrontTally = Tuple[str, str, str, str, str, int, Sequence[int], float]


class Metrics:
    """The server's metrics, in their own registry; with `enabled` False
    (no monitoring config) nothing is counted or timed."""

    def __init__(self, enabled: bool = True, front_tallies: Optional[Callable[[], Iterable[FrontTally]]] = None):
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=False)
        labels = ["model_name", "version", "signature_name"]
        self._count = Counter(":tensorflow:serving:request_count", "The total number of requests.",
                              labels + ["status"], registry=self.registry)
        self._latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            labels + ["API", "entrypoint"], buckets=LATENCY_BUCKETS_US, registry=self.registry)
        self._loads = Counter(":tensorflow:cc:saved_model:load_attempt_count",
                              "The number of times a SavedModel was successfully loaded.",
                              ["model_path", "status"], registry=self.registry)
        self._load_latency = Counter(":tensorflow:cc:saved_model:load_latency",
                                     "Latency in microseconds for SavedModels that were successfully loaded.",
                                     ["model_path"], registry=self.registry)
        self._batches = Counter(":tensorflow:serving:batching:processed_batch_size_v2",
                                "Tracks the batch size on processing by model_name and op_name (if available).",
                                ["model_name", "op_name", "batch_size"], registry=self.registry)
        self._background_errors = Counter("serving_background_error_count",
                                          "Failures of the server's background loops: a poll of a model's "
                                          "base path, a look at the model config, the C++ front dying.",
                                          ["loop", "model_name"], registry=self.registry)
        self.front_tallies = front_tallies

    @contextlib.contextmanager
    def request(self, api: str, entrypoint: str) -> Iterator["RequestRecord"]:
        """Counts one request and times it; the caller fills in what it learns
        (model, version, signature) and `status`, which stays "UNKNOWN" if the
        request raised before saying."""
        record = RequestRecord()
        if not self.enabled:
            yield record
            return
        start = time.perf_counter()
        try:
            yield record
        finally:
            labels = (record.model, record.version, record.signature)
            self._count.labels(*labels, record.status).inc()
            self._latency.labels(*labels, api, entrypoint).observe((time.perf_counter() - start) * 1e6)

    def model_loaded(self, path: str, ok: bool, seconds: float) -> None:
        if not self.enabled:
            return
        self._loads.labels(path, "success" if ok else "fail").inc()
        if ok:
            self._load_latency.labels(path).inc(seconds * 1e6)

    def background_error(self, loop: str, model: str = "") -> None:
        if self.enabled:
            self._background_errors.labels(loop, model).inc()

    def batch_processed(self, model: str, signature: str, size: int) -> None:
        if not self.enabled:
            return
        self._batches.labels(model, signature, str(size)).inc()

    def scrape(self) -> bytes:
        """Prometheus' text format (0.0.4) of every metric, the front's tallies
        added in. Counters are written under TF Serving's own names, without
        the `_total` that prometheus_client's text writer would append."""
        front = list(self.front_tallies()) if self.front_tallies else []
        lines: List[str] = []
        for family in self.registry.collect():
            kind = "counter" if family.type == "counter" else family.type
            lines += [f"# HELP {family.name} {family.documentation}", f"# TYPE {family.name} {kind}"]
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            lines += [_line(s.name[:-len("_total")] if kind == "counter" else s.name, s.labels, s.value)
                      for s in _with_front(family.name, samples, front)]
        return ("\n".join(lines) + "\n").encode()


class RequestRecord:
    """What one request turned out to be, as its handler learns it."""

    __slots__ = ("model", "version", "signature", "status")

    def __init__(self):
        self.model, self.version, self.signature, self.status = "", "", "", "UNKNOWN"


def _line(name: str, labels: Mapping[str, str], value: float) -> str:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{text}}} {floatToGoString(value)}" if text else f"{name} {floatToGoString(value)}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _with_front(family: str, samples, front: Sequence[FrontTally]):
    """`samples` with the front's tallies added to the request families."""
    if not front or family not in (":tensorflow:serving:request_count", ":tensorflow:serving:request_latency"):
        yield from samples
        return
    totals = {}
    for s in samples:
        totals[(s.name, tuple(sorted(s.labels.items())))] = s
    for model, version, signature, api, status, count, buckets, latency_sum in front:
        base = {"model_name": model, "version": version, "signature_name": signature}
        if family == ":tensorflow:serving:request_count":
            _add(totals, Sample(family + "_total", {**base, "status": status}, count))
            continue
        labels = {**base, "API": api, "entrypoint": "GRPC"}
        cumulative = 0
        for bound, n in zip([*LATENCY_BUCKETS_US, float("inf")], buckets):
            cumulative += n
            _add(totals, Sample(family + "_bucket", {**labels, "le": floatToGoString(bound)}, cumulative))
        _add(totals, Sample(family + "_count", labels, count))
        _add(totals, Sample(family + "_sum", labels, latency_sum))
    yield from totals.values()


def _add(totals, sample) -> None:
    key = (sample.name, tuple(sorted(sample.labels.items())))
    known = totals.get(key)
    totals[key] = sample if known is None else Sample(sample.name, sample.labels, known.value + sample.value)
