"""The runners answer --help and flag errors before TensorFlow or TFX load."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
_PROBE = """
import json, runpy, sys
sys.argv = {argv!r}
code = 0
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    code = e.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in ("tensorflow", "tfx", "tensorflow_model_analysis") if m in sys.modules)}}))
"""


def _probe(script: str, *args: str) -> dict:
    path = os.path.join(REPO, script)
    result = subprocess.run([sys.executable, "-c", _PROBE.format(argv=[path, *args], script=path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stdout": result.stdout, "stderr": result.stderr}


@pytest.mark.parametrize("script", ["local_runner.py", "kubeflow_runner.py"])
def test_help_loads_no_tensorflow(script):
    answer = _probe(script, "--help")
    assert answer["code"] == 0 and "--pipeline" in answer["stdout"]
    assert answer["loaded"] == []


@pytest.mark.parametrize(
    "args, message",
    [(["--pipeline", "nope"], "invalid choice: 'nope'"), (["--data", "/nowhere/at/all"], "no such file or directory")],
)
def test_flag_errors_come_before_tensorflow_loads(args, message):
    answer = _probe("local_runner.py", *args)
    assert answer["code"] == 2 and message in answer["stderr"]
    assert answer["loaded"] == []
