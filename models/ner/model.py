"""Keras Bi-LSTM tagger for NER, its run_fn, and a raw-text serving signature."""

import dataclasses
from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public.tfxio import TensorFlowDatasetOptions

from models.ner import crf, decoding, features, preprocessing, tokenizer, training_loss
from models.ner.metrics import PAD
from taxi_pipeline.modeling.training import fit, save_signatures, without_autograph
from taxi_pipeline.modeling.tuning import Tuning, hyperparameter_values, tuner_fn_result

MODEL_INPUTS = (features.TOKEN_IDS, features.SUFFIX_IDS, features.SHAPE_IDS, features.CHAR_IDS)


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Model and training settings, passed through the components' custom_config."""

    token_embedding: int = 64
    suffix_embedding: int = 16
    shape_embedding: int = 8
    char_embedding: int = 24
    char_filters: int = 64
    lstm_units: int = 150
    dropout: float = 0.5
    # Share of training tokens read as unknown words, so the model learns to
    # tag words it has never seen from their characters and context.
    word_dropout: float = 0.1
    lstm_layers: int = 1
    # Distance (L2, per token) by which adversarial training moves each
    # token's features; 0 turns it off.
    adversarial_epsilon: float = 0.3
    # Weight of the second training task, predicting each token's POS tag
    # from the Bi-LSTM's output, where the data has POS tags; 0 turns it off.
    pos_weight: float = 0.25
    learning_rate: float = 0.01
    batch_size: int = 32
    min_token_count: int = 2
    seed: int = 42


def _search_space(hp) -> None:
    hp.Choice("token_embedding", [32, 64, 128])
    hp.Choice("lstm_units", [100, 150, 200])
    hp.Float("dropout", 0.2, 0.5, step=0.1)
    hp.Float("learning_rate", 3e-3, 3e-2, sampling="log")
    hp.Choice("adversarial_epsilon", [0.0, 0.3, 0.5])
    hp.Choice("pos_weight", [0.0, 0.25, 0.5])


# What --tune searches: embedding and LSTM sizes, dropout, learning rate, the
# adversarial distance and the POS task's weight (0: off), for the lowest
# validation loss (the CRF's negative log-likelihood on clean input, so trials
# with and without the extra training terms compare).
TUNING = Tuning(search_space=_search_space, objective="val_loss", direction="min", max_trials=6)


def _dense(sparse: tf.sparse.SparseTensor, default=0) -> tf.Tensor:
    return tf.sparse.to_dense(sparse, default_value=tf.cast(default, sparse.dtype))


