"""Models served by the shared pipeline: one sub-package per model.

Adding a model means adding a folder here whose `__init__.py` defines `SPEC`
(a `taxi_pipeline.pipeline.definition.ModelDefinition`); the runners discover it by name.
"""

import importlib
import os
import pkgutil
from typing import List

from taxi_pipeline.pipeline.definition import ModelDefinition


def available() -> List[str]:
    """Names of the models under this package, sorted."""
    here = os.path.dirname(__file__)
    return sorted(m.name for m in pkgutil.iter_modules([here]) if m.ispkg)


def get(name: str) -> ModelDefinition:
    """The ModelDefinition of `models/<name>/`; ValueError names the known models."""
    if name not in available():
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(available())}"
        )
    return importlib.import_module(f"{__name__}.{name}").SPEC
