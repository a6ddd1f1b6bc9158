"""The shared machinery every model under `models/` runs through.

    settings.py   pipeline-wide defaults (one place)
    pipeline/     the TFX pipeline factory and its custom components
    modeling/     what models build on: tf.Example contract, signatures, TFMA thresholds
    runs/         runner flags, output layout, run results from ML Metadata
    kubeflow/     Kubeflow-only pieces: cluster InfraValidator, local task runner
    serving/      the TF Serving-API model server, its C++ front and the gRPC client
    explore/      what the notebooks import to show TFDV and TFMA results

TFX 1.16 and TFMA 0.47 are written against Keras 2, while TensorFlow 2.16's
`tf.keras` is Keras 3. `tf_keras` is selected here, before anything imports
TensorFlow, so every entry point that imports this package gets Keras 2.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
