"""Runs tasks of a compiled KFP pipeline package on this machine, no cluster.

Each task runs the container command and arguments exactly as the package
states them, with `{{$}}` filled by an ExecutorInput built the way KFP's
launcher builds it (parameters, input artifacts from upstream tasks, output
artifact URIs under the pipeline root, the executor output file), and with
`python` meaning this interpreter. It proves a package runs as compiled.

    python -m taxi_pipeline.kubeflow.local_tasks PACKAGE.yaml --pipeline_root DIR --until SchemaGen

Resolver tasks are not run: KFP resolves them against the cluster's ML
Metadata, which has no local stand-in here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Dict, List, Optional

import yaml

PLACEHOLDER = "{{$}}"


class TaskError(RuntimeError):
    """A task cannot run locally or failed."""


def _order(tasks: Dict[str, dict]) -> List[str]:
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for upstream in tasks[name].get("dependentTasks", []):
            visit(upstream)
        order.append(name)

    for name in sorted(tasks):
        visit(name)
    return order


def _ancestors(tasks: Dict[str, dict], name: str) -> set:
    found = {name}
    for upstream in tasks[name].get("dependentTasks", []):
        found |= _ancestors(tasks, upstream)
    return found


def _run(command: List[str], task: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise TaskError(f"task {task} failed (exit {done.returncode}):\n{tail}")


def run_package(path: str, pipeline_root: str, until: Optional[str] = None) -> Dict[str, dict]:
    """Runs the package's tasks (those `until` needs, or all) in dependency order.

    Returns {task: {output key: artifact dict}} with each artifact's final URI
    and metadata as its executor reported them.
    """
    with open(path) as f:
        spec = yaml.safe_load(f)
    tasks = spec["root"]["dag"]["tasks"]
    wanted = _ancestors(tasks, until) if until else set(tasks)
    produced: Dict[str, dict] = {}
    for name in (n for n in _order(tasks) if n in wanted):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "container" not in executor:
            raise TaskError(
                f"task {name} is a {next(iter(executor))} step, which KFP resolves against the "
                "cluster's ML Metadata; it cannot run locally"
            )
        inputs = task.get("inputs", {})
        artifacts = {}
        for key, source in inputs.get("artifacts", {}).items():
            upstream = source["taskOutputArtifact"]
            artifacts[key] = {"artifacts": [produced[upstream["producerTask"]][upstream["outputArtifactKey"]]]}
        task_root = os.path.join(pipeline_root, name)
        outputs = {
            key: {
                "name": f"{name}-{key}",
                "type": definition["artifactType"],
                "uri": os.path.join(task_root, key),
                "metadata": {},
            }
            for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()
        }
        output_file = os.path.join(task_root, "executor_output.json")
        os.makedirs(task_root, exist_ok=True)
        executor_input = json.dumps(
            {
                "inputs": {
                    "parameters": {k: v["runtimeValue"]["constantValue"] for k, v in inputs.get("parameters", {}).items()},
                    "artifacts": artifacts,
                },
                "outputs": {
                    "artifacts": {k: {"artifacts": [a]} for k, a in outputs.items()},
                    "outputFile": output_file,
                },
            }
        )
        container = executor["container"]
        steps = [container.get("lifecycle", {}).get("preCacheCheck"), container]
        for step in filter(None, steps):
            command = [sys.executable if c == "python" else c for c in step["command"]]
            _run(command + [executor_input if a == PLACEHOLDER else a for a in step.get("args", [])], name)
        if os.path.exists(output_file):
            with open(output_file) as f:
                reported = json.load(f).get("artifacts", {})
            for key, artifact in outputs.items():
                for update in reported.get(key, {}).get("artifacts", [])[:1]:
                    artifact["uri"] = update.get("uri", artifact["uri"])
                    artifact["metadata"].update(update.get("metadata", {}))
        produced[name] = outputs
    return produced


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("package")
    p.add_argument("--pipeline_root", required=True, help="local folder for the tasks' artifacts")
    p.add_argument("--until", help="run only this task and what it depends on")
    args = p.parse_args()
    try:
        produced = run_package(args.package, os.path.abspath(args.pipeline_root), args.until)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    for task, outputs in produced.items():
        for key, artifact in outputs.items():
            print(f"{task}.{key}: {artifact['uri']}")


if __name__ == "__main__":
    main()
