"""TFMA's default extractors, with what no metric reads dropped before unbatching.

TFMA extracts features, transformed features, labels and predictions a batch
at a time, then splits every batch into one dict per example, converting each
feature of each example on the way: with the taxi data's 18 raw and 15
transformed features that split was a third of the Evaluator's time once the
metrics ran in one pass. By then the labels, weights and predictions have
been extracted, and slicing needs only the features its specs name; this
keeps those and drops the rest. The TFX Evaluator calls `custom_extractors`
of its `module_path`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Set

import apache_beam as beam
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants

_UNBATCH_STAGE = "ExtractUnbatchedInputs"


def slicing_features(eval_config: tfma.EvalConfig) -> Set[str]:
    """The features a slice of the eval config is keyed on."""
    names: Set[str] = set()
    for spec in list(eval_config.slicing_specs) + [c.baseline_spec for c in eval_config.cross_slicing_specs] + [
        s for c in eval_config.cross_slicing_specs for s in c.slicing_specs
    ]:
        names.update(spec.feature_keys)
        names.update(spec.feature_values)
    return names


def _keep_only(features: Any, names: Set[str]) -> Any:
    if not isinstance(features, dict):
        return features
    # One dict per model when a baseline is evaluated too: keep the layout.
    if features and all(isinstance(v, dict) for v in features.values()):
        return {model: _keep_only(f, names) for model, f in features.items()}
    return {name: value for name, value in features.items() if name in names}


def prune(extracts: Dict[str, Any], names: Set[str]) -> Dict[str, Any]:
    """A batch of extracts holding, of all the features, only `names`."""
    pruned = dict(extracts)
    for key in (constants.FEATURES_KEY, constants.TRANSFORMED_FEATURES_KEY):
        if key in pruned:
            pruned[key] = _keep_only(pruned[key], names)
    return pruned


def custom_extractors(eval_shared_model, eval_config: tfma.EvalConfig, tensor_adapter_config) -> List[tfma.extractors.Extractor]:
    """TFMA's default extractors with `prune` just before the unbatching."""
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model, eval_config=eval_config, tensor_adapter_config=tensor_adapter_config
    )
    stages = [e.stage_name for e in extractors]
    if _UNBATCH_STAGE not in stages:
        raise RuntimeError(f"TFMA's default extractors have no {_UNBATCH_STAGE} stage: {stages}")
    names = slicing_features(eval_config)
    pruning = tfma.extractors.Extractor(
        stage_name="DropFeaturesNoSliceNeeds",
        ptransform=beam.Map(prune, names),
    )
    at = stages.index(_UNBATCH_STAGE)
    return extractors[:at] + [pruning] + extractors[at:]
