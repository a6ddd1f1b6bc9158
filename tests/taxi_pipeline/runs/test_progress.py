"""What a person sees running `python local_runner.py`: one line per component
in the order ML Metadata recorded them, ran or cached, with the figures of its
outputs; the logs in a file whose path is printed; a failure named, not a
stack trace."""

import logging
import os
import re

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tests.conftest import TAXI_SLICE_ROWS, run_local_runner
from taxi_pipeline.runs.progress import ComponentWatcher, Outcome, PlainDisplay

# "✓ Trainer   ran   12.3 s  150 steps, ..." (the figures after two spaces)
_FINISHED = re.compile(r"^([✓✗]) (\S+)\s+(ran|cached|failed)\s+(\d+\.\d) s(?:  (.*))?$")
# What absl, TensorFlow's C++ logging and Python's warnings print.
_LOG_LINE = re.compile(r"^(INFO|WARNING|ERROR):|^[IWEF]\d{4} |^\d{4}-\d\d-\d\d [\d:.]+: [IWEF] |Warning: ")


def _finished(stdout: str):
    return [m.groups() for m in map(_FINISHED.match, stdout.splitlines()) if m]


def _log_path(text: str) -> str:
    (path,) = re.findall(r"full log: (\S+)", text)
    assert os.path.isfile(path), path
    return path


def _recorded(cli_run):
    """(node id, ML Metadata state) of each execution of the run the output
    names on its first line (`<pipeline>: run <run id>`), in order."""
    (run_id,) = re.findall(r"^chicago-taxi: run (\S+)$", cli_run.stdout, re.M)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(cli_run.output_dir, "metadata.db")
    store = metadata_store.MetadataStore(config)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    node_of = {
        e.id: node.name.split(".", 1)[1]
        for node in store.get_contexts_by_type("node")
        for e in store.get_executions_by_context(node.id)
    }
    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    return [(node_of[e.id], metadata_store_pb2.Execution.State.Name(e.last_known_state)) for e in executions]


def test_each_component_gets_a_line_in_run_order_with_its_figures(taxi_cli_run, taxi_run):
    lines = _finished(taxi_cli_run.stdout)
    recorded = _recorded(taxi_cli_run)
    assert [(name, state) for _, name, state, _, _ in lines] == [(n, "ran") for n, _ in recorded]
    assert {state for _, state in recorded} == {"COMPLETE"}
    result = {name: figures or "" for _, name, _, _, figures in lines}
    rows = [int(n.replace(",", "")) for n in re.findall(r"(?:train|eval) ([\d,]+) rows", result["StatisticsGen"])]
    assert sum(rows) == TAXI_SLICE_ROWS
    assert result["Trainer"].startswith("150 steps, loss ")
    assert result["Evaluator"].startswith("BLESSED; auc ")
    assert re.search(r"auc (\d\.\d{4})", result["Evaluator"]).group(1) == f"{taxi_run[1].metrics['auc']:.4f}"
    (version,) = re.findall(r"pushed version (\d+)", result["Pusher"])
    assert os.path.isdir(os.path.join(taxi_cli_run.output_dir, "serving_model", "chicago_taxi", version))
    # The terminal gets progress, not logs; the logs are in the file.
    assert not [line for line in taxi_cli_run.stdout.splitlines() if _LOG_LINE.search(line)]
    assert taxi_cli_run.stderr.strip() == ""
    with open(_log_path(taxi_cli_run.stdout)) as f:
        log = f.read()
    assert "Component Trainer is running." in log and "Trainer: step 150 of 150" in log


def test_a_rerun_says_which_components_came_from_the_cache(taxi_cli_rerun):
    lines = _finished(taxi_cli_rerun.stdout)
    recorded = _recorded(taxi_cli_rerun)
    shown = {"CACHED": "cached", "COMPLETE": "ran"}
    assert [(name, state) for _, name, state, _, _ in lines] == [(n, shown[s]) for n, s in recorded]
    states = {name: state for _, name, state, _, _ in lines}
    for stage in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer"):
        assert states[stage] == "cached", (stage, states)
    cached = {name: figures for _, name, state, _, figures in lines if state == "cached"}
    assert cached["Trainer"].startswith("150 steps"), "a cached component still shows its figures"


