"""kubeflow_runner.py: packages KFP accepts, with the right DAG, image and roots."""

import json
import os
import re

import kfp
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

import kubeflow_runner
import models
from taxi_pipeline import settings


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp")
    paths = kubeflow_runner.run(
        [
            "--pipeline", "all",
            "--output_dir", str(out),
            "--image", "registry.example/tfx-pipelines:7",
            "--pipeline_root", "gs://bucket/tfx",
            "--train_steps", "11",
            "--", "--runner=DataflowRunner", "--region=europe-west1",
        ]
    )
    return {os.path.splitext(os.path.basename(p))[0]: p for p in paths}


def _spec(path) -> pipeline_spec_pb2.PipelineSpec:
    with open(path) as f:
        return json_format.ParseDict(yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec())


def test_one_package_per_model(packages):
    assert set(packages) == {models.get(n).pipeline_name for n in models.available()}


@pytest.mark.parametrize("name", models.available())
def test_package_loads_in_kfp_with_the_full_dag(packages, name):
    model = models.get(name)
    path = packages[model.pipeline_name]
    component = kfp.components.load_component_from_file(path)
    assert component.name == model.pipeline_name
    spec = _spec(path)
    tasks = spec.root.dag.tasks
    for stage in ("StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert stage in tasks, stage
    assert "DataGate" in tasks["Transform"].dependent_tasks
    assert "Trainer" in tasks["Evaluator"].dependent_tasks
    assert "Evaluator" in tasks["Pusher"].dependent_tasks
    # InfraValidator loads the model in TF Serving on the cluster before the push.
    assert "Trainer" in tasks["InfraValidator"].dependent_tasks
    assert tasks["Pusher"].inputs.artifacts["infra_blessing"].task_output_artifact.producer_task == "InfraValidator"
    # The run page shows the headline metrics and a Markdown evaluation summary.
    outputs = spec.components["EvaluationSummary"].output_definitions.artifacts
    assert outputs["metrics"].artifact_type.instance_schema.startswith("title: system.Metrics")
    assert outputs["summary"].artifact_type.instance_schema.startswith("title: system.Markdown")
    assert spec.default_pipeline_root == f"gs://bucket/tfx/{model.serving_name}"


@pytest.mark.parametrize("name", models.available())
def test_image_parameters_and_beam_args_reach_the_tasks(packages, name):
    model = models.get(name)
    text = open(packages[model.pipeline_name]).read()
    spec = _spec(packages[model.pipeline_name])
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    images = {e.struct_value.fields["container"].struct_value.fields["image"].string_value for e in executors.values() if "container" in e.struct_value.fields}
    assert images == {"registry.example/tfx-pipelines:7"}
    assert "--runner=DataflowRunner" in text and "--region=europe-west1" in text
    assert '\\"num_steps\\": 11' in text or '"num_steps": 11' in text
    data = os.path.relpath(model.default_data, settings.REPO_ROOT)
    folder, name = os.path.split(f"{settings.IMAGE_WORKDIR}/{data}")
    assert f"{folder}/{name}" in text or (folder in text and name in text)
    assert f"gs://bucket/tfx/serving_model/{model.serving_name}" in text


def _parameters(task) -> dict:
    return {k: json.loads(v.runtime_value.constant_value.string_value) for k, v in task.inputs.parameters.items()}


def test_infra_validator_runs_tf_serving_on_kubernetes(packages):
    spec = _spec(packages["chicago-taxi"])
    task = spec.root.dag.tasks["InfraValidator"]
    parameters = _parameters(task)
    assert parameters["serving_spec"] == {"tensorflow_serving": {"tags": ["2.16.1"]}, "kubernetes": {}}
    assert parameters["request_spec"]["tensorflow_serving"]["signature_names"] == ["score_stored_examples"]
    executor = spec.deployment_spec.fields["executors"].struct_value.fields[
        spec.components[task.component_ref.name].executor_label
    ].struct_value.fields["container"].struct_value.fields
    args = [a.string_value for a in executor["args"].list_value.values]
    assert args[args.index("--executor_class_path") + 1] == "taxi_pipeline.kubeflow.infra_validator.ClusterExecutor"


def test_infra_validation_can_be_left_out(tmp_path):
    (path,) = kubeflow_runner.run(
        ["--pipeline", "taxi", "--output_dir", str(tmp_path), "--no_infra_validation",
         "--pipeline_root", "gs://bucket/tfx"]
    )
    tasks = _spec(path).root.dag.tasks
    assert "InfraValidator" not in tasks and "infra_blessing" not in tasks["Pusher"].inputs.artifacts
    (path,) = kubeflow_runner.run(
        ["--pipeline", "taxi", "--output_dir", str(tmp_path), "--tf_serving_tag", "2.17.0",
         "--pipeline_root", "gs://bucket/tfx"]
    )
    serving = _parameters(_spec(path).root.dag.tasks["InfraValidator"])["serving_spec"]
    assert serving["tensorflow_serving"]["tags"] == ["2.17.0"]


def test_one_line_per_package_written_and_the_logs_in_a_file(tmp_path, capfd):
    capfd.readouterr()
    paths = kubeflow_runner.run(["--pipeline", "all", "--output_dir", str(tmp_path), "--no_infra_validation"])
    out, err = capfd.readouterr()
    wrote = [line for line in out.splitlines() if line.startswith("✓ wrote ")]
    assert [line.split()[2] for line in wrote] == paths
    assert all(line.endswith(f"({len(_spec(p).root.dag.tasks)} tasks)") for line, p in zip(wrote, paths))
    assert "INFO" not in out + err and "absl" not in out + err
    (log,) = re.findall(r"full log: (\S+)", out)
    with open(log) as f:
        assert "INFO:absl" in f.read()


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--pipeline", "nope"], "invalid choice"),
        (["--upload"], "--upload needs --endpoint"),
        (["--run"], "--run needs --upload"),
    ],
)
def test_bad_flags_write_nothing(tmp_path, capsys, argv, problem):
    with pytest.raises(SystemExit):
        kubeflow_runner.run(argv + ["--output_dir", str(tmp_path / "out")])
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unusable_pipeline_root_writes_nothing(tmp_path):
    with pytest.raises(kubeflow_runner.CompileError, match="--pipeline_root 'relative/root'"):
        kubeflow_runner.run(["--pipeline_root", "relative/root", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_unreachable_endpoint_is_a_clear_error(tmp_path):
    with pytest.raises(kubeflow_runner.CompileError, match="upload to 'http://127.0.0.1:9' failed"):
        kubeflow_runner.run(
            ["--pipeline", "taxi", "--output_dir", str(tmp_path), "--upload", "--endpoint", "http://127.0.0.1:9"]
        )
    # The package itself is complete; only the upload failed.
    assert _spec(tmp_path / "chicago-taxi.yaml").pipeline_info.name == "chicago-taxi"
