# Pipeline image for Kubeflow Pipelines: the TFX 1.16.0 base image plus this package.
#   docker build -t REGISTRY/tfx-pipelines:1.16.0 . && docker push REGISTRY/tfx-pipelines:1.16.0
FROM tensorflow/tfx:1.16.0

# TFX 1.16 and TFMA 0.47 need Keras 2: tf.keras must be tf_keras in every container.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONPATH=/pipeline

WORKDIR /pipeline
COPY taxi_pipeline/ taxi_pipeline/
COPY models/ models/
COPY data/ data/
COPY local_runner.py kubeflow_runner.py ./
