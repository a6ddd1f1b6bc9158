"""The package's layers, as import-linter checks them (pyproject.toml's
contracts): the models above the machinery, and the machinery's layers
pointing down only. A module that imports upward fails here, naming the
import."""

import os
import subprocess
import sys

from tests.conftest import REPO


def test_imports_only_point_down():
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout
