"""Models served by the shared pipeline: one sub-package per model.

Adding a model means adding a folder here whose `__init__.py` defines `SPEC`
(a `taxi_pipeline.contract.definition.ModelDefinition`); the runners and the
machinery find it by name (`taxi_pipeline.contract.catalog`).
"""

from taxi_pipeline.contract.catalog import available, get

__all__ = ["available", "get"]
