"""TF Serving's model config file (`--model_config_file`), written and read."""

import re
from typing import Dict, Mapping

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
