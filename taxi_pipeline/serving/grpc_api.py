"""gRPC PredictionService and ModelService over a ModelManager."""

from __future__ import annotations

import functools

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from taxi_pipeline.serving.monitoring import Metrics
from taxi_pipeline.serving.versions import ModelManager, ServingError, Wanted, class_scores, score_rows


def _version(model_spec) -> Wanted:
    """The version a request's ModelSpec asks for: a number, a label, or the latest (None)."""
    choice = model_spec.WhichOneof("version_choice")
    return model_spec.version.value if choice == "version" else model_spec.version_label if choice else None


# Where a TensorProto of each dtype keeps its values when not in tensor_content,
# and how many entries one element takes there (tensorflow/core/framework/tensor.proto).
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: ("float_val", 1), types_pb2.DT_DOUBLE: ("double_val", 1),
    types_pb2.DT_INT32: ("int_val", 1), types_pb2.DT_INT16: ("int_val", 1), types_pb2.DT_INT8: ("int_val", 1),
    types_pb2.DT_UINT8: ("int_val", 1), types_pb2.DT_UINT16: ("int_val", 1), types_pb2.DT_QINT8: ("int_val", 1),
    types_pb2.DT_QUINT8: ("int_val", 1), types_pb2.DT_QINT16: ("int_val", 1), types_pb2.DT_QUINT16: ("int_val", 1),
    types_pb2.DT_QINT32: ("int_val", 1), types_pb2.DT_INT64: ("int64_val", 1),
    types_pb2.DT_UINT32: ("uint32_val", 1), types_pb2.DT_UINT64: ("uint64_val", 1),
    types_pb2.DT_BOOL: ("bool_val", 1), types_pb2.DT_STRING: ("string_val", 1),
    types_pb2.DT_HALF: ("half_val", 1), types_pb2.DT_BFLOAT16: ("half_val", 1),
    types_pb2.DT_COMPLEX64: ("scomplex_val", 2), types_pb2.DT_COMPLEX128: ("dcomplex_val", 2),
}
_INT64_MAX = (1 << 63) - 1
_MAX_RANK = 254  # TensorFlow's TensorShape::MaxDimensions()


def tensor_array(key: str, proto, max_bytes: int) -> np.ndarray:
    """A request's TensorProto as an array; INVALID_ARGUMENT, as TF Serving's
    "Cannot parse tensor from proto", when its shape is invalid, declares more
    than `max_bytes`, or does not carry exactly one value per element.

    Everything is checked against the proto before an array is made, so a
    small request declaring a huge shape costs no more than its own bytes
    (TensorFlow would fill the declared shape with the last value given)."""
    def refuse(why: str) -> ServingError:
        return ServingError("INVALID_ARGUMENT", f"Cannot parse tensor from proto: input {key!r} {why}")

    dims = [d.size for d in proto.tensor_shape.dim]
    if proto.dtype not in _VALUE_FIELDS:
        raise ServingError("INVALID_ARGUMENT", f"input {key!r}: unsupported dtype {proto.dtype}")
    if proto.tensor_shape.unknown_rank or len(dims) > _MAX_RANK or any(d < 0 for d in dims):
        raise refuse(f"has shape {dims}")
    if np.prod([d for d in dims if d], dtype=object) > _INT64_MAX:
        raise refuse(f"of shape {dims} has more elements than a tensor can hold")
    count = int(np.prod(dims, dtype=object))
    field, per_element = _VALUE_FIELDS[proto.dtype]
    itemsize = 1 if proto.dtype == types_pb2.DT_STRING else tf.dtypes.as_dtype(proto.dtype).size
    if count * itemsize > max_bytes:
        raise refuse(f"of shape {dims} exceeds {max_bytes} bytes")
    if proto.tensor_content:
        if proto.dtype == types_pb2.DT_STRING or len(proto.tensor_content) != count * itemsize:
            raise refuse(f"of shape {dims} holds {len(proto.tensor_content)} bytes of tensor_content, "
                         f"not {count} {tf.dtypes.as_dtype(proto.dtype).name} values")
    elif len(getattr(proto, field)) != count * per_element:
        raise refuse(f"of shape {dims} holds {len(getattr(proto, field)) // per_element} values in {field}, "
                     f"not {count}")
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError, MemoryError) as e:
        raise refuse(f": {e}") from None