def _ragged_csv(tmp_path, taxi_frame) -> str:
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text(taxi_frame.head(100).to_csv(index=False) + "1,2,3\n")
    return str(data)


def test_a_failing_run_names_the_component_the_error_and_the_log(tmp_path, taxi_frame):
    run = run_local_runner(str(tmp_path / "out"), "--data", _ragged_csv(tmp_path, taxi_frame), check=False)
    assert run.returncode == 1
    assert [(name, state) for _, name, state, _, _ in _finished(run.stdout)] == [("CsvExampleGen", "failed")]
    assert "error: chicago-taxi: CsvExampleGen failed: ValueError: " in run.stderr
    assert "data.csv: CSV parse error: Expected 18 columns, got 3" in run.stderr
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    with open(_log_path(run.stderr)) as f:
        log = f.read()
    assert "Traceback (most recent call last)" in log and "CSV parse error: Expected 18 columns, got 3" in log


def test_verbose_shows_the_logs_and_still_keeps_them(tmp_path, taxi_frame):
    run = run_local_runner(str(tmp_path / "out"), "--verbose", "--data", _ragged_csv(tmp_path, taxi_frame), check=False)
    assert run.returncode == 1
    assert "Component CsvExampleGen is running." in run.stderr
    with open(_log_path(run.stderr)) as f:
        assert "Component CsvExampleGen is running." in f.read()


class _Lines:
    """A stream that is not a terminal."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return False


def test_watcher_turns_tfx_and_trainer_records_into_lines():
    """The records LocalDagRunner and the Trainer's callback log, through the logging module."""
    from absl import logging as absl_logging

    from taxi_pipeline.modeling.training import PROGRESS_LOGGER

    out = _Lines()
    asked = []
    watcher = ComponentWatcher(PlainDisplay(out), lambda node: asked.append(node) or Outcome("cached", "7 features"),
                               details={"Gen": "reading 1.0 MiB"})
    root = logging.getLogger()
    root.addHandler(watcher)
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        absl_logging.info("Component %s is running.", "Gen")
        absl_logging.info("Component %s is finished.", "Gen")
        absl_logging.info("Component %s is running.", "Trainer")
        for step in range(1, 9):
            PROGRESS_LOGGER.info("Trainer: step %d of %d", step, 8, extra={"progress": (step, 8)})
        assert watcher.failed() == "Trainer"
    finally:
        root.removeHandler(watcher)
        absl_logging.set_verbosity(verbosity)
    lines = out.text.splitlines()
    assert lines[0] == "  Gen running (reading 1.0 MiB)"
    assert _FINISHED.match(lines[1]).groups()[1:3] == ("Gen", "cached") and lines[1].endswith("  7 features")
    assert lines[3:6] == ["  Trainer: step 2 of 8", "  Trainer: step 4 of 8", "  Trainer: step 6 of 8"]
    assert _FINISHED.match(lines[6]).groups()[1:3] == ("Trainer", "failed")
    assert asked == ["Gen"]


_SERVER_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) ")


