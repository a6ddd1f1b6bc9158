"""A local model server speaking TF Serving's public API, and its client.

Production serves pushed models with TF Serving itself (`deploy/`, README);
this server stands in where no `tensorflow_model_server` binary is available:
same flags, same gRPC services (PredictionService, ModelService) and REST
routes, same model base-path layout (`<base_path>/<version>/`).

`__main__` is the command line, `server.py` the gRPC and REST servers over
`versions.py`'s ModelManager, `config.py` the model config files, `front.py`
the C++ gRPC front (`native/`), `client.py` the gRPC client (model-specific
requests live with each model, `models/<name>/client.py`).
"""
