"""Readers of what pipelines recorded: runs and artifacts in ML Metadata
(`metadata`), TFMA evaluations (`tfma_results`), pushed versions and their
lineage (`lineage`), the newest run's outcome (`summary`), and how their
numbers are printed (`figures`)."""
