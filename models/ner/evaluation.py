"""TFMA configuration for the NER tagger: entity metrics, slices, blessing."""

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants

from models.ner import features, metrics
from taxi_pipeline.modeling.blessing import blessing_thresholds

# The candidate is blessed only above this entity F1 ...
ENTITY_F1_LOWER_BOUND = 0.6
# ... and when its entity F1 is no more than this below the blessed baseline's.
ENTITY_F1_REGRESSION_TOLERANCE = 0.01


def eval_config() -> tfma.EvalConfig:
    """Entity precision/recall/F1 and token accuracy, overall and by length."""
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Said, not guessed: TFMA would otherwise try a whole Keras
                # load of the tagger (a tf.Module, not a Keras model) first.
                model_type=tfma_constants.TF_GENERIC,
                signature_name="score_stored_examples",
                preprocessing_function_names=["transform_features"],
                label_key=features.ENTITY_CODES,
                prediction_key=features.ENTITY_CODES,
            )
        ],
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(feature_keys=[features.LENGTH_BUCKET_KEY]),
        ],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name=metrics.EntityMetrics.__name__,
                        module=metrics.__name__,
                        per_slice_thresholds=blessing_thresholds(
                            ENTITY_F1_LOWER_BOUND, ENTITY_F1_REGRESSION_TOLERANCE
                        ),
                    ),
                ]
            )
        ],
    )
