"""The taxi Keras model: builds, trains, and serves raw tf.Examples."""

import numpy as np
import tensorflow as tf

from models.taxi import features, model
from taxi_pipeline.modeling.examples import to_tf_example


def _batch(transformed, names):
    return {n: np.stack([np.asarray(row[n]).reshape(1) for row in transformed]) for n in names}


def test_model_inputs_cover_every_transformed_feature(taxi_transform):
    _, transformed, output = taxi_transform
    keras_model = model.build_keras_model(model.category_sizes(output), model.Hyperparameters())
    expected = set(transformed[0]) - {model.LABEL}
    assert set(keras_model.input_names) == expected


def test_trains_and_serving_signature_scores_raw_examples(tmp_path, taxi_frame, taxi_transform):
    _, transformed, output = taxi_transform
    hparams = model.Hyperparameters(hidden_units=[8], batch_size=64)
    keras_model = model.build_keras_model(model.category_sizes(output), hparams)
    inputs = _batch(transformed, keras_model.input_names)
    labels = _batch(transformed, [model.LABEL])[model.LABEL]
    history = keras_model.fit(inputs, labels, batch_size=64, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    model.export_serving_model(keras_model, output, str(tmp_path / "model"))
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    assert set(loaded.signatures) == {
        "serving_default", "example_contract", "score_stored_examples", "transform_features"
    }

    rows = slice(0, 32)
    serialized = tf.constant(
        [to_tf_example(row, features.RAW_COLUMNS).SerializeToString() for _, row in taxi_frame[rows].iterrows()]
    )
    served = loaded.signatures["serving_default"](examples=serialized)["probabilities"]
    direct = keras_model({n: v[rows] for n, v in inputs.items()})
    assert served.shape == (32, 1)
    assert np.all((served.numpy() >= 0) & (served.numpy() <= 1))
    np.testing.assert_allclose(served.numpy(), direct.numpy(), rtol=1e-4, atol=1e-5)