def _input_fn(
    file_pattern: List[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
) -> tf.data.Dataset:
    """(per-token id inputs and POS tag ids where the data has them, tag ids)
    batches, padded with 0 to the batch's longest sentence, repeated forever."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.TAG_IDS),
        tf_transform_output.transformed_metadata.schema,
    )
    keys = MODEL_INPUTS + ((features.POS_IDS,) if preprocessing.has_pos_ids(tf_transform_output) else ())
    return dataset.map(
        lambda x, y: ({k: _dense(x[k]) for k in keys}, _dense(y)),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).repeat()


class WordDropout(tf.keras.layers.Layer):
    """In training, replaces a random `rate` of the real token ids with the
    out-of-vocabulary id; at inference it passes ids through."""

    def __init__(self, rate: float, oov_id: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.oov_id, self.seed = rate, oov_id, seed

    def call(self, ids, training=None):
        if not training or self.rate <= 0:
            return ids
        dropped = tf.logical_and(ids > 0, tf.random.uniform(tf.shape(ids), seed=self.seed) < self.rate)
        return tf.where(dropped, tf.constant(self.oov_id, ids.dtype), ids)


def _char_cnn(char_ids: tf.Tensor, buckets: int, hparams: Hyperparameters) -> tf.Tensor:
    """[batch, tokens * chars] ids → [batch, tokens, char_filters] features."""
    chars = tf.keras.layers.Reshape((-1, features.CHARS_PER_TOKEN))(char_ids)
    x = tf.keras.layers.Embedding(buckets, hparams.char_embedding)(chars)
    x = tf.keras.layers.TimeDistributed(
        tf.keras.layers.Conv1D(hparams.char_filters, 3, padding="same", activation="relu")
    )(x)
    return tf.keras.layers.TimeDistributed(tf.keras.layers.GlobalMaxPooling1D())(x)


def _embedder(sizes: Dict[str, int], hparams: Hyperparameters) -> tf.keras.Model:
    """Model inputs → (per-token features: embeddings of token, suffix and
    shape and the character CNN's; token mask)."""
    inputs = {
        name: tf.keras.layers.Input(name=name, shape=(None,), dtype=tf.int64)
        for name in MODEL_INPUTS
    }
    token_ids = inputs[features.TOKEN_IDS]
    embedded = tf.keras.layers.concatenate(
        [
            tf.keras.layers.Embedding(sizes[features.TOKEN_IDS], hparams.token_embedding)(
                WordDropout(hparams.word_dropout, sizes[features.TOKEN_IDS] - 1, hparams.seed)(token_ids)
            ),
            tf.keras.layers.Embedding(sizes[features.SUFFIX_IDS], hparams.suffix_embedding)(
                inputs[features.SUFFIX_IDS]
            ),
            tf.keras.layers.Embedding(sizes[features.SHAPE_IDS], hparams.shape_embedding)(
                inputs[features.SHAPE_IDS]
            ),
            _char_cnn(inputs[features.CHAR_IDS], sizes[features.CHAR_IDS], hparams),
        ]
    )
    return tf.keras.Model(inputs, [embedded, tf.math.greater(token_ids, 0)], name="embedder")


def _head(width: int, hparams: Hyperparameters, tags: List[str], pos_tags: int) -> tf.keras.Model:
    """(per-token features, token mask) → Bi-LSTM → per-token tag scores,
    with the CRF's transitions (`crf.py`), and, when `pos_tags`, POS tag
    scores from the same Bi-LSTM output."""
    embedded = tf.keras.layers.Input(shape=(None, width), name="features")
    mask = tf.keras.layers.Input(shape=(None,), dtype=tf.bool, name="mask")
    x = tf.keras.layers.Dropout(hparams.dropout)(embedded)
    for _ in range(hparams.lstm_layers):
        x = tf.keras.layers.Bidirectional(
            tf.keras.layers.LSTM(hparams.lstm_units, return_sequences=True)
        )(x, mask=mask)
        x = tf.keras.layers.Dropout(hparams.dropout)(x)
    scores = crf.Transitions(*decoding.iob_transitions(tags), name="crf")(tf.keras.layers.Dense(len(tags))(x))
    if pos_tags:
        return tf.keras.Model([embedded, mask], [scores, tf.keras.layers.Dense(pos_tags, name="pos")(x)], name="head")
    return tf.keras.Model([embedded, mask], scores, name="head")


def build_keras_model(
    sizes: Dict[str, int], hparams: Hyperparameters, train_steps: int, tags: List[str]
) -> tf.keras.Model:
    """Embeddings of token, suffix and shape, and a character CNN per token
    → Bi-LSTM → per-token tag scores → CRF (`crf.py`), trained adversarially
    and, when `sizes` has POS tag ids and `hparams.pos_weight` > 0, to
    predict POS tags too (`training_loss.py`).

    `tags` names the output ids (0 padding, the last the OOV bucket). The
    Bi-LSTM and the CRF loss skip padding (token id 0), so padding neither
    trains nor scores. The character CNN lets the model read words it has
    never seen.
    """
    embedder = _embedder(sizes, hparams)
    pos_tags = sizes.get(features.POS_IDS, 0) if hparams.pos_weight > 0 else 0
    model = training_loss.AdversarialCrfModel(
        embedder,
        _head(embedder.output[0].shape[-1], hparams, tags, pos_tags),
        hparams.adversarial_epsilon,
        hparams.pos_weight,
    )
    model.compile(
        # Cosine decay to zero over the run: the last steps refine instead of bouncing.
        optimizer=tf.keras.optimizers.Adam(
            learning_rate=tf.keras.optimizers.schedules.CosineDecay(hparams.learning_rate, train_steps)
        ),
    )
    return without_autograph(model)


def output_tags(tf_transform_output: tft.TFTransformOutput) -> List[str]:
    """The tag of each model output: 0 is padding, i is tag vocabulary entry
    i - 1, the last the OOV bucket."""
    tags = [t.decode() for t in tf_transform_output.vocabulary_by_name(preprocessing.TAG_VOCAB)]
    return ["<pad>", *tags, "<oov>"]


class _Tagger(tf.Module):
    """The trained model with its transform graph and tag vocabulary."""

    def __init__(self, model: crf.CrfModel, tf_transform_output: tft.TFTransformOutput):
        super().__init__()
        self.model = model
        self.allowed, self.first = decoding.iob_transitions(output_tags(tf_transform_output))
        self.tft_layer = tf_transform_output.transform_features_layer()
        self.raw_spec = tf_transform_output.raw_feature_spec()
        self.tag_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                tf_transform_output.vocabulary_file_by_name(preprocessing.TAG_VOCAB),
                tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER,
                tf.string,
                tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value="O",
        )

    def _tag(self, raw: Dict[str, tf.Tensor]):
        """(tag strings, token mask) for raw features; both [batch, tokens]."""
        transformed = self.tft_layer(raw)
        ids = {k: _dense(transformed[k]) for k in MODEL_INPUTS}
        mask = ids[features.TOKEN_IDS] > 0
        predicted = decoding.viterbi(
            self.model(ids), mask, self.allowed, self.first, self.model.learned_scores()
        )
        return self.tag_table.lookup(predicted - 1), mask

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
    def tag_text(self, text):
        tokens, starts, ends = tokenizer.tokenize_with_offsets(text)
        tags, mask = self._tag({features.TOKENS_KEY: tokens.to_sparse()})
        shape = tf.shape(mask, out_type=tf.int64)  # [sentences, longest sentence]
        return {
            "tokens": tokens.to_tensor(default_value="", shape=shape),
            "tags": tf.where(mask, tags, tf.constant("")),
            "starts": starts.to_tensor(default_value=-1, shape=shape),
            "ends": ends.to_tensor(default_value=-1, shape=shape),
        }

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")], autograph=False)
    def tag_tokens(self, tokens):
        tags, mask = self._tag({features.TOKENS_KEY: tf.sparse.from_dense(tokens)})
        return {"tags": tf.where(mask, tags, tf.constant(""))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def score_stored_examples(self, serialized):
        tags, mask = self._tag(tf.io.parse_example(serialized, self.raw_spec))
        codes = preprocessing.encode_iob(tags)
        return {features.ENTITY_CODES: tf.where(mask, codes, tf.constant(PAD, tf.int64))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def transform_features(self, serialized):
        transformed = self.tft_layer(tf.io.parse_example(serialized, self.raw_spec))
        return {features.ENTITY_CODES: _dense(transformed[features.ENTITY_CODES], PAD)}


def export_serving_model(
    model: crf.CrfModel, tf_transform_output: tft.TFTransformOutput, path: str
) -> None:
    """Saves the tagger: `serving_default` takes raw sentences (`text`) and
    answers `tokens` and `tags`, padded with "", and each token's `starts` and
    `ends` in the sentence in Unicode characters, padded with -1; `tag_tokens` takes sentences
    already split into tokens (padded with ""); `score_stored_examples` and
    `transform_features` give TFMA predicted and gold IOB codes."""
    tagger = _Tagger(model, tf_transform_output)
    save_signatures(
        tagger,
        path,
        {
            "serving_default": tagger.tag_text.get_concrete_function(),
            "tag_tokens": tagger.tag_tokens.get_concrete_function(),
            "score_stored_examples": tagger.score_stored_examples.get_concrete_function(),
            "transform_features": tagger.transform_features.get_concrete_function(),
        },
    )


def _train(hparams: Hyperparameters, fn_args: FnArgs, label: str = "Trainer"):
    """(model, transform output, final metrics) of one training run."""
    tf.keras.utils.set_random_seed(hparams.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train, evaluation = (
        _input_fn(files, fn_args.data_accessor, tf_transform_output, hparams.batch_size)
        for files in (fn_args.train_files, fn_args.eval_files)
    )
    model = build_keras_model(
        preprocessing.vocabulary_sizes(tf_transform_output),
        hparams,
        fn_args.train_steps,
        output_tags(tf_transform_output),
    )
    return model, tf_transform_output, fit(model, train, evaluation, fn_args, label)


def run_fn(fn_args: FnArgs) -> None:
    """Trains the tagger (with the Tuner's best values, when tuned) and saves
    it with its serving signatures."""
    model, tf_transform_output, _ = _train(Hyperparameters(**hyperparameter_values(fn_args)), fn_args)
    export_serving_model(model, tf_transform_output, fn_args.serving_model_dir)


def tuner_fn(fn_args: FnArgs):
    """TFX's Tuner entry point: searches `TUNING` by training as run_fn does."""
    return tuner_fn_result(
        fn_args, TUNING, lambda values, label: _train(Hyperparameters(**values), fn_args, label)[2]
    )
