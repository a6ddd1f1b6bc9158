"""Keras tip classifier for the Chicago taxi data, and the Trainer's run_fn."""

import dataclasses
from typing import Any, Dict, List, Mapping

import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public.tfxio import TensorFlowDatasetOptions

from models.taxi import features
from taxi_pipeline.modeling import examples
from taxi_pipeline.modeling.training import fit, save_signatures, without_autograph
from taxi_pipeline.modeling.tuning import Tuning, hyperparameter_values, tuner_fn_result

LABEL = features.transformed_name(features.LABEL_KEY)


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Training settings, passed to run_fn through the Trainer's custom_config."""

    hidden_units: List[int] = dataclasses.field(default_factory=lambda: [64, 32])
    learning_rate: float = 0.003
    batch_size: int = 256
    dropout: float = 0.1
    seed: int = 42

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "Hyperparameters":
        """From custom_config or tuned values, where the Tuner's choice of
        layers is a string ("128,64")."""
        values = dict(values)
        if isinstance(values.get("hidden_units"), str):
            values["hidden_units"] = [int(n) for n in values["hidden_units"].split(",")]
        return cls(**values)


def _search_space(hp) -> None:
    hp.Choice("hidden_units", ["32", "64,32", "128,64", "128,64,32"])
    hp.Float("dropout", 0.0, 0.3, step=0.1)
    hp.Float("learning_rate", 1e-3, 3e-2, sampling="log")


# What --tune searches: layer sizes, dropout and learning rate, for the best
# validation AUC.
TUNING = Tuning(search_space=_search_space, objective="val_auc", direction="max", max_trials=8)