def _abort(context, error: ServingError):
    context.abort(getattr(grpc.StatusCode, error.code), str(error))


def serialized_examples(request_input) -> np.ndarray:
    """The tf.Examples of a Classify/Regress Input, serialized (context merged in)."""
    if request_input.HasField("example_list_with_context"):
        listed = request_input.example_list_with_context
        examples = []
        for example in listed.examples:
            merged = tf.train.Example()
            merged.CopyFrom(listed.context)
            merged.MergeFrom(example)
            examples.append(merged)
    else:
        examples = list(request_input.example_list.examples)
    if not examples:
        raise ServingError("INVALID_ARGUMENT", "Input is empty")
    return np.array([e.SerializeToString() for e in examples], dtype=object)


# Metadata the C++ front adds to a batch of its callers' requests it sends here
# as one call: it counts those requests itself (monitoring.py).
FRONT_COUNTED = "x-serving-front-counted"


def _counted(api: str):
    """Counts a PredictionService method's calls in the server's metrics (the
    one place, `Metrics.request`) and answers a ServingError with its status."""

    def wrap(method):
        @functools.wraps(method)
        def counted(self, request, context):
            if any(key == FRONT_COUNTED for key, _ in context.invocation_metadata() or ()):
                try:
                    return method(self, request, context)
                except ServingError as e:
                    return _abort(context, e)
            with self._metrics.request(api, "GRPC") as record:
                record.model = request.model_spec.name
                record.signature = request.model_spec.signature_name or (
                    "" if api == "GetModelMetadata" else "serving_default")
                try:
                    response = method(self, request, context)
                except ServingError as e:
                    record.status = e.code
                    return _abort(context, e)
                record.version, record.status = str(response.model_spec.version.value), "OK"
                return response

        return counted

    return wrap


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, max_message_bytes: int, metrics: Metrics):
        self._manager = manager
        self._max_bytes = max_message_bytes
        self._metrics = metrics

    @_counted("Predict")
    def Predict(self, request, context):
        inputs = {k: tensor_array(k, v, self._max_bytes) for k, v in request.inputs.items()}
        signature = request.model_spec.signature_name or "serving_default"
        version, outputs = self._manager.run(
            request.model_spec.name, _version(request.model_spec), signature, inputs, exact_dtypes=True)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature
        wanted = set(request.output_filter) or set(outputs)
        for key, value in outputs.items():
            if key in wanted:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def _examples_call(self, request, response):
        """Scores the request's tf.Examples; fills the response's model_spec."""
        signature = request.model_spec.signature_name or "serving_default"
        name, version = request.model_spec.name, _version(request.model_spec)
        key = self._manager.examples_input(name, version, signature)
        served, outputs = self._manager.run(name, version, signature, {key: serialized_examples(request.input)})
        response.model_spec.name, response.model_spec.signature_name = name, signature
        response.model_spec.version.value = served
        return score_rows(outputs)

    @_counted("Classify")
    def Classify(self, request, context):
        response = classification_pb2.ClassificationResponse()
        scores = self._examples_call(request, response)
        for row in scores:
            classification = response.result.classifications.add()
            for label, score in enumerate(class_scores(row)):
                classification.classes.add(label=str(label), score=float(score))
        return response

    @_counted("Regress")
    def Regress(self, request, context):
        response = regression_pb2.RegressionResponse()
        values = self._examples_call(request, response)
        for row in values:
            response.result.regressions.add(value=float(row[0]))
        return response

    @_counted("GetModelMetadata")
    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) not in ([], ["signature_def"]):
            raise ServingError("INVALID_ARGUMENT", f"unsupported metadata field(s) {list(request.metadata_field)}; only signature_def")
        served = self._manager.model(request.model_spec.name).version(_version(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = served.number
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, value in served.signature_defs.items():
            signatures.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signatures)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    def GetModelStatus(self, request, context):
        try:
            model = self._manager.model(request.model_spec.name)
            versions = model.statuses(_version(request.model_spec))
        except ServingError as e:
            return _abort(context, e)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add(version=version.number, state=version.state)
            code, message = model.status(version)
            if code != "OK" or message:  # an OK status without a message stays empty, as TF Serving's
                status.status.error_code = error_codes_pb2.Code.Value(code)
                status.status.error_message = message
        return response
