"""Each model's --tune search space searches only that model's own hyper-parameters.

A name the model does not have would fail only at tuning time, after the data
steps, or be silently ignored by the Trainer.
"""

import importlib

import keras_tuner
import pytest

import models


@pytest.mark.parametrize("name", models.available())
def test_search_space_names_only_the_models_hyperparameters(name):
    space = keras_tuner.HyperParameters()
    importlib.import_module(f"models.{name}.model").TUNING.search_space(space)
    searched = set(space.values)
    assert searched, f"{name}: empty search space"
    assert searched <= set(models.get(name).hyperparameters), searched - set(models.get(name).hyperparameters)
