# Set-up, run and test entry points; `make help` lists them.
# The environment is .venv/ at the repo root, created by uv from uv.lock.

PY := .venv/bin/python
UV := python3 -m uv

.PHONY: help setup browser prometheus native native-deps run notebook test test-fast bench clean

help:
	@echo "make setup   create .venv/ from uv.lock (installs uv with pip if missing)"
	@echo "make native build the C++ gRPC front of the local model server (build/native/)"
	@echo "make run     set up, then python local_runner.py \$$(ARGS)"
	@echo "make notebook set up, then start Jupyter (classic) on 127.0.0.1:8888 in notebooks/"
	@echo "make test    set up, then run the test suite (what CI runs)"
	@echo "make test-fast  the unit tests only (pytest -m \"not e2e\"), a few minutes"
	@echo "make bench   set up, then run the benchmarks in bench/"
	@echo "make clean   remove generated outputs (not the environment)"

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock notebooks/nbextensions/tfma_preload/main.js
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE=1 (set on these
	@# machines, as in many images) every process would otherwise spend ~20 s
	@# compiling TensorFlow's and TFX's sources on import.
	$(UV) sync --frozen --python 3.10 --compile-bytecode
	@# TFMA's widget is a classic-notebook extension: enable it, and the project's
	@# loader that makes its web components load cleanly (see its main.js), in the venv.
	.venv/bin/jupyter nbextension install notebooks/nbextensions/tfma_preload --sys-prefix --overwrite
	.venv/bin/jupyter nbextension enable tfma_preload/main --sys-prefix
	.venv/bin/jupyter nbextension enable tensorflow_model_analysis/extension --sys-prefix
	@touch $@

# Headless Chromium for the notebook browser test (Debian packages).
browser:
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

# Debian's Prometheus, which the metrics test starts to scrape the local server.
prometheus:
	@test -x /usr/bin/prometheus || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null)

# The local model server's C++ gRPC front and the serving benchmark's load
# generator, against Debian's gRPC; C++ protos come from the installed
# tensorflow-serving-api's descriptors (taxi_pipeline/serving/native/protos.py).
NATIVE := build/native
NATIVE_SRC := taxi_pipeline/serving/native
NATIVE_PROTOS := tensorflow_serving/apis/predict.proto tensorflow_serving/apis/model.proto \
  tensorflow/core/framework/tensor.proto tensorflow/core/framework/tensor_shape.proto \
  tensorflow/core/framework/types.proto tensorflow/core/framework/resource_handle.proto
CXXFLAGS := -O2 -std=c++17 -Wall -I$(NATIVE)/gen

native: $(NATIVE)/serving_front $(NATIVE)/serving_load

native-deps:
	@pkg-config --exists grpc++ protobuf && test -x /usr/bin/grpc_cpp_plugin || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	   g++ pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc >/dev/null)

$(NATIVE)/gen/.stamp: $(NATIVE_SRC)/protos.py uv.lock | setup native-deps
	rm -rf $(NATIVE)/gen && mkdir -p $(NATIVE)/gen
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m taxi_pipeline.serving.native.protos $(NATIVE)/gen/api.pb >/dev/null
	protoc --descriptor_set_in=$(NATIVE)/gen/api.pb --cpp_out=$(NATIVE)/gen $(NATIVE_PROTOS)
	@touch $@

# The front runs SavedModels through TensorFlow's C API: headers from the
# installed wheel, after the system's (its absl and protobuf headers are not
# the ones Debian's gRPC was built with); its library is loaded at run time.
TF_INCLUDE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tensorflow/include

FRONT_SRC := front.cc batching.cc control.cc flags.cc saved_model.cc
$(NATIVE)/serving_front: $(addprefix $(NATIVE_SRC)/,$(FRONT_SRC) batching.h control.h flags.h saved_model.h tallies.h) $(NATIVE)/gen/.stamp
	g++ $(CXXFLAGS) -idirafter $(TF_INCLUDE) -o $@ $(addprefix $(NATIVE_SRC)/,$(FRONT_SRC)) \
	  $(addprefix $(NATIVE)/gen/,$(NATIVE_PROTOS:.proto=.pb.cc)) \
	  $$(pkg-config --cflags --libs grpc++ protobuf) -ldl -lpthread

$(NATIVE)/serving_load: bench/serving_load.cc | native-deps
	mkdir -p $(NATIVE)
	g++ $(CXXFLAGS) -o $@ $< $$(pkg-config --cflags --libs grpc++) -lpthread

run: setup
	$(PY) local_runner.py $(ARGS)

notebook: setup
	TF_USE_LEGACY_KERAS=1 .venv/bin/jupyter notebook --ip=127.0.0.1 --port=8888 --no-browser \
	  --allow-root --NotebookApp.show_banner=False --notebook-dir=notebooks

test: setup browser native prometheus
	$(PY) -m pytest $(ARGS)

# The unit tests alone (no whole-pipeline runs): a few minutes, for the edit loop.
test-fast: setup native prometheus
	$(PY) -m pytest -m "not e2e" $(ARGS)

bench: setup native
	$(PY) bench/taxi_vs_reference.py

clean:
	rm -rf outputs build
