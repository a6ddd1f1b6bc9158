"""Pipeline construction and runner flags, for every model."""

import pytest

import models
from taxi_pipeline.runs import runner_flags
from taxi_pipeline.pipeline.factory import create_pipeline

STAGES = {
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "EvaluationSummary",
    "InfraValidator",
    "Pusher",
}


def _build(name, tmp_path, **kwargs):
    model = models.get(name)
    return model, create_pipeline(
        model,
        pipeline_root=str(tmp_path / "root"),
        data_root=model.default_data,
        serving_model_dir=str(tmp_path / "serving" / model.serving_name),
        **kwargs,
    )


@pytest.mark.parametrize("name", models.available())
def test_every_stage_in_dependency_order(name, tmp_path):
    _, pipeline = _build(name, tmp_path)
    ids = [c.id for c in pipeline.components]
    assert ids[0].endswith("ExampleGen")
    assert set(ids[1:]) == STAGES
    for position, component in enumerate(pipeline.components):
        assert all(ids.index(u.id) < position for u in component.upstream_nodes)
    by_id = {c.id: c for c in pipeline.components}
    # Nothing trains before the data passed the gate.
    assert by_id["DataGate"] in by_id["Transform"].upstream_nodes
    assert by_id["ExampleValidator"] in by_id["DataGate"].upstream_nodes
    assert by_id["Evaluator"] in by_id["Pusher"].upstream_nodes
    # The Pusher also needs the servability check's blessing: locally, the local server's loader.
    assert by_id["InfraValidator"] in by_id["Pusher"].upstream_nodes
    assert type(by_id["InfraValidator"]).__name__ == "LocalServingCheck"
    _, unchecked = _build(name, tmp_path, servability_check=False)
    assert "InfraValidator" not in {c.id for c in unchecked.components}


@pytest.mark.parametrize("name", models.available())
def test_settings_reach_the_components(name, tmp_path):
    model, pipeline = _build(name, tmp_path, train_steps=7, eval_steps=3, beam_pipeline_args=["--x=1"])
    by_id = {c.id: c for c in pipeline.components}
    trainer = by_id["Trainer"].exec_properties
    assert '"num_steps": 7' in trainer["train_args"]
    assert '"num_steps": 3' in trainer["eval_args"]
    assert trainer["run_fn"] == model.run_fn
    assert by_id["Transform"].exec_properties["preprocessing_fn"] == model.preprocessing_fn
    assert pipeline.beam_pipeline_args == ["--x=1"]
    push = by_id["Pusher"].exec_properties["push_destination"]
    assert str(tmp_path / "serving" / model.serving_name) in push


@pytest.mark.parametrize("name", models.available())
def test_blessing_needs_a_threshold_and_a_baseline_comparison(name):
    config = models.get(name).eval_config()
    thresholds = [
        t.threshold
        for spec in config.metrics_specs
        for metric in spec.metrics
        for t in metric.per_slice_thresholds
    ]
    assert any(t.HasField("value_threshold") for t in thresholds)
    assert any(t.HasField("change_threshold") for t in thresholds)
    assert len(config.slicing_specs) > 1, "overall plus at least one slice"


def test_code_version_follows_the_model_sources(tmp_path):
    import dataclasses
    import shutil

    model = models.get("taxi")
    copy = tmp_path / "pkg"
    shutil.copytree(model.package_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    clone = dataclasses.replace(model, package_dir=str(copy))
    assert clone.code_version() == model.code_version(), "the same sources anywhere: the same version"
    (copy / "notes.txt").write_text("not code")
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "stale.py").write_text("x = 1\n")
    assert clone.code_version() == model.code_version(), "only Python sources outside caches count"
    (copy / "model.py").write_text((copy / "model.py").read_text() + "\n# an edit\n")
    assert clone.code_version() != model.code_version()


def test_code_version_follows_the_shared_modeling_code(tmp_path, monkeypatch):
    import shutil

    from taxi_pipeline.contract import definition

    model = models.get("taxi")
    shared = tmp_path / "modeling"
    shutil.copytree(definition.SHARED_CODE_DIR, shared, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(definition, "SHARED_CODE_DIR", str(shared))
    before = model.code_version()
    (shared / "training.py").write_text((shared / "training.py").read_text() + "\n# an edit\n")
    assert model.code_version() != before, "an edit to the run_fn's shared helpers invalidates the cache"


def test_flags_split_beam_args_and_reject_bad_input(capsys):
    flags = runner_flags.parser("test", "/tmp/out")
    args, beam = runner_flags.parse(
        flags, ["--pipeline", "taxi", "--train_steps", "5", "--", "--runner=DataflowRunner", "--x"]
    )
    assert (args.pipeline, args.train_steps, beam) == ("taxi", 5, ["--runner=DataflowRunner", "--x"])
    for bad in (["--pipeline", "nope"], ["--train_steps", "0"], ["--pipeline", "all", "--data", "d"]):
        with pytest.raises(SystemExit):
            runner_flags.parse(flags, bad)
    assert "--data" in capsys.readouterr().err


def test_big_local_input_runs_a_beam_worker_per_core_unless_beam_args_say_otherwise():
    big, small = runner_flags.MULTI_PROCESSING_FROM_BYTES, runner_flags.MULTI_PROCESSING_FROM_BYTES - 1
    assert runner_flags.local_beam_args([], big) == ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    assert runner_flags.local_beam_args([], small) == []
    assert runner_flags.local_beam_args(["--runner=DataflowRunner"], big) == ["--runner=DataflowRunner"]


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown model 'nope'; known models: "):
        models.get("nope")


_FLINK = ["--runner=FlinkRunner", "--flink_master=HOST:8081", "--environment_type=LOOPBACK"]


@pytest.mark.parametrize("name", models.available())
def test_beam_args_reach_every_beam_component_of_the_compiled_local_pipeline(name, tmp_path):
    """As LocalDagRunner runs it: the IR's executor specs, one per Beam component."""
    from tfx.dsl.compiler.compiler import Compiler
    from tfx.dsl.components.base.base_beam_component import BaseBeamComponent
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    _, pipeline = _build(name, tmp_path, beam_pipeline_args=_FLINK, tuning="search")
    beam_components = {c.id for c in pipeline.components if isinstance(c, BaseBeamComponent)}
    assert {"StatisticsGen", "Transform", "Evaluator"} <= beam_components and any("ExampleGen" in c for c in beam_components)
    config = pipeline_pb2.IntermediateDeploymentConfig()
    Compiler().compile(pipeline).deployment_config.Unpack(config)
    for node in beam_components:
        spec = executable_spec_pb2.BeamExecutableSpec()
        config.executor_specs[node].Unpack(spec)
        assert list(spec.beam_pipeline_args) == _FLINK, node
