"""Each model's --tune search space searches only that model's own hyper-parameters.

A name the model does not have would only fail the first trial, after the
data steps have run.
"""

import importlib

import keras_tuner
import pytest

import models


@pytest.mark.parametrize("name", models.available())
def test_search_space_names_only_the_models_hyperparameters(name):
    space = keras_tuner.HyperParameters()
    importlib.import_module(f"models.{name}.model").TUNING.search_space(space)
    searched, known = set(space.values), set(models.get(name).hyperparameters)
    assert searched, f"{name}: empty search space"
    assert searched <= known, f"{name} searches what it does not have: {sorted(searched - known)}"
