# Set-up, run and test entry points; `make help` lists them.
# The environment is .venv/ at the repo root, created by uv from uv.lock.

PY := .venv/bin/python
UV := python3 -m uv

.PHONY: help setup run test bench clean

help:
	@echo "make setup   create .venv/ from uv.lock (installs uv with pip if missing)"
	@echo "make run     set up, then python local_runner.py \$$(ARGS)"
	@echo "make test    set up, then run the test suite (what CI runs)"
	@echo "make bench   set up, then run the benchmarks in bench/"
	@echo "make clean   remove generated outputs (not the environment)"

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --python 3.10
	@touch $@

run: setup
	$(PY) local_runner.py $(ARGS)

test: setup
	$(PY) -m pytest $(ARGS)

bench: setup
	$(PY) bench/taxi_vs_reference.py

clean:
	rm -rf outputs
