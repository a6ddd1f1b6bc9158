"""Helpers for models' run_fns: fitting with progress a runner can show, and
saving serving signatures."""

import json
import logging
import os
import time
from typing import Dict, Mapping, Optional

import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs
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
    nothing here re-loads it as Keras, and those traces took 70 of the NER
    tagger's 110 s export (doubling its load time) and 14 of the taxi
    model's 24 s. The root must not be the Keras model itself, or Keras
    also traces a default signature.
    """
    with keras_option_scope(save_traces=False):
        tf.saved_model.save(module, path, signatures=dict(signatures))


# The runners' progress display reads records of this logger that carry a
# `progress` attribute (steps done, steps in all); elsewhere (Kubeflow, tests)
# they are ordinary INFO log lines.
PROGRESS_LOGGER = logging.getLogger("taxi_pipeline.progress")
PROGRESS_LOGGER.setLevel(logging.INFO)

# Written into the Trainer's ModelRun folder, next to the TensorBoard logs: the
# runners read the figures of a run, or of the cached run it reused, from here.
SUMMARY_FILE = "training_summary.json"


class TrainingProgress(tf.keras.callbacks.Callback):
    """Reports steps and loss at most every `every_s` seconds (and the last
    step), and keeps the final epoch's figures."""

    def __init__(self, total_steps: int, label: str = "Trainer", every_s: float = 0.5):
        super().__init__()
        # Tensors, not numpy, in `logs`: Keras then needs no device sync each step.
        self._supports_tf_logs = True
        self.total_steps = total_steps
        self.label = label
        self.every_s = every_s
        self.final: Dict[str, float] = {}
        self._last = 0.0

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        done, now = batch + 1, time.monotonic()
        if done < self.total_steps and now - self._last < self.every_s:
            return
        self._last = now
        loss = float((logs or {}).get("loss", float("nan")))
        PROGRESS_LOGGER.info(
            "%s: step %d of %d, loss %.4f", self.label, done, self.total_steps, loss,
            extra={"progress": (done, self.total_steps)},
        )

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.final = {name: float(value) for name, value in (logs or {}).items()}


def fit(
    model: tf.keras.Model, train: tf.data.Dataset, evaluation: tf.data.Dataset, fn_args: FnArgs,
    label: str = "Trainer",
) -> Dict[str, float]:
    """One epoch of `fn_args.train_steps` steps, validated on `fn_args.eval_steps`
    batches; returns the final loss and metrics. For the Trainer (which has a
    `model_run_dir`) also TensorBoard logs and `SUMMARY_FILE` there."""
    progress = TrainingProgress(fn_args.train_steps, label)
    run_dir = fn_args.model_run_dir
    callbacks = [progress]
    if run_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch"))
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=callbacks,
        verbose=2,
    )
    if run_dir:
        summary = {"steps": fn_args.train_steps, **progress.final}
        tf.io.gfile.makedirs(run_dir)
        with tf.io.gfile.GFile(os.path.join(run_dir, SUMMARY_FILE), "w") as f:
            f.write(json.dumps(summary, indent=1))
    return progress.final
