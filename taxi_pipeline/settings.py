"""Pipeline-wide settings: the one place for defaults every model shares.

Per-model settings (features, hyper-parameters, data paths) live in the
model's own folder under `models/`. Nothing here imports TensorFlow.
"""

import os

# The repository checkout: embedded data and default output folders live in it.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where `local_runner.py` writes, and where the notebooks look, by default.
DEFAULT_OUTPUT_DIR = os.path.join(REPO_ROOT, "outputs")

# Kubeflow Pipelines: where compiled packages go, the image their tasks run,
# the pipeline root on the cluster, and where the Dockerfile puts this repository.
KFP_OUTPUT_DIR = os.path.join(DEFAULT_OUTPUT_DIR, "kubeflow")
KFP_IMAGE = "tfx-pipelines:1.16.0"
KFP_PIPELINE_ROOT = "minio://mlpipeline/tfx"
IMAGE_WORKDIR = "/pipeline"

# TF Serving release matching TensorFlow 2.16, which trains and exports the models.
TF_SERVING_TAG = "2.16.1"
# Where the tensorflow/serving image expects models (docker run -v DIR:/models).
CONTAINER_MODELS_ROOT = "/models"
# The largest gRPC message or REST body the local model server takes (TF Serving's limit is larger;
# 64 MiB covers thousands of examples and keeps a hostile request from costing gigabytes).
MAX_MESSAGE_BYTES = 64 << 20

# InfraValidator: stored eval examples sent to the candidate model, and how long
# TF Serving on the cluster may take to load it.
INFRA_VALIDATION_EXAMPLES = 3
INFRA_VALIDATION_LOAD_SECONDS = 600
