"""Compiles the pipelines for Kubeflow Pipelines (KFP 2.x / Vertex AI Pipelines).

    python kubeflow_runner.py [--pipeline taxi|ner|all] [--output_dir DIR]
        [--image IMAGE] [--pipeline_root URI] [--data URI] [--serving_dir URI]
        [--tf_serving_tag TAG | --no_infra_validation]
        [--upload --endpoint URL [--experiment NAME] [--run]] [-- beam args]

Writes one pipeline package (`<pipeline>.yaml`, a KFP PipelineSpec) per model,
ready for the KFP UI's "Upload pipeline" or `kfp pipeline create`. TFX 1.16's
`KubeflowV2DagRunner` builds the spec; the package is written whole or not
at all. Nothing touches the network unless `--upload` is given.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, TextIO

import taxi_pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
import yaml
from absl import logging as absl_logging

from taxi_pipeline import settings
from taxi_pipeline.contract.definition import ModelDefinition
from taxi_pipeline.runs import layout, runner_flags
from taxi_pipeline.runs.layout import new_run_id
from taxi_pipeline.runs.run_log import RunLog

_ROOT_SCHEMES = ("gs://", "s3://", "minio://", "hdfs://", "abfs://", "/")


class CompileError(ValueError):
    """The flags cannot produce a usable pipeline package."""


def _parser():
    p = runner_flags.parser(__doc__.splitlines()[0], settings.KFP_OUTPUT_DIR)
    p.add_argument("--image", default=settings.KFP_IMAGE, help="pipeline image built from the Dockerfile (default: %(default)s)")
    p.add_argument(
        "--pipeline_root",
        default=settings.KFP_PIPELINE_ROOT,
        help="where the cluster writes artifacts, e.g. gs://B/tfx, s3://B/tfx, or MinIO "
        "inside the cluster (default: %(default)s); each pipeline gets a folder in it",
    )
    p.add_argument(
        "--serving_dir",
        help="TF Serving model base folder the Pusher writes <name>/<version>/ into "
        "(default: <pipeline_root>/serving_model)",
    )
    p.add_argument(
        "--tf_serving_tag",
        default=settings.TF_SERVING_TAG,
        help="tensorflow/serving image tag the InfraValidator loads each model in before the "
        "push (default: %(default)s); the task needs deploy/infra-validator-rbac.yaml",
    )
    p.add_argument(
        "--no_infra_validation",
        action="store_true",
        help="leave InfraValidator out (for clusters where tasks may not start pods)",
    )
    p.add_argument("--upload", action="store_true", help="upload each package with the kfp client (a new version when the pipeline exists)")
    p.add_argument("--endpoint", help="KFP API endpoint for --upload, e.g. http://localhost:8080")
    p.add_argument("--experiment", default="Default", help="experiment for --run (default: %(default)s)")
    p.add_argument("--run", action="store_true", help="with --upload: also start a run of each pipeline")
    return p


def _check_uri(flag: str, value: str) -> None:
    if not value.startswith(_ROOT_SCHEMES):
        raise CompileError(
            f"{flag} {value!r} is not a location the cluster can use: give an absolute path "
            f"or a URI starting with one of {', '.join(_ROOT_SCHEMES[:-1])}"
        )


def _cluster_data(model: ModelDefinition, data: Optional[str]) -> str:
    """The model's data as the pipeline container sees it."""
    if data:
        return data
    return os.path.join(settings.IMAGE_WORKDIR, os.path.relpath(model.default_data, settings.REPO_ROOT))


