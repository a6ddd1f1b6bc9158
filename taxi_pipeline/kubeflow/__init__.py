"""Kubeflow Pipelines: TFX's InfraValidator in a form KubeflowV2DagRunner
compiles (`infra_validator`), and a runner for the tasks of a compiled package
on this machine, no cluster needed (`local_tasks`). `kubeflow_runner.py`
compiles the packages."""
