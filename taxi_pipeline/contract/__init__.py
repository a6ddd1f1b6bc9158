"""The contracts everything else builds on: what a model provides
(`definition.ModelDefinition`), how the machinery finds models without naming
them (`catalog`), and TF Serving's model base-path layout (`base_path`).
Nothing here imports from the rest of the package."""