def compile_pipeline(model: ModelDefinition, args, beam_args: Sequence[str]) -> dict:
    """The KFP PipelineSpec (as a dict) of one model's pipeline."""
    # TFX loads only here: --help and flag errors answer in a second.
    from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import KubeflowV2DagRunner, KubeflowV2DagRunnerConfig

    from taxi_pipeline.pipeline.factory import create_pipeline

    root = f"{args.pipeline_root.rstrip('/')}/{model.serving_name}"
    serving = args.serving_dir or f"{args.pipeline_root.rstrip('/')}/serving_model"
    pipeline = create_pipeline(
        model,
        pipeline_root=root,
        data_root=_cluster_data(model, args.data),
        serving_model_dir=f"{serving.rstrip('/')}/{model.serving_name}",
        train_steps=args.train_steps,
        eval_steps=args.eval_steps,
        beam_pipeline_args=beam_args,
        servability_check=not args.no_infra_validation,
        tf_serving_tag=args.tf_serving_tag,
        tuning=runner_flags.tuning(args),
        tune_trials=args.tune_trials,
    )
    runner = KubeflowV2DagRunner(config=KubeflowV2DagRunnerConfig(default_image=args.image))
    job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = root
    return spec


def _upload(packages: List[str], args, out: TextIO) -> None:
    import kfp

    try:
        client = kfp.Client(host=args.endpoint)
        for path in packages:
            name = os.path.splitext(os.path.basename(path))[0]
            pipeline_id = client.get_pipeline_id(name)
            if pipeline_id:
                version = client.upload_pipeline_version(path, pipeline_version_name=f"{name}-{os.path.getmtime(path):.0f}", pipeline_id=pipeline_id)
                version_id = version.pipeline_version_id
            else:
                created = client.upload_pipeline(path, pipeline_name=name)
                pipeline_id = created.pipeline_id
                version_id = None
            print(f"uploaded {name} to {args.endpoint}", file=out)
            if args.run:
                experiment = client.create_experiment(args.experiment)
                run = client.run_pipeline(
                    experiment_id=experiment.experiment_id,
                    job_name=f"{name}-run",
                    pipeline_id=pipeline_id,
                    version_id=version_id,
                )
                print(f"started run {run.run_id} of {name}", file=out)
    except Exception as e:  # the kfp client raises many types for a bad endpoint
        raise CompileError(f"upload to {args.endpoint!r} failed: {type(e).__name__}: {e}") from e


def run(argv: Optional[Sequence[str]] = None, quiet_exit: bool = False) -> List[str]:
    """Compiles the selected pipelines; returns the package paths."""
    flags = _parser()
    args, beam_args = runner_flags.parse(flags, argv)
    if args.run and not args.upload:
        flags.error("--run needs --upload")
    if args.upload and not args.endpoint:
        flags.error("--upload needs --endpoint URL (the KFP API, e.g. http://localhost:8080)")
    _check_uri("--pipeline_root", args.pipeline_root)
    if args.serving_dir:
        _check_uri("--serving_dir", args.serving_dir)
    output_dir = os.path.abspath(args.output_dir)
    with RunLog(verbose=args.verbose, quiet_exit=quiet_exit) as log:
        # TFX's and TensorFlow's start-up noise goes to the log from here on.
        log.write_to(os.path.join(output_dir, "logs", f"compile-{new_run_id()}.log"))
        absl_logging.set_verbosity(absl_logging.INFO)  # the log holds what the compiler says
        out = log.terminal
        specs = {}
        for model in runner_flags.selected_models(args):
            print(f"  compiling {model.name} ...", file=out)
            specs[model.pipeline_name] = compile_pipeline(model, args, beam_args)
        packages = []
        for name, spec in specs.items():
            path = os.path.join(output_dir, f"{name}.yaml")
            layout.write_atomically(path, yaml.safe_dump(spec, sort_keys=False))
            packages.append(path)
            print(f"✓ wrote {path} ({len(spec['root']['dag']['tasks'])} tasks)", file=out)
        if args.upload:
            _upload(packages, args, out)
        else:
            print(
                "upload with the KFP UI (Pipelines > Upload pipeline), with\n"
                + "\n".join(f"  kfp pipeline create -p {os.path.splitext(os.path.basename(p))[0]} {p}" for p in packages)
                + "\nor with: python kubeflow_runner.py --upload --endpoint URL [--run]",
                file=out,
            )
        print(f"  full log: {log.path}", file=out)
    return packages


def main() -> None:
    runner_flags.exit_on((CompileError,), lambda: run(quiet_exit=True))


if __name__ == "__main__":
    main()
