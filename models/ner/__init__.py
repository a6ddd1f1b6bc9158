"""Named-entity recognition: a Bi-LSTM tagging tokens with IOB tags (B-geo, I-tim, ...)."""

import dataclasses
import os

from models.ner import evaluation
from models.ner.example_gen import ner_example_gen
from models.ner.model import Hyperparameters
from models.ner.readers import check_path
from taxi_pipeline.settings import REPO_ROOT
from taxi_pipeline.contract.definition import ModelDefinition

_HERE = os.path.dirname(os.path.abspath(__file__))

SPEC = ModelDefinition(
    name="ner",
    serving_name="ner",
    package_dir=_HERE,
    default_data=os.path.join(REPO_ROOT, "data", "ner", "ner_dataset.csv"),
    raw_columns={},
    example_gen=ner_example_gen,
    check_data=check_path,
    preprocessing_fn="models.ner.preprocessing.preprocessing_fn",
    run_fn="models.ner.model.run_fn",
    tuner_fn="models.ner.model.tuner_fn",
    client="models.ner.client",
    eval_config=evaluation.eval_config,
    headline_metrics=["entity_f1", "entity_precision", "entity_recall", "token_accuracy", "example_count"],
    train_steps=1500,
    eval_steps=20,
    hyperparameters=dataclasses.asdict(Hyperparameters()),
)
