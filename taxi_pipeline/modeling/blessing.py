"""TFMA pieces every model's eval config uses."""

from typing import Callable, Dict, List, Optional, Sequence

import apache_beam as beam
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types


def blessing_thresholds(
    lower_bound: float, regression_tolerance: float
) -> List[tfma.PerSliceMetricThreshold]:
    """Blessing rule for one metric (higher is better): at least `lower_bound`
    and at most `regression_tolerance` below the blessed baseline model.

    It applies to the overall slice only: small slices are too noisy to gate
    on (a slice holding one class has no meaningful AUC, say). Without a
    baseline (the first run) only the lower bound applies.
    """
    return [
        tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -regression_tolerance},
                ),
            ),
        )
    ]


def combiner_per_model_and_output(
    names: Sequence[str],
    make_combiner: Callable[[Dict[str, metric_types.MetricKey]], beam.CombineFn],
    model_names: Optional[List[str]] = None,
    output_names: Optional[List[str]] = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """A custom TFMA metric's computations: for each model (candidate and
    baseline) and output, one combiner producing the metrics `names`, given
    their keys by name."""
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = {
                name: metric_types.MetricKey(
                    name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
                )
                for name in names
            }
            computations.append(
                metric_types.MetricComputation(keys=list(keys.values()), preprocessors=None, combiner=make_combiner(keys))
            )
    return computations
