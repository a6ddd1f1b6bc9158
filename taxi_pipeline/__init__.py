"""The shared machinery every model under `models/` runs through.

In layers, each importing only from those below it (docs/layout.md):

    registry/, explore/   the model registry; what the notebooks show
    pipeline/     the TFX pipeline factory and its custom components
    kubeflow/     Kubeflow-only pieces: cluster InfraValidator, local task runner
    serving/      the TF Serving-API model server, its C++ front and the gRPC client
    runs/         what a local run does around the pipeline: flags, layout, progress, logs
    modeling/     what models build on: tf.Example contract, signatures, TFMA thresholds
    records/      readers of what pipelines recorded (ML Metadata, TFMA)
    contract/     the model contract, the model catalog, TF Serving's base-path layout
    settings.py   pipeline-wide defaults (one place)

TFX 1.16 and TFMA 0.47 are written against Keras 2, while TensorFlow 2.16's
`tf.keras` is Keras 3. `tf_keras` is selected here, before anything imports
TensorFlow, so every entry point that imports this package gets Keras 2.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
