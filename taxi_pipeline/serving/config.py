"""TF Serving's model config file (`--model_config_file`), read and written
with TF Serving's own `ModelServerConfig` proto and protobuf's text format, and
checked by the rules tensorflow_model_server applies before it loads one."""

from __future__ import annotations

import os
from typing import List, Mapping, Sequence

from google.protobuf import text_format
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

from taxi_pipeline import settings
from taxi_pipeline.runs import layout

ModelServerConfig = model_server_config_pb2.ModelServerConfig
VersionPolicy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy

FILE_NAME = "models.config"
PLATFORM = "tensorflow"


class ConfigError(ValueError):
    """A model config TF Serving would refuse; the message names where and why."""


def build(models: Mapping[str, str]) -> ModelServerConfig:
    """The ModelServerConfig serving `models` ({name: base_path}), each with
    TF Serving's default policy (the latest version)."""
    config = ModelServerConfig()
    for name, path in models.items():
        config.model_config_list.config.add(name=name, base_path=path, model_platform=PLATFORM)
    return config


def render(config: ModelServerConfig) -> str:
    return text_format.MessageToString(config)


def parse(text: str, source: str = "model config") -> ModelServerConfig:
    """A checked ModelServerConfig from its text format; ConfigError naming
    `source` and, for syntax errors, the line and column."""
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ConfigError(f"{source}:{e}") from None
    check(config, source)
    return config


def check(config: ModelServerConfig, source: str = "model config") -> None:
    """ConfigError unless tensorflow_model_server would serve `config`."""
    if config.WhichOneof("config") != "model_config_list" or not config.model_config_list.config:
        raise ConfigError(f"{source}: lists no model (expected model_config_list {{ config {{ ... }} }})")
    names = set()
    for number, model in enumerate(config.model_config_list.config, start=1):
        where = f"{source}: model {model.name!r}" if model.name else f"{source}: config entry {number}"
        if not model.name:
            raise ConfigError(f"{where} has no name")
        if model.name in names:
            raise ConfigError(f"{source}: Illegal to list model {model.name} multiple times in config list")
        names.add(model.name)
        if not model.base_path:
            raise ConfigError(f"{where} has no base_path")
        if not model.model_platform:
            raise ConfigError(f"{where}: Illegal setting neither ModelServerConfig::model_type (deprecated) "
                              f"nor ModelServerConfig::model_platform.")
        if model.model_platform != PLATFORM:
            raise ConfigError(f"{where} requests unsupported platform {model.model_platform}")
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise ConfigError(f"{where}: model_version_policy specific {{ }} lists no versions")
        for label, version in model.version_labels.items():
            if version <= 0:
                raise ConfigError(f"{where}: version label {label!r} points at version {version}")


def read(path: str) -> ModelServerConfig:
    """The checked config in file `path`, base paths as this machine sees them."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the model config file: {e}") from None
    config = parse(text, path)
    for model in config.model_config_list.config:
        model.base_path = resolve(model.base_path, path)
    return config


def write(config: ModelServerConfig, path: str) -> None:
    """Writes `config` to `path` whole or not at all: a server polling the file
    never reads half of it."""
    check(config, path)
    layout.write_atomically(path, render(config))


def write_for_serving_root(serving_root: str) -> str:
    """Writes `<serving_root>/models.config` listing every model folder there,
    with base paths as the tensorflow/serving image sees them when the folder
    is mounted at /models. Returns the file's path."""
    names = sorted(
        d for d in os.listdir(serving_root)
        if os.path.isdir(os.path.join(serving_root, d)) and not d.startswith(".")
    )
    path = os.path.join(serving_root, FILE_NAME)
    write(build({name: f"{settings.CONTAINER_MODELS_ROOT}/{name}" for name in names}), path)
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


def aspired(policy: VersionPolicy, found: Sequence[int]) -> List[int]:
    """The versions among `found` that `policy` serves, as TF Serving's file
    system source picks them: the latest N (default 1), all, or the listed ones."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return sorted(found)
    if choice == "specific":
        return sorted(set(found) & set(policy.specific.versions))
    latest = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    return sorted(found)[-latest:]
