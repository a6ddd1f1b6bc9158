"""The models the machinery serves, found by name.

A model is a folder under the `models` package whose `__init__.py` defines
`SPEC`, a `ModelDefinition`. The machinery imports that package only here, and
only by name at run time: nothing in `taxi_pipeline` names a model, and
adding one is adding a folder.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import List

from taxi_pipeline.contract.definition import ModelDefinition

MODELS_PACKAGE = "models"


def available() -> List[str]:
    """Names of the models, sorted."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations) if m.ispkg)


def get(name: str) -> ModelDefinition:
    """The ModelDefinition of `models/<name>/`; ValueError names the known models."""
    if name not in available():
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(available())}")
    return importlib.import_module(f"{MODELS_PACKAGE}.{name}").SPEC
