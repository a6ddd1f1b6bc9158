"""What every model under `models/` builds on: its raw tf.Example contract,
parsed in serving graphs and built by clients (`examples`), saving its serving
signatures from a run_fn (`training`), the Tuner's search over its own space
(`tuning`), the TFMA blessing thresholds and custom-metric computations of its
eval config (`blessing`), a binary classifier's metrics in one TFMA pass
(`binary_metrics`) and TFMA's extractors without unused features or
per-example slicing (`lean_evaluation`)."""
