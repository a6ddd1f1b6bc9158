"""Hyper-parameter search for TFX's Tuner, shared by every model.

A model declares a `Tuning` next to its `Hyperparameters` (what to search,
which validation metric, how many trials) and a `tuner_fn` that hands
`tuner_fn_result` its own training function. Each trial trains exactly as the
Trainer does (`training.fit`) and reports the final epoch's metrics.

KerasTuner 1.4 checks models against Keras 3 classes (`keras.Model`,
`keras.callbacks.History`) when Keras 3 is installed, which it is next to
TF 2.16, while TFX 1.16 and these models use Keras 2 (`tf_keras`): its
`Tuner` refuses a tf_keras model as "not a valid Keras Model". So the search
runs on KerasTuner's `BaseTuner` and oracle, which never look at the model:
`run_trial` trains and returns plain floats.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Mapping

from tfx.components.trainer.fn_args_utils import FnArgs

# Written by TFX's Tuner executor into its outputs.
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.txt"
TUNER_RESULTS_FILE = "tuner_results.json"


@dataclasses.dataclass(frozen=True)
class Tuning:
    """What `--tune` searches for one model.

    Attributes:
      search_space: declares the searched hyper-parameters on a
        `keras_tuner.HyperParameters` (names are `Hyperparameters` fields).
      objective: a metric `training.fit` reports, e.g. "val_auc".
      direction: "max" or "min".
      max_trials: trials when `--tune_trials` is not given.
    """

    search_space: Callable[[Any], None]
    objective: str
    direction: str
    max_trials: int


def hyperparameter_values(fn_args: FnArgs) -> Dict[str, Any]:
    """The model's own hyper-parameters (the components' custom_config), with
    the values the Tuner found on top when the Trainer was given them."""
    values = dict((fn_args.custom_config or {}).get("hyperparameters", {}))
    tuned = fn_args.hyperparameters or {}
    values.update(tuned.get("values", {}))
    return values


def tuner_fn_result(
    fn_args: FnArgs, tuning: Tuning, train: Callable[[Dict[str, Any], str], Dict[str, float]]
):
    """A TFX `TunerFnResult` whose tuner runs `train(values, trial label)`
    for each trial: the model's own hyper-parameters with the trial's on top."""
    import keras_tuner
    from tfx.components.tuner.component import TunerFnResult

    space = keras_tuner.HyperParameters()
    tuning.search_space(space)
    trials = int((fn_args.custom_config or {}).get("tune_trials") or tuning.max_trials)
    defaults = dict((fn_args.custom_config or {}).get("hyperparameters", {}))

    class FitTuner(keras_tuner.engine.base_tuner.BaseTuner):
        def run_trial(self, trial, *args, **kwargs) -> Dict[str, float]:
            label = f"Tuner trial {int(trial.trial_id) + 1} of {trials}"
            try:
                return train({**defaults, **trial.hyperparameters.values}, label)
            except Exception as e:
                # KerasTuner would log it and go on, and TFX then records a
                # failed trial's values as the best: the search stops instead.
                raise keras_tuner.errors.FatalError(f"{label} failed: {e!r}") from e

    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective(tuning.objective, tuning.direction),
        max_trials=trials,
        hyperparameters=space,
        seed=int(defaults.get("seed", 0)),
    )
    tuner = FitTuner(oracle, directory=fn_args.working_dir, project_name="search", overwrite=True)
    return TunerFnResult(tuner=tuner, fit_kwargs={})


def read_trials(tuner_results_uri: str) -> List[Mapping[str, Any]]:
    """The trials TFX's Tuner recorded, best first: trial_id, score and values."""
    import tensorflow as tf  # gfile: also gs:// and other cluster file systems

    with tf.io.gfile.GFile(os.path.join(tuner_results_uri, TUNER_RESULTS_FILE)) as f:
        return json.load(f)
