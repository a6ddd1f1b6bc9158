"""Benchmark: how long a process of this project takes to start.

Each command runs in a fresh process, three times; the median wall time is
printed: importing TensorFlow, importing the pipeline factory (TFX, TFMA),
and `--help` of both runners (target: under 3 s; they load no TensorFlow).
With the bytecode `make setup` compiles, imports skip compiling sources even
where PYTHONDONTWRITEBYTECODE=1 is set.

    .venv/bin/python bench/startup.py
"""

import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {
    "import tensorflow": [sys.executable, "-c", "import taxi_pipeline, tensorflow"],
    "import the pipeline factory (TFX, TFMA)": [sys.executable, "-c", "import taxi_pipeline.pipeline.factory"],
    "local_runner.py --help": [sys.executable, "local_runner.py", "--help"],
    "kubeflow_runner.py --help": [sys.executable, "kubeflow_runner.py", "--help"],
}


def _seconds(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - start


def main() -> None:
    print(f"{'command':<42} {'median s':>9}  (3 runs)")
    for name, command in COMMANDS.items():
        median = statistics.median(_seconds(command) for _ in range(3))
        target = "  (target < 3 s)" if "--help" in name else ""
        print(f"{name:<42} {median:9.2f}{target}")


if __name__ == "__main__":
    main()
