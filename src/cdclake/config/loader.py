"""Read pipeline.yaml once, apply overrides, validate.

Precedence, highest first: CLI flags > ``CDCLAKE__SECTION__KEY`` environment variables >
pipeline.yaml > defaults. A secret is never accepted as a literal in the file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from cdclake.config.exceptions import ConfigError
from cdclake.config.models import Pipeline, mask_dsn

ENV_PREFIX = "CDCLAKE__"
# Keys that hold secrets: they may come from the environment or a file, never pipeline.yaml.
SECRET_KEYS = {("source", "password"): "CDCLAKE__SOURCE__PASSWORD or source.password_file"}


def load(path: str | Path = "pipeline.yaml", overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Pipeline:
    """Load and validate a pipeline config.

    Args:
        path: the YAML file. A missing file is an error unless overrides make it moot.
        overrides: CLI flag values as dotted keys, e.g. ``{"kafka.nodes": 3}``.
        environ: the environment to read ``CDCLAKE__`` overrides from (default ``os.environ``).

    Returns:
        The validated pipeline, remembering its path (the state dir sits beside it).

    Raises:
        ConfigError: naming the file, the key and the fix.
    """
    path = Path(path)
    raw = _read_yaml(path)
    _refuse_literal_secrets(raw, path)
    from_env = {}
    for name, keys, value in _env_overrides(environ if environ is not None else os.environ):
        _set(raw, keys, value)
        from_env[".".join(keys)] = name
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(raw, dotted.split("."), value)
    try:
        pipeline = Pipeline.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, path, from_env) from None
    pipeline._path = path
    _resolve_password_file(pipeline, path)
    return pipeline


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(
            f"{path}: no such config file; pass -c/--config PATH or copy the demo pipeline.yaml here",
            path=str(path),
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML ({problem}); fix the syntax there",
                          path=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (source, kafka, ...)",
                          path=str(path))
    return data


def _refuse_literal_secrets(raw: dict, path: Path) -> None:
    for (section, key), where in SECRET_KEYS.items():
        if isinstance(raw.get(section), dict) and key in raw[section]:
            raise ConfigError(
                f"{path}: {section}.{key}: secrets must not be written in the config file; "
                f"remove the key and set {where}",
                path=str(path), key=f"{section}.{key}",
            )


def _env_overrides(environ: Mapping[str, str]):
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        parts = name[len(ENV_PREFIX):].split("__")
        # Sections and their keys are lower case; deeper keys (Spark conf) keep their case.
        keys = [p.lower() for p in parts[:2]] + parts[2:]
        if keys == ["source", "password"]:
            yield name, keys, value  # never parse a secret as YAML: "123" must stay a string
            continue
        try:
            yield name, keys, yaml.safe_load(value)
        except yaml.YAMLError:
            yield name, keys, value


def _set(raw: dict, keys: list[str], value: Any) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _explain(exc: ValidationError, path: Path, from_env: Mapping[str, str]) -> ConfigError:
    lines = []
    first_key = None
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        first_key = first_key or key
        where = _origin(key, path, from_env)
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: {key}: unknown key{_did_you_mean(loc)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            if isinstance(given, str) and key.endswith("dsn"):
                given = mask_dsn(given)
            shown = "" if "password" in key or isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"{where}: {key}: {msg}{shown}")
    return ConfigError("\n".join(lines), path=str(path), key=first_key)


def _origin(key: str, path: Path, from_env: Mapping[str, str]) -> str:
    """Where a bad key came from: the config file, or the environment variable that set it."""
    for dotted, variable in from_env.items():
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return f"environment variable {variable} (unset it or fix its name)"
    return str(path)


def _did_you_mean(loc: list[str]) -> str:
    model: type[BaseModel] = Pipeline
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "; remove it"
        model = annotation
    known = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; known keys here: {', '.join(known)}"


def _resolve_password_file(pipeline: Pipeline, path: Path) -> None:
    source = pipeline.source
    if source.password is not None or source.password_file is None:
        return
    file = source.password_file if source.password_file.is_absolute() else path.parent / source.password_file
    try:
        secret = file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: source.password_file: cannot read {file} ({exc.strerror}); "
                          "create it or point the key at the right file",
                          path=str(path), key="source.password_file") from None
    source.password = SecretStr(secret)
