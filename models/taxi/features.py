"""Chicago taxi features: the raw columns, how each is encoded, and the label.

The single source of feature names for the preprocessing_fn, the model, the
eval config and the data contract checked before training.
"""

from typing import Dict, List

from taxi_pipeline.contract.definition import FLOAT, INT, STRING

# Every column of the raw CSV and the type the pipeline requires it to have:
# the types CsvExampleGen infers from the data, and those of TFX's own
# Chicago taxi schema (tfx/examples/chicago_taxi_pipeline).
RAW_COLUMNS: Dict[str, str] = {
    "pickup_community_area": INT,
    "fare": FLOAT,
    "trip_start_month": INT,
    "trip_start_hour": INT,
    "trip_start_day": INT,
    "trip_start_timestamp": INT,
    "pickup_latitude": FLOAT,
    "pickup_longitude": FLOAT,
    "dropoff_latitude": FLOAT,
    "dropoff_longitude": FLOAT,
    "trip_miles": FLOAT,
    "pickup_census_tract": INT,
    "dropoff_census_tract": INT,
    "payment_type": STRING,
    "company": STRING,
    "trip_seconds": INT,
    "dropoff_community_area": INT,
    "tips": FLOAT,
}

# Positive skewed quantities: log-scaled, then z-scored.
DENSE_FLOAT_FEATURES: List[str] = ["trip_miles", "fare", "trip_seconds"]

# Coordinates, cut into quantile buckets.
BUCKET_FEATURES: List[str] = [
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
]
BUCKET_COUNT = 10

# Strings, encoded through a vocabulary with out-of-vocabulary buckets.
VOCAB_FEATURES: List[str] = ["payment_type", "company"]
VOCAB_SIZE = 1000
OOV_SIZE = 10

# Small integer categories and their number of values (ids >= this are clipped).
CATEGORICAL_FEATURES: Dict[str, int] = {
    "trip_start_hour": 24,
    "trip_start_day": 8,
    "trip_start_month": 13,
    "pickup_community_area": 78,
    "dropoff_community_area": 78,
}

# The label: whether the tip was more than 20% of the fare.
FARE_KEY = "fare"
TIPS_KEY = "tips"
TIP_FRACTION = 0.2
LABEL_KEY = "big_tipper"

# Slices the Evaluator reports besides the overall metrics.
SLICE_FEATURES: List[str] = ["trip_start_hour", "payment_type"]


def transformed_name(key: str) -> str:
    """Name of a feature after the preprocessing_fn."""
    return key + "_xf"