def test_the_server_shows_its_own_lines_and_keeps_the_full_log(taxi_run, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    output_dir, summary = taxi_run
    base = os.path.dirname(summary.pushed_model)
    server = subprocess.Popen(
        [sys.executable, "-m", "taxi_pipeline.serving", "--model_name", "chicago_taxi", "--model_base_path", base,
         "--port", "0", "--rest_api_port", "0", "--native_front", "off", "--log_dir", str(tmp_path / "logs")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        for line in server.stderr:
            lines.append(line.rstrip("\n"))
            if " serving chicago_taxi: gRPC on " in line:
                break
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert lines and all(_SERVER_LINE.match(line) for line in lines), lines
    versions = sorted(os.listdir(base))
    assert [line.split(" INFO ")[1] for line in lines if "available" in line] == [
        f"model chicago_taxi: version {v} available" for v in versions[-1:]
    ]
    with open(_log_path("\n".join(lines))) as f:
        log = f.read()
    shown = set(lines)
    assert shown <= set(log.splitlines())
    assert [line for line in log.splitlines() if line not in shown], "the log keeps what the terminal was spared"


_CAPTURE = """
import logging, os, subprocess, sys
from taxi_pipeline.runs.run_log import RunLog

with RunLog(verbose={verbose}) as log:
    for name in ("first", "second"):
        log.write_to(os.path.join({folder!r}, name + ".log"))
        print("print", name)
        logging.getLogger("lib").warning("record %s", name)
        os.write(2, b"fd2 " + name.encode() + b"\\n")
        subprocess.run(["sh", "-c", "echo child " + name + " >&2"], check=True)
        log.terminal.write("display " + name + "\\n")
print("after")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_run_log_takes_python_c_and_child_output_file_by_file(tmp_path, verbose):
    import subprocess
    import sys

    from tests.conftest import REPO

    result = subprocess.run([sys.executable, "-c", _CAPTURE.format(verbose=verbose, folder=str(tmp_path))],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "display first\ndisplay second\nafter\n"
    for name in ("first", "second"):
        written = (tmp_path / f"{name}.log").read_text().splitlines()
        assert sorted(written) == sorted([f"print {name}", f"WARNING:lib:record {name}", f"fd2 {name}", f"child {name}"])
    shown = result.stderr.splitlines()
    assert sorted(shown) == (sorted(
        line for name in ("first", "second") for line in (tmp_path / f"{name}.log").read_text().splitlines()
    ) if verbose else [])


_HOLDER = """
import sys, time
from taxi_pipeline.runs.layout import OutputLayout
with OutputLayout(sys.argv[1]).exclusive("local_runner run 2026-01-01T00:00:00"):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_second_run_on_the_same_output_dir_stops_naming_the_first(tmp_path, taxi_slice_dir):
    import signal
    import subprocess
    import sys

    import local_runner
    from taxi_pipeline.runs.layout import OutputInUse, OutputLayout
    from tests.conftest import REPO

    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        with pytest.raises(OutputInUse, match=rf'{tmp_path} is in use by .*"run": "local_runner run 2026-01-01T00:00:00", "pid": {holder.pid}'):
            local_runner.run(["--data", taxi_slice_dir, "--output_dir", str(tmp_path)])
        assert not (tmp_path / "metadata.db").exists() and not (tmp_path / "logs").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with OutputLayout(str(tmp_path)).exclusive("after a SIGKILL"):  # no stale lock left behind
        pass


def test_live_display_redraws_the_running_component_on_a_terminal():
    import io

    from taxi_pipeline.runs.progress import LiveDisplay, display_for

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    display = display_for(out)
    assert isinstance(display, LiveDisplay) and not isinstance(display_for(_Lines()), LiveDisplay)
    display.started("Tuner")
    display.progress("Tuner", 5, 20, "Tuner trial 2 of 3: step 5 of 20, loss 0.5")
    display._progress.refresh()
    display.started("Trainer")
    display.progress("Trainer", 5, 20, "Trainer: step 5 of 20, loss 0.4")
    display._progress.refresh()
    display.finished("Trainer", Outcome("ran", "20 steps"), 3.0)
    display.close()
    text = out.getvalue()
    assert "\x1b[" in text, "drawn with terminal control sequences"
    assert "Tuner trial 2 of 3: step 5 of 20" in text, "a trial keeps its label"
    assert "step 5 of 20, loss 0.4" in text and "Trainer: step" not in text
    assert "✓ Trainer" in text and "20 steps" in text
