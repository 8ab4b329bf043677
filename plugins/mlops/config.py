"""Use-case configuration: one YAML file per pipeline in ``include/pipelines/`` (or in the folder
``MLOPS_PIPELINES_DIR`` names).

A DAG names a use case (a Param, default from the DAG); tasks load its config at run time with
:func:`load_pipeline`. Errors name the file and the missing or bad key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.settings import PIPELINES_DIR

PROBLEM_TYPES = ("binary", "multiclass", "regression", "clustering")
REQUIRED_KEYS = ("name", "problem_type", "source", "schema", "validation")


class ConfigError(ValueError):
    """A pipeline config is missing, unreadable or invalid."""


@dataclass(frozen=True)
class PipelineConfig:
    """A parsed pipeline config. Sections stay plain dicts, as in the YAML file."""

    name: str
    problem_type: str
    source: dict[str, Any]
    schema: dict[str, Any]
    validation: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    path: Path | None = None

    def section(self, key: str) -> dict[str, Any]:
        """Return a top-level section, raising :class:`ConfigError` naming it when absent."""
        value = self.raw.get(key)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: section {key!r} is missing or not a mapping")
        return value

    @property
    def target(self) -> str:
        return self.schema["target"]

    @property
    def feature_columns(self) -> list[str]:
        return list(self.schema.get("categorical", [])) + list(self.schema.get("numeric", []))


def pipelines_dir() -> Path:
    """Where the pipeline configs are: ``$MLOPS_PIPELINES_DIR``, default ``include/pipelines``."""
    return Path(os.environ.get("MLOPS_PIPELINES_DIR") or PIPELINES_DIR)


def available_pipelines(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or pipelines_dir()).glob("*.yaml"))


def load_pipeline(name: str, directory: Path | None = None) -> PipelineConfig:
    """Load ``<directory>/<name>.yaml`` (default :func:`pipelines_dir`) and check the keys every
    pipeline needs."""
    import yaml

    directory = directory or pipelines_dir()
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"no pipeline config {name!r}: expected {path.name} in {directory} "
            f"(available: {', '.join(available_pipelines(directory)) or 'none'})"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ConfigError(f"{path}: missing required keys: {', '.join(missing)}")
    if raw["problem_type"] not in PROBLEM_TYPES:
        raise ConfigError(
            f"{path}: problem_type {raw['problem_type']!r} is not one of {', '.join(PROBLEM_TYPES)}"
        )
    if raw["problem_type"] != "clustering" and "target" not in (raw["schema"] or {}):
        raise ConfigError(f"{path}: schema.target is required for a {raw['problem_type']} pipeline")
    return PipelineConfig(
        name=raw["name"],
        problem_type=raw["problem_type"],
        source=raw["source"],
        schema=raw["schema"],
        validation=raw["validation"],
        raw=raw,
        path=path,
    )
