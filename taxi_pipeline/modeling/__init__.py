"""What every model under `models/` builds on: its raw tf.Example contract,
parsed in serving graphs and built by clients (`examples`), saving its serving
signatures from a run_fn (`training`), the Tuner's search over its own space
(`tuning`), and the TFMA blessing thresholds of its eval config (`blessing`)."""
