"""A run killed with SIGKILL in the middle of a stage: the re-run completes,
takes the stages that had finished from the cache, redoes the killed one,
and the killed run pushed nothing."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tests.conftest import REPO, run_local_runner

pytestmark = pytest.mark.e2e
_ARGS = ("--train_steps", "20", "--eval_steps", "2")
_FINISHED = re.compile(r"^✓ (\S+)\s+(ran|cached)\s")


def _kill_during(stage: str, output_dir: str, data: str) -> str:
    """Starts a run, SIGKILLs its whole process group two seconds into
    `stage`; returns the killed run's id."""
    run = subprocess.Popen([sys.executable, os.path.join(REPO, "local_runner.py"), "--output_dir", output_dir,
                            "--data", data, *_ARGS], cwd=REPO, stdout=subprocess.PIPE, text=True,
                           start_new_session=True)
    logs = os.path.join(output_dir, "logs")
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and run.poll() is None:
            texts = [open(os.path.join(logs, f)).read() for f in os.listdir(logs)] if os.path.isdir(logs) else []
            if any(f"Component {stage} is running." in t for t in texts):
                time.sleep(2)
                break
            time.sleep(0.5)
        assert run.poll() is None, f"the run ended before {stage}"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    (run_id,) = re.findall(r"^chicago-taxi: run (\S+)$", run.stdout.read(), re.M)
    return run_id


@pytest.mark.parametrize("stage, before", [
    ("Transform", ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate"]),
    ("Trainer", ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate", "Transform"]),
])
def test_a_rerun_after_sigkill_resumes_from_the_cache(tmp_path, taxi_slice_dir, stage, before):
    output_dir = str(tmp_path / "out")
    killed = _kill_during(stage, output_dir, taxi_slice_dir)
    serving = os.path.join(output_dir, "serving_model", "chicago_taxi")
    assert not os.path.exists(serving), "the killed run pushed nothing"

    rerun = run_local_runner(output_dir, "--data", taxi_slice_dir, *_ARGS)
    states = {m.group(1): m.group(2) for m in map(_FINISHED.match, rerun.stdout.splitlines()) if m}
    assert {name: states[name] for name in before} == {name: "cached" for name in before}
    assert states[stage] == "ran" and states["Pusher"] == "ran"
    (pushed,) = re.findall(r"pushed version (\d+)", rerun.stdout)
    assert os.listdir(serving) == [pushed]

    # ML Metadata: the killed execution never completed, and nothing it wrote is live.
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(output_dir, "metadata.db")
    store = metadata_store.MetadataStore(config)
    node = store.get_context_by_type_and_name("node", f"chicago-taxi.{stage}")
    run = store.get_context_by_type_and_name("pipeline_run", killed)
    (execution,) = [e for e in store.get_executions_by_context(node.id)
                    if e.id in {x.id for x in store.get_executions_by_context(run.id)}]
    assert execution.last_known_state == metadata_store_pb2.Execution.RUNNING
    written = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
               if e.type == metadata_store_pb2.Event.PENDING_OUTPUT or e.type == metadata_store_pb2.Event.OUTPUT]
    assert all(a.state != metadata_store_pb2.Artifact.LIVE for a in store.get_artifacts_by_id(written))
