"""Helpers for models' run_fns."""

import tensorflow as tf


def without_autograph(model: tf.keras.Model) -> tf.keras.Model:
    """Keeps AutoGraph from rewriting Keras' train/test/predict steps.

    The steps have no tensor-dependent Python control flow, yet converting
    them (and every layer they call) costs over 10 s of CPU per process here,
    more than the whole training of a small model.
    """
    for step in ("train_step", "test_step", "predict_step"):
        setattr(model, step, tf.autograph.experimental.do_not_convert(getattr(model, step)))
    return model
