"""The model registry, answered from ML Metadata: every pushed version of a
model and what made it (read by `records.lineage`), and rolling back to an earlier blessed one
(`rollback`). `python -m taxi_pipeline.registry` is its command line."""
