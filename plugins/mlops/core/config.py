"""Use-case configuration: one YAML file per pipeline in ``include/pipelines/`` (or in the folder
``MLOPS_PIPELINES_DIR`` names).

A DAG names a use case (a Param, default from the DAG); tasks load its config at run time with
:func:`load_pipeline`. Errors name the file and the missing or bad key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlops.core.config_schema import PROBLEM_TYPES, PipelineSpec, StageTarget
from mlops.core.paths import PIPELINES_DIR
from mlops.core.schema import describe, env_value

__all__ = ["PROBLEM_TYPES", "STAGES", "ConfigError", "PipelineConfig", "StageTargetConfig", "available_pipelines",
           "load_pipeline", "pipelines_dir", "stage_target", "stage_targets"]
REQUIRED_KEYS = tuple(f.alias or name for name, f in PipelineSpec.model_fields.items() if f.is_required())


class ConfigError(ValueError):
    """A pipeline config is missing, unreadable or invalid."""


@dataclass(frozen=True)
class PipelineConfig:
    """A parsed pipeline config, checked against :class:`~mlops.core.config_schema.PipelineSpec`.
    Sections stay plain dicts, as in the YAML file; :attr:`spec` has them typed."""

    name: str
    problem_type: str
    source: dict[str, Any]
    schema: dict[str, Any]
    validation: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    path: Path | None = None
    spec: PipelineSpec | None = field(default=None, repr=False, compare=False)  # the checked, typed file

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
    return env_value("MLOPS_PIPELINES_DIR", Path, PIPELINES_DIR)


def available_pipelines(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or pipelines_dir()).glob("*.yaml"))


def load_pipeline(name: str, directory: Path | None = None) -> PipelineConfig:
    """Load ``<directory>/<name>.yaml`` (default :func:`pipelines_dir`) and check it against
    :class:`~mlops.core.config_schema.PipelineSpec`: unknown keys, missing required keys and bad
    values raise :class:`ConfigError` naming the file, the key and the value."""
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
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe(err, f"{path}: ")) from None
    return PipelineConfig(
        name=raw["name"],
        problem_type=raw["problem_type"],
        source=raw["source"],
        schema=raw["schema"],
        validation=raw["validation"],
        raw=raw,
        path=path,
        spec=spec,
    )


# ---------------------------------------------------------------- where each stage deploys
STAGES = ("staging", "prod")
TARGET_KEYS = tuple(StageTarget.model_fields)


@dataclass(frozen=True)
class StageTargetConfig:
    """Where a stage deploys: ``endpoint.<stage>.target`` of the pipeline config.

    Every key is optional; without any the stage deploys with the project's connection
    (``MLOPS_AWS_CONN_ID``) into its account, with ``MLOPS_SAGEMAKER_ROLE``: one account for
    everything, as before.

    :param aws_conn_id: the Airflow AWS connection of the stage: its extra names the
        ``role_arn`` to assume in the stage's account (and ``region_name``).
    :param account_id: the stage's 12-digit account. On AWS the connection must land there
        (checked before any deploy); the local twin keeps the stage's endpoints under it.
    :param region: the stage's region (default: the connection's, else ``MLOPS_AWS_REGION``).
    :param execution_role_arn: the SageMaker execution role in the stage's account that its
        models run as (default ``MLOPS_SAGEMAKER_ROLE``; required for another account).
    """

    stage: str
    aws_conn_id: str | None = None
    account_id: str | None = None
    region: str | None = None
    execution_role_arn: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"stage": self.stage, "aws_conn_id": self.aws_conn_id, "account_id": self.account_id,
                "region": self.region, "execution_role_arn": self.execution_role_arn}


def stage_target(config: PipelineConfig, stage: str) -> StageTargetConfig:
    """The ``endpoint.<stage>.target`` of ``config``, checked; raises :class:`ConfigError` naming
    the file, the key and what is wrong."""
    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    where = f"{config.path}: endpoint.{stage}.target"
    raw = (config.raw.get("endpoint") or {}).get(stage) or {}
    target = raw.get("target") if isinstance(raw, dict) else None
    if target is None:
        return StageTargetConfig(stage)
    if not isinstance(target, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(target).__name__}")
    try:
        checked = StageTarget.model_validate(target)
    except ValidationError as err:
        raise ConfigError(describe(err, f"{config.path}: ", root=f"endpoint.{stage}.target")) from None
    return StageTargetConfig(stage, **checked.model_dump())


def stage_targets(config: PipelineConfig) -> dict[str, StageTargetConfig]:
    """:func:`stage_target` of every stage, by stage."""
    return {stage: stage_target(config, stage) for stage in STAGES}
