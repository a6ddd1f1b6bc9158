"""A pipeline run from the outside: the flags both runners share
(`runner_flags`), where a local run writes (`layout`), and what a run produced,
read back from ML Metadata (`results`)."""
