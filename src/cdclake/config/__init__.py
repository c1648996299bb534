"""pipeline.yaml: typed models, loading with overrides, and errors."""

from cdclake.config.exceptions import ConfigError
from cdclake.config.loader import load
from cdclake.config.models import Pipeline, mask_dsn, with_password

__all__ = ["ConfigError", "Pipeline", "load", "mask_dsn", "with_password"]
