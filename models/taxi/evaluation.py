"""TFMA configuration for the taxi model: metrics, slices and blessing thresholds."""

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants

from models.taxi import features
from taxi_pipeline.modeling import binary_metrics
from taxi_pipeline.modeling.blessing import blessing_thresholds

# The candidate is blessed only above this AUC ...
AUC_LOWER_BOUND = 0.75
# ... and when its AUC is no more than this below the blessed baseline's
# (retraining the same model on the same data varies by about this much).
AUC_REGRESSION_TOLERANCE = 0.01


def eval_config() -> tfma.EvalConfig:
    """AUC, accuracy, precision, recall and calibration, overall and per slice."""
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Said, not guessed: TFMA would otherwise try a whole Keras
                # load of the model (saved as signatures alone) first.
                model_type=tfma_constants.TF_GENERIC,
                signature_name="score_stored_examples",
                label_key=features.transformed_name(features.LABEL_KEY),
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_FEATURES],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    # AUC, accuracy, precision, recall, calibration and the
                    # example count, as TFMA computes them, in one pass.
                    tfma.MetricConfig(
                        class_name=binary_metrics.BinaryClassification.__name__,
                        module=binary_metrics.__name__,
                        per_slice_thresholds=blessing_thresholds(
                            AUC_LOWER_BOUND, AUC_REGRESSION_TOLERANCE
                        ),
                    ),
                ]
            )
        ],
    )
