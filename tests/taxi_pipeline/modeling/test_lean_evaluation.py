"""The Evaluator's speed-ups change no number.

`tfma.run_model_analysis` runs on the same examples (labels and scores stored
in them, no model), with scores that stress TFMA's bucketing: crowded below
1e-4, exactly 0.5, and a slice holding one class. BinaryClassification must
give TFMA's own metrics slice by slice, and the lean extractors the same
metrics as TFMA's default extractors.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants

from taxi_pipeline.modeling import binary_metrics, lean_evaluation


@pytest.fixture(scope="module")
def scored_examples(tmp_path_factory) -> str:
    rng = np.random.default_rng(7)
    n = 3000
    labels = rng.random(n) < 0.3
    scores = 1 / (1 + np.exp(-(rng.normal(size=n) + 2.5 * labels - 1)))
    scores[:400] = rng.random(400) * 2e-4  # crowded in TFMA's lowest buckets
    scores[400:450] = 0.5
    groups = np.where(np.arange(n) % 3 == 0, "a", "b")
    groups[:100] = "one_class"
    labels[:100] = False
    path = str(tmp_path_factory.mktemp("scored") / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for label, score, group in zip(labels, scores, groups):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "label": tf.train.Feature(float_list=tf.train.FloatList(value=[float(label)])),
                "score": tf.train.Feature(float_list=tf.train.FloatList(value=[score])),
                "group": tf.train.Feature(bytes_list=tf.train.BytesList(value=[group.encode()])),
                "unused": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.0])),
            })).SerializeToString())
    return path


def _config(*metric_names: str, slice_by=("group",), **options) -> tfma.EvalConfig:
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="score")],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[key]) for key in slice_by],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name=name, module=binary_metrics.__name__ if name == "BinaryClassification" else "")
            for name in metric_names
        ])],
        options=tfma.Options(**options),
    )


def _metrics(path: str, out: str, config: tfma.EvalConfig, lean: bool = False) -> dict:
    extractors = lean_evaluation.custom_extractors(None, config, None) if lean else None
    result = tfma.run_model_analysis(
        eval_config=config, extractors=extractors, data_location=path, output_path=out, file_format="tfrecords"
    )
    return {
        slice_key: {name: float(value["doubleValue"]) for name, value in by_output[""][""].items()}
        for slice_key, by_output in result.slicing_metrics
    }


def test_the_same_values_as_tfmas_own_metrics(scored_examples, tmp_path):
    ours = _metrics(scored_examples, str(tmp_path / "ours"), _config("BinaryClassification"))
    theirs = _metrics(scored_examples, str(tmp_path / "tfma"), _config(
        "AUC", "BinaryAccuracy", "Precision", "Recall", "Calibration", "ExampleCount"
    ))
    assert set(ours) == set(theirs) and len(theirs) == 4
    for slice_key, expected in theirs.items():
        assert set(ours[slice_key]) == set(expected) == set(binary_metrics.NAMES)
        for name, value in expected.items():
            assert ours[slice_key][name] == pytest.approx(value, rel=1e-9, nan_ok=True), (slice_key, name)
    assert theirs[()]["example_count"] == 3000


def test_lean_extractors_give_the_same_metrics(scored_examples, tmp_path):
    config = _config("BinaryClassification")
    assert lean_evaluation.why_not_batched(config) is None  # whole batches per slice
    lean = _metrics(scored_examples, str(tmp_path / "lean"), config, lean=True)
    default = _metrics(scored_examples, str(tmp_path / "default"), config)
    assert set(lean) == set(default) and len(default) == 4
    for slice_key, expected in default.items():
        assert lean[slice_key] == pytest.approx(expected, rel=1e-9, nan_ok=True)


def test_pruning_keeps_what_slices_need_in_each_models_layout():
    config = tfma.EvalConfig(slicing_specs=[tfma.SlicingSpec(feature_keys=["hour"]),
                                            tfma.SlicingSpec(feature_values={"kind": "x"})])
    assert lean_evaluation.slicing_features(config) == {"hour", "kind"}
    extracts = {
        "features": {"hour": [1], "kind": [b"x"], "fare": [2.0]},
        "transformed_features": {"candidate": {"hour": [1], "fare_xf": [0.1]}, "baseline": {"fare_xf": [0.2]}},
        "labels": [1.0],
    }
    pruned = lean_evaluation.prune(extracts, {"hour", "kind"})
    assert pruned["features"] == {"hour": [1], "kind": [b"x"]}
    assert pruned["transformed_features"] == {"candidate": {"hour": [1]}, "baseline": {}}
    assert pruned["labels"] == [1.0] and extracts["features"]["fare"] == [2.0]


def test_extractors_slice_whole_batches_only_when_every_metric_reads_them():
    defaults = [e.stage_name for e in tfma.default_extractors(eval_config=_config("BinaryClassification"))]
    at, after = defaults.index("ExtractUnbatchedInputs"), defaults.index("ExtractSliceKeys")
    batched = [e.stage_name for e in lean_evaluation.custom_extractors(None, _config("BinaryClassification"), None)]
    assert batched == defaults[:at] + ["DropFeaturesNoSliceNeeds", "ExtractSliceKeys"] + defaults[after + 1:]
    assert after == at + 1

    single = [e.stage_name for e in lean_evaluation.custom_extractors(None, _config("ExampleCount"), None)]
    assert single == defaults[:at] + ["DropFeaturesNoSliceNeeds"] + defaults[at:]

    assert "ExampleCount" in lean_evaluation.why_not_batched(_config("BinaryClassification", "ExampleCount"))
    assert "confidence" in lean_evaluation.why_not_batched(
        _config("BinaryClassification", compute_confidence_intervals={"value": True}))
    assert "slice size" in lean_evaluation.why_not_batched(
        _config("BinaryClassification", min_slice_size={"value": 10}))


def test_a_batch_becomes_one_element_per_slice_with_its_rows_of_each_model():
    config = _config("BinaryClassification")
    batch = {
        "features": {"group": np.array([[b"a"], [b"b"], [b"a"], [b"b"], [b"a"]], dtype=object)},
        "labels": np.array([1.0, 0.0, 0.0, 1.0, 1.0]),
        "predictions": {"candidate": np.array([0.9, 0.2, 0.4, 0.7, 0.6]),
                        "baseline": np.array([0.8, 0.1, 0.3, 0.6, 0.5])},
        "example_weights": None,
    }
    elements = list(lean_evaluation._SliceBatches(config).process(batch))
    by_slice = {tuple(e[constants.SLICE_KEY_TYPES_KEY])[0]: e for e in elements}
    assert set(by_slice) == {(), (("group", "a"),), (("group", "b"),)}
    a = by_slice[(("group", "a"),)]
    assert a["labels"].tolist() == [1.0, 0.0, 1.0]
    assert a["predictions"]["baseline"].tolist() == [0.8, 0.3, 0.5]
    assert by_slice[()]["predictions"]["candidate"].tolist() == batch["predictions"]["candidate"].tolist()
    assert "features" not in a and "example_weights" not in a

    # Overall only: no slicing feature is left after pruning, every row goes on.
    overall_only = lean_evaluation.prune(batch, set())
    (element,) = lean_evaluation._SliceBatches(_config("BinaryClassification", slice_by=())).process(overall_only)
    assert tuple(element[constants.SLICE_KEY_TYPES_KEY]) == ((),)
    assert element["labels"].tolist() == batch["labels"].tolist()
