"""TF Serving's model config file (`--model_config_file`), written and read."""

import os
import re
from typing import Dict, Mapping

# Where the tensorflow/serving image expects models (docker run -v DIR:/models).
CONTAINER_MODELS_ROOT = "/models"
FILE_NAME = "models.config"

_CONFIG = re.compile(r"config\s*\{(?P<body>[^{}]*)\}", re.S)
_FIELD = re.compile(r'(\w+)\s*:\s*"([^"]*)"')


def render(models: Mapping[str, str]) -> str:
    """The text-proto ModelServerConfig serving `models` ({name: base_path})."""
    configs = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{path}"\n    model_platform: "tensorflow"\n  }}\n'
        for name, path in models.items()
    )
    return f"model_config_list {{\n{configs}}}\n"


def parse(text: str) -> Dict[str, str]:
    """{name: base_path} of a text-proto ModelServerConfig; ValueError if none."""
    models = {}
    for match in _CONFIG.finditer(text):
        fields = dict(_FIELD.findall(match.group("body")))
        if "name" not in fields or "base_path" not in fields:
            raise ValueError(f"model config entry without name or base_path: {match.group(0)!r}")
        models[fields["name"]] = fields["base_path"]
    if not models:
        raise ValueError("model config file lists no model (expected model_config_list { config { ... } })")
    return models


def write_for_serving_root(serving_root: str) -> str:
    """Writes `<serving_root>/models.config` listing every model folder there,
    with base paths as the tensorflow/serving image sees them when the folder
    is mounted at /models. Returns the file's path."""
    names = sorted(
        d for d in os.listdir(serving_root)
        if os.path.isdir(os.path.join(serving_root, d)) and not d.startswith(".")
    )
    path = os.path.join(serving_root, FILE_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(render({name: f"{CONTAINER_MODELS_ROOT}/{name}" for name in names}))
    os.replace(tmp, path)
    return path


def resolve(base_path: str, config_file: str) -> str:
    """A configured base path as this machine sees it: relative paths are taken
    from the config file's folder, and a container path such as /models/ner
    that does not exist here falls back to the folder beside the config file."""
    here = os.path.dirname(os.path.abspath(config_file))
    if not os.path.isabs(base_path):
        return os.path.join(here, base_path)
    beside = os.path.join(here, os.path.basename(base_path.rstrip("/")))
    if not os.path.exists(base_path) and os.path.isdir(beside):
        return beside
    return base_path
