"""The taxi preprocessing_fn under real tf.Transform analysis of a data slice."""

import numpy as np

from models.taxi import features
from models.taxi.features import transformed_name as xf


def _scalar(value):
    return np.asarray(value).reshape(-1)[0]


def test_label_is_tip_above_twenty_percent_of_fare(taxi_frame, taxi_transform):
    _, transformed, _ = taxi_transform
    # float32, as in the TensorFlow graph: ties at exactly 20% round alike.
    fare = taxi_frame["fare"].replace("", "0").astype(np.float32)
    tips = taxi_frame["tips"].replace("", "0").astype(np.float32)
    expected = (tips > np.float32(0.2) * fare).astype(int).to_numpy()
    got = np.array([_scalar(row[xf(features.LABEL_KEY)]) for row in transformed])
    np.testing.assert_array_equal(got, expected)
    assert 0 < got.mean() < 1, "the slice must hold both classes"


def test_dense_features_are_standardized(taxi_transform):
    _, transformed, _ = taxi_transform
    for key in features.DENSE_FLOAT_FEATURES:
        values = np.array([_scalar(row[xf(key)]) for row in transformed])
        assert abs(values.mean()) < 1e-3, key
        assert abs(values.std() - 1) < 1e-2, key


def test_missing_coordinates_get_their_own_bucket(taxi_frame, taxi_transform):
    _, transformed, _ = taxi_transform
    key = "dropoff_latitude"
    missing = (taxi_frame[key] == "").to_numpy()
    assert missing.any() and (~missing).any(), "slice must have both cases"
    buckets = np.array([_scalar(row[xf(key)]) for row in transformed])
    assert (buckets[missing] == features.BUCKET_COUNT).all()
    assert (buckets[~missing] < features.BUCKET_COUNT).all()
    assert len(set(buckets[~missing])) > 1


def test_vocabulary_maps_payment_types_to_distinct_ids(taxi_frame, taxi_transform):
    _, transformed, output = taxi_transform
    ids = {}
    for value, row in zip(taxi_frame["payment_type"], transformed):
        ids.setdefault(value, set()).add(int(_scalar(row[xf("payment_type")])))
    assert all(len(s) == 1 for s in ids.values()), "one id per value"
    assert len({next(iter(s)) for s in ids.values()}) == len(ids), "distinct ids"
    assert output.vocabulary_size_by_name("payment_type") == len(ids)


def test_categorical_ids_stay_in_range(taxi_transform):
    _, transformed, _ = taxi_transform
    for key, size in features.CATEGORICAL_FEATURES.items():
        values = np.array([_scalar(row[xf(key)]) for row in transformed])
        assert values.min() >= 0 and values.max() < size, key
