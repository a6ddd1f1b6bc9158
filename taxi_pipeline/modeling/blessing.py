"""TFMA pieces every model's eval config uses."""

from typing import List

import tensorflow_model_analysis as tfma


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
