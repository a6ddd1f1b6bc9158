"""The one pipeline factory: every model runs through the same TFX components."""

from __future__ import annotations

import json
from typing import Optional, Sequence

from ml_metadata.proto import metadata_store_pb2
# Direct imports: `tfx.v1` also loads the Google Cloud extensions, which costs
# several seconds on every run.
from tfx.components import (
    Evaluator,
    ExampleValidator,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
    Tuner,
)
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, trainer_pb2
from tfx.types.channel import Channel
from tfx.types.standard_artifacts import HyperParameters, Model, ModelBlessing

from taxi_pipeline.modeling import lean_evaluation
from taxi_pipeline.pipeline.data_gate import DataGate
from taxi_pipeline.pipeline.pusher import atomic_pusher
from taxi_pipeline.pipeline.evaluation_summary import EvaluationSummary, TuningSummary
from taxi_pipeline.kubeflow.infra_validator import cluster_infra_validator
from taxi_pipeline.pipeline.servability import local_serving_check
from taxi_pipeline.contract.definition import TUNE_LATEST, TUNE_SEARCH, ModelDefinition


def create_pipeline(
    model: ModelDefinition,
    *,
    pipeline_root: str,
    data_root: str,
    serving_model_dir: str,
    train_steps: Optional[int] = None,
    eval_steps: Optional[int] = None,
    beam_pipeline_args: Sequence[str] = (),
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    enable_cache: bool = True,
    servability_check: bool = True,
    tf_serving_tag: Optional[str] = None,
    tuning: Optional[str] = None,
    tune_trials: Optional[int] = None,
) -> Pipeline:
    """ExampleGen → statistics, schema, validation gate → Transform → Trainer →
    Evaluator (against the latest blessed model) + servability check → Pusher.

    `serving_model_dir` is the TF Serving model base path: the model is pushed
    to `<serving_model_dir>/<version>/`, and only when both the Evaluator and
    the servability check bless it (without `servability_check`, the Evaluator
    alone). The check is TFX's InfraValidator with
    `tensorflow/serving:<tf_serving_tag>` on Kubernetes when a tag is given
    (Kubeflow: it starts a pod), else the local TF Serving-API server's loader.

    `tuning`: None trains with the model's own hyper-parameters; TUNE_SEARCH adds
    TFX's Tuner (the model's search space, `tune_trials` trials) and trains
    with the best values it finds; TUNE_LATEST trains with the best values of the
    latest search recorded in ML Metadata, without searching again.
    """
    example_gen = model.example_gen(data_root)
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"]
    )
    schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
    )
    data_gate = DataGate(
        statistics=statistics_gen.outputs["statistics"],
        anomalies=example_validator.outputs["anomalies"],
        raw_columns=json.dumps(dict(model.raw_columns), sort_keys=True),
    )
    custom_config = model.custom_config()
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=model.preprocessing_fn,
        custom_config=custom_config,
        # StatisticsGen already describes the data; Transform's own pre- and
        # post-transform statistics would double the cost of the step.
        disable_statistics=True,
        # One trace of preprocessing_fn into a TF1 graph instead of TF2's
        # repeated tf.function tracing: the same transform graph and model
        # (identical losses and metrics, both models), in less time.
        force_tf_compat_v1=True,
        # The analyzer cache only serves a later Transform that is given it as
        # `analyzer_cache` (incremental analysis over rolling spans); no run
        # here reads it, and writing it is a good part of the step's time.
        disable_analyzer_cache=True,
    )
    transform.add_upstream_node(data_gate)
    # What the Tuner's trials and the Trainer both train on, and for how long.
    training = dict(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(num_steps=train_steps or model.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=eval_steps or model.eval_steps),
    )
    tuning_nodes = []
    best_hyperparameters = None
    if tuning == TUNE_SEARCH:
        tuner = Tuner(
            tuner_fn=model.tuner_fn, custom_config={**custom_config, "tune_trials": tune_trials}, **training
        )
        best_hyperparameters = tuner.outputs["best_hyperparameters"]
        tuning_nodes = [tuner, TuningSummary(tuner_results=tuner.outputs["tuner_results"])]
    elif tuning == TUNE_LATEST:
        latest = Resolver(
            strategy_class=LatestArtifactStrategy,
            hyperparameters=Channel(type=HyperParameters),
        ).with_id("latest_tuning_resolver")
        best_hyperparameters = latest.outputs["hyperparameters"]
        tuning_nodes = [latest]
    elif tuning is not None:
        raise ValueError(f"tuning must be None, {TUNE_SEARCH!r} or {TUNE_LATEST!r}, not {tuning!r}")
    trainer = Trainer(
        run_fn=model.run_fn, hyperparameters=best_hyperparameters, custom_config=custom_config, **training
    )
    baseline_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=Model),
        model_blessing=Channel(type=ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=model.eval_config(),
        # TFMA's extractors, less the features no slice needs (its speed).
        module_path=lean_evaluation.__name__,
    )
    summary = EvaluationSummary(
        evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"],
        headline_metrics=json.dumps(list(model.headline_metrics)),
    )
    infra_validator = None
    if servability_check and tf_serving_tag:
        infra_validator = cluster_infra_validator(
            model, trainer.outputs["model"], example_gen.outputs["examples"], tf_serving_tag
        )
    elif servability_check:
        infra_validator = local_serving_check(
            model, trainer.outputs["model"], example_gen.outputs["examples"]
        )
    pusher = atomic_pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"] if infra_validator else None,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=serving_model_dir
            )
        ),
    )
    return Pipeline(
        pipeline_name=model.pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            data_gate,
            transform,
            *tuning_nodes,
            trainer,
            baseline_resolver,
            evaluator,
            summary,
            *([infra_validator] if infra_validator else []),
            pusher,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
