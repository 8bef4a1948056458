"""Training configuration: the option schema, YAML loading and validation (torch-free).

The desktop app imports this package to build its settings form and to validate as the
user types, so nothing here may import torch or the other training libraries.
"""

from trainer.config.loader import ConfigError, ConfigProblem, TrainConfig, config_to_yaml, load_config, validate_mapping
from trainer.config.schema import OPTIONS, OPTIONS_BY_NAME, SCHEMA_VERSION, Option, schema_json

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "Option",
    "SCHEMA_VERSION",
    "TrainConfig",
    "config_to_yaml",
    "load_config",
    "schema_json",
    "validate_mapping",
]
