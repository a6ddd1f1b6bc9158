"""Chicago taxi tip classifier: will the tip exceed 20% of the fare?"""

import dataclasses
import os

from models.taxi import evaluation, features
from models.taxi.model import Hyperparameters
from taxi_pipeline.settings import REPO_ROOT
from taxi_pipeline.contract.definition import ModelDefinition
from taxi_pipeline.pipeline.csv_example_gen import CsvExampleGen
from taxi_pipeline.pipeline.data_validation import check_csv_dir

_HERE = os.path.dirname(os.path.abspath(__file__))

SPEC = ModelDefinition(
    name="taxi",
    serving_name="chicago_taxi",
    package_dir=_HERE,
    default_data=os.path.join(REPO_ROOT, "data", "taxi"),
    raw_columns=features.RAW_COLUMNS,
    example_gen=lambda data: CsvExampleGen(input_base=data),
    check_data=lambda data: check_csv_dir(data, features.RAW_COLUMNS),
    preprocessing_fn="models.taxi.preprocessing.preprocessing_fn",
    run_fn="models.taxi.model.run_fn",
    tuner_fn="models.taxi.model.tuner_fn",
    client="models.taxi.client",
    eval_config=evaluation.eval_config,
    headline_metrics=["auc", "binary_accuracy", "precision", "recall", "example_count"],
    train_steps=500,
    eval_steps=50,
    hyperparameters=dataclasses.asdict(Hyperparameters()),
)
