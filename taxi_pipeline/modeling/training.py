"""Helpers for models' run_fns."""

from typing import Mapping

import tensorflow as tf
from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope


def without_autograph(model: tf.keras.Model) -> tf.keras.Model:
    """Keeps AutoGraph from rewriting Keras' train/test/predict steps.

    The steps have no tensor-dependent Python control flow, yet converting
    them (and every layer they call) costs over 10 s of CPU per process here,
    more than the whole training of a small model.
    """
    for step in ("train_step", "test_step", "predict_step"):
        setattr(model, step, tf.autograph.experimental.do_not_convert(getattr(model, step)))
    return model


def save_signatures(module: tf.Module, path: str, signatures: Mapping[str, tf.types.experimental.ConcreteFunction]) -> None:
    """Saves `module` for TF Serving and TFMA with `signatures` only.

    A module holding a Keras model otherwise gets every layer's call traced
    for a Keras re-load (what `model.save(save_traces=False)` turns off);
    nothing here re-loads it as Keras, and for the NER tagger those traces
    took 70 of the export's 110 s and doubled its load time.
    """
    with keras_option_scope(save_traces=False):
        tf.saved_model.save(module, path, signatures=dict(signatures))
