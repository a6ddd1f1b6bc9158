"""The served models, asked by a client that did not come from this project.

The client here is built from `tensorflow_serving.apis` stubs and protos
alone; taxi examples are typed by the Chicago taxi `schema.pbtxt` that ships
in the tfx wheel (read with its own proto), and NER requests are plain
sentences. Answers must equal the pushed SavedModel's called in-process.
"""

import csv
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tfx
from google.protobuf import text_format
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

import models
from tests.conftest import RTOL

TFX_TAXI_SCHEMA = os.path.join(
    os.path.dirname(tfx.__file__),
    "examples", "chicago_taxi_pipeline", "data", "user_provided_schema", "schema.pbtxt",
)

SENTENCES = [
    "The U.S. and Japan's leaders met in Tokyo on Monday.",
    'Mr. Smith, who heads the U.N. agency, said "no" (again).',
    "Prices rose 5% to $3.5 billion in the U.S.-led talks at Acme Inc.",
    "  Angela   Merkel\tvisited Paris  ",
]


def _stub(served) -> prediction_service_pb2_grpc.PredictionServiceStub:
    server = served[0]
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _strings(values) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]),
        string_val=[v if isinstance(v, bytes) else v.encode("utf-8") for v in values],
    )


def _predict(stub, model: str, name: str, values) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs[name].CopyFrom(_strings(values))
    return stub.Predict(request, timeout=60)


def _schema_types() -> dict:
    schema = text_format.Parse(open(TFX_TAXI_SCHEMA).read(), schema_pb2.Schema())
    return {feature.name: feature.type for feature in schema.feature}


def _example(row: dict, types: dict, whole_as_float: bool = False) -> bytes:
    """A tf.Example of a CSV row, each cell typed as the TFX schema says."""
    example = tf.train.Example()
    for name, kind in types.items():
        cell = row.get(name, "")
        if cell == "":
            continue
        feature = example.features.feature[name]
        if kind == schema_pb2.BYTES:
            feature.bytes_list.value.append(cell.encode("utf-8"))
        elif kind == schema_pb2.INT and not whole_as_float:
            feature.int64_list.value.append(int(cell))
        else:
            feature.float_list.value.append(float(cell))
    return example.SerializeToString()


@pytest.fixture(scope="module")
def taxi_rows():
    with open(os.path.join(models.get("taxi").default_data, "data.csv"), newline="") as f:
        return [row for _, row in zip(range(40), csv.DictReader(f))]


def test_taxi_answers_examples_typed_by_the_tfx_schema(served, taxi_rows):
    types = _schema_types()
    assert types["trip_seconds"] == schema_pb2.INT, "the public schema this test builds from"
    serialized = [_example(row, types) for row in taxi_rows]
    response = _predict(_stub(served), "chicago_taxi", "examples", serialized)
    scores = tf.make_ndarray(response.outputs["probabilities"]).reshape(-1)
    model = tf.saved_model.load(served[3]["chicago_taxi"])
    local = model.signatures["serving_default"](examples=tf.constant(serialized))["probabilities"]
    np.testing.assert_allclose(scores, local.numpy().reshape(-1), rtol=RTOL)
    assert len(scores) == len(taxi_rows) and ((scores >= 0) & (scores <= 1)).all()

    # Whole numbers sent as floats get the same answers.
    as_floats = [_example(row, types, whole_as_float=True) for row in taxi_rows]
    response = _predict(_stub(served), "chicago_taxi", "examples", as_floats)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]).reshape(-1), scores, rtol=RTOL)


@pytest.mark.parametrize(
    "feature, values, named",
    [
        ("company", tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])), "company"),
        ("fare", tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"12.5"])), "fare"),
        ("trip_seconds", tf.train.Feature(float_list=tf.train.FloatList(value=[60.5])), "trip_seconds"),
    ],
)
def test_taxi_wrong_types_are_invalid_argument_naming_the_feature(served, feature, values, named):
    example = tf.train.Example()
    example.features.feature[feature].CopyFrom(values)
    with pytest.raises(grpc.RpcError) as error:
        _predict(_stub(served), "chicago_taxi", "examples", [example.SerializeToString()])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in error.value.details()


def test_taxi_metadata_shows_the_example_contract(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "chicago_taxi"
    response = _stub(served).GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    contract = signatures.signature_def["example_contract"].outputs
    for name, kind in _schema_types().items():
        if name == "tips":
            continue
        expected = {schema_pb2.INT: types_pb2.DT_INT64, schema_pb2.FLOAT: types_pb2.DT_FLOAT,
                    schema_pb2.BYTES: types_pb2.DT_STRING}[kind]
        assert contract[name].dtype == expected, name


def _tagged(outputs) -> list:
    arrays = {k: tf.make_ndarray(v) if isinstance(v, tensor_pb2.TensorProto) else v.numpy()
              for k, v in outputs.items()}
    return [
        [(t.decode(), g.decode(), int(s), int(e)) for t, g, s, e in zip(*row) if t]
        for row in zip(arrays["tokens"], arrays["tags"], arrays["starts"], arrays["ends"])
    ]


def test_ner_tags_plain_sentences_with_offsets(served):
    response = _predict(_stub(served), "ner", "text", SENTENCES)
    tagged = _tagged(response.outputs)
    local = tf.saved_model.load(served[3]["ner"]).signatures["serving_default"](text=tf.constant(SENTENCES))
    assert tagged == _tagged(local)
    for sentence, tokens in zip(SENTENCES, tagged):
        assert all(sentence[start:end] == token for token, _, start, end in tokens)
        assert all(tag == "O" or tag[:2] in ("B-", "I-") for _, tag, _, _ in tokens)
    assert [t for t, _, _, _ in tagged[0]][:6] == ["The", "U.S.", "and", "Japan", "'s", "leaders"]
    assert [t for t, _, _, _ in tagged[2]][-3:] == ["at", "Acme", "Inc."]
    assert [t for t, _, _, _ in tagged[3]] == ["Angela", "Merkel", "visited", "Paris"]
    assert tagged[3][1][2:] == (11, 17), "offsets count the sentence's own spacing"


def test_ner_odd_text_gets_tags_not_errors(served):
    odd = ["", "   \t ", " ".join(["word"] * 5000), "Москва — столица России.", "東京で会議",
           "a\x00b\x07c\x1fd", "\u200bzero\u00a0width"]
    tagged = _tagged(_predict(_stub(served), "ner", "text", odd).outputs)
    assert tagged[0] == [] and tagged[1] == []
    assert len(tagged[2]) == 5000
    assert [t for t, _, _, _ in tagged[5]] == ["a", "b", "c", "d"]
    for sentence, tokens in zip(odd, tagged):
        assert all(sentence[start:end] == token for token, _, start, end in tokens)


@pytest.mark.parametrize(
    "name, tensor",
    [
        ("sentences", _strings(["x"])),
        ("text", tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0],
                                        tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]))),
    ],
)
def test_ner_wrong_input_name_or_dtype_is_invalid_argument(served, name, tensor):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ner"
    request.inputs[name].CopyFrom(tensor)
    with pytest.raises(grpc.RpcError) as error:
        _stub(served).Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
