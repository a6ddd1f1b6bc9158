"""The model registry, answered from ML Metadata: every pushed version of a
model, what made it (`lineage`), and rolling back to an earlier blessed one
(`rollback`). `python -m taxi_pipeline.registry` is its command line."""