def _input_fn(
    file_pattern: List[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
) -> tf.data.Dataset:
    """(features, label) batches of transformed examples, repeated forever."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def category_sizes(tf_transform_output: tft.TFTransformOutput) -> Dict[str, int]:
    """Number of distinct ids of every categorical model input."""
    sizes = {
        features.transformed_name(key): tf_transform_output.vocabulary_size_by_name(
            key
        )
        + features.OOV_SIZE
        for key in features.VOCAB_FEATURES
    }
    for key in features.BUCKET_FEATURES:
        # One more bucket for missing coordinates.
        sizes[features.transformed_name(key)] = features.BUCKET_COUNT + 1
    for key, num_values in features.CATEGORICAL_FEATURES.items():
        sizes[features.transformed_name(key)] = num_values
    return sizes


def build_keras_model(
    category_sizes: Dict[str, int], hparams: Hyperparameters
) -> tf.keras.Model:
    """An MLP over z-scored dense features and one-hot categorical features."""
    dense_inputs = {
        name: tf.keras.layers.Input(name=name, shape=(1,), dtype=tf.float32)
        for name in map(features.transformed_name, features.DENSE_FLOAT_FEATURES)
    }
    categorical_inputs = {
        name: tf.keras.layers.Input(name=name, shape=(1,), dtype=tf.int64)
        for name in category_sizes
    }
    encoded = list(dense_inputs.values()) + [
        tf.keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(
            categorical_inputs[name]
        )
        for name, size in category_sizes.items()
    ]
    x = tf.keras.layers.concatenate(encoded)
    for units in hparams.hidden_units:
        x = tf.keras.layers.Dense(units, activation="relu")(x)
        x = tf.keras.layers.Dropout(hparams.dropout)(x)
    output = tf.keras.layers.Dense(1, activation="sigmoid")(x)

    model = tf.keras.Model({**dense_inputs, **categorical_inputs}, output)
    model.compile(
        loss="binary_crossentropy",
        optimizer=tf.keras.optimizers.Adam(learning_rate=hparams.learning_rate),
        # Named: a second model in the same process (a Tuner trial) would get "auc_1".
        metrics=[tf.keras.metrics.BinaryAccuracy(name="binary_accuracy"), tf.keras.metrics.AUC(name="auc")],
    )
    return without_autograph(model)


def _cast(values: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    if values.dtype == dtype:
        return values
    if dtype == tf.string:
        return tf.strings.as_string(values)
    if values.dtype == tf.string:
        return tf.strings.to_number(values, dtype)
    return tf.cast(values, dtype)


def _as_spec(value: tf.sparse.SparseTensor, spec) -> tf.Tensor:
    """A request feature parsed by its declared type, in the form the transform
    graph was traced with: the schema inferred from training data may read a
    float column of whole numbers as int, or a never-missing column as dense."""
    values = _cast(value.values, spec.dtype)
    if not isinstance(spec, tf.io.FixedLenFeature):
        return tf.sparse.SparseTensor(value.indices, values, value.dense_shape)
    width = 1
    for dim in spec.shape:
        width *= dim
    default = "" if spec.dtype == tf.string else 0
    dense = tf.sparse.to_dense(
        tf.sparse.SparseTensor(value.indices, values, [value.dense_shape[0], width]),
        default_value=tf.constant(default, spec.dtype),
    )
    return tf.reshape(dense, [-1] + list(spec.shape))


def export_serving_model(
    model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, path: str
) -> None:
    """Saves `model` with the transform graph, ready for TF Serving and TFMA.

    `serving_default` scores serialized raw tf.Examples typed as the model
    declares its columns (`features.RAW_COLUMNS`, the types of the data and
    of TFX's taxi schema), whole-number columns also as floats and float
    columns also as ints. `example_contract` shows that contract in
    GetModelMetadata: one output per feature, of its declared dtype.
    `score_stored_examples` scores tf.Examples as ExampleGen stored them (types
    inferred from the data) and `transform_features` yields the transformed
    label: both feed TFMA.
    """
    # The saved root: the model and the transform layer, tracked so both are
    # saved with the signatures that call them.
    module = tf.Module()
    module.model = model
    module.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    request_columns = {
        k: v for k, v in features.RAW_COLUMNS.items() if k != features.TIPS_KEY and k in raw_spec
    }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_tf_examples(serialized):
        parsed = examples.parse_examples(serialized, request_columns)
        raw = {k: _as_spec(v, raw_spec[k]) for k, v in parsed.items()}
        return {"probabilities": model(module.tft_layer(raw))}

    @tf.function(input_signature=[], autograph=False)
    def example_contract():
        return {k: tf.zeros([0], examples.DTYPES[kind]) for k, kind in request_columns.items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def score_stored_examples(serialized):
        raw = tf.io.parse_example(serialized, raw_spec)
        return {"probabilities": model(module.tft_layer(raw))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def transform_features(serialized):
        return module.tft_layer(tf.io.parse_example(serialized, raw_spec))

    signatures = {
        "serving_default": serve_tf_examples.get_concrete_function(),
        "example_contract": example_contract.get_concrete_function(),
        "score_stored_examples": score_stored_examples.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function(),
    }
    save_signatures(module, path, signatures)


def _train(hparams: Hyperparameters, fn_args: FnArgs, label: str = "Trainer"):
    """(model, transform output, final metrics) of one training run."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    tf.keras.utils.set_random_seed(hparams.seed)
    train, evaluation = (
        _input_fn(files, fn_args.data_accessor, tf_transform_output, hparams.batch_size)
        for files in (fn_args.train_files, fn_args.eval_files)
    )
    model = build_keras_model(category_sizes(tf_transform_output), hparams)
    return model, tf_transform_output, fit(model, train, evaluation, fn_args, label)


def run_fn(fn_args: FnArgs) -> None:
    """Trains the model (with the Tuner's best values, when tuned) and saves
    it with raw-example serving signatures."""
    hparams = Hyperparameters.from_values(hyperparameter_values(fn_args))
    model, tf_transform_output, _ = _train(hparams, fn_args)
    export_serving_model(model, tf_transform_output, fn_args.serving_model_dir)


def tuner_fn(fn_args: FnArgs):
    """TFX's Tuner entry point: searches `TUNING` by training as run_fn does."""
    return tuner_fn_result(
        fn_args, TUNING, lambda values, label: _train(Hyperparameters.from_values(values), fn_args, label)[2]
    )
