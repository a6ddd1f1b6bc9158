"""A pipeline run from the outside: the flags both runners share
(`runner_flags`), where a local run writes (`layout`), a local run a person
can watch (`watched_run`: its run id, `progress` lines per component, what
each produced in `component_results`, the logs in a file by `run_log`), the
run in MLflow (`mlflow_log`), credentials masked in all it records
(`secrets`); `beam_overhead` takes two fixed costs out of the
in-process Beam a local run uses."""
