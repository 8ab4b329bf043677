"""Project settings, read from the environment with working local defaults.

========================  ===========================================  ==========================
variable                  meaning                                      default
========================  ===========================================  ==========================
``MLOPS_BACKEND``         ``local`` (twins on this machine) or ``aws``   ``local``
``MLOPS_HOME``            local state: registry DB, runtime, Airflow      ``<project>/.mlops``
``MLOPS_DATA_URI``        root of the object store (``file://``/``s3://``) ``file://$MLOPS_HOME/data``
``MLOPS_AWS_CONN_ID``     Airflow connection used for ``s3://`` and AWS  ``aws_default``
``MLOPS_RUNTIME_PORT``    port of the local model runtime                 ``8765``
``MLOPS_RUNTIME_HOST``    address the runtime binds (compose: 0.0.0.0)    ``127.0.0.1``
``MLOPS_RUNTIME_URL``     where clients reach the runtime                 ``http://127.0.0.1:<port>``
``MLOPS_AWS_REGION``      region of SageMaker and the bucket              ``us-east-1``
``MLOPS_SAGEMAKER_ROLE``  execution role ARN SageMaker jobs assume        (required on ``aws``)
``MLOPS_NAME_PREFIX``     prefix of every AWS resource name (IAM scoping) ``mlops``
``MLOPS_INSTANCE_TYPE``   training/tuning instance type                   ``ml.m5.large``
========================  ===========================================  ==========================

The runtime listens on loopback only unless ``MLOPS_RUNTIME_HOST`` says otherwise: its admin API
deploys models without authentication. docker-compose runs it as a service of its own, binding
0.0.0.0 inside the compose network (no published port), with ``MLOPS_RUNTIME_URL`` naming it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlops.core.paths import PROJECT_ROOT
from mlops.core.schema import describe

BACKENDS = ("local", "aws")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build one with :func:`get_settings` (the environment, checked by
    :class:`Environment`)."""

    backend: str
    home: Path
    data_uri: str
    aws_conn_id: str
    runtime_port: int
    aws_region: str = "us-east-1"
    sagemaker_role_arn: str = ""
    name_prefix: str = "mlops"
    instance_type: str = "ml.m5.large"
    runtime_host: str = "127.0.0.1"
    runtime_service_url: str = ""  # MLOPS_RUNTIME_URL; empty: the runtime on this machine's loopback

    @property
    def state_dir(self) -> Path:
        """Folder for local state that is not data: registry database, runtime files."""
        return self.home / "state"

    @property
    def registry_db(self) -> Path:
        return self.state_dir / "registry.sqlite"

    @property
    def runtime_dir(self) -> Path:
        return self.state_dir / "runtime"

    @property
    def runtime_url(self) -> str:
        """Where clients reach the model runtime: ``MLOPS_RUNTIME_URL``, else its loopback address."""
        return self.runtime_service_url or f"http://127.0.0.1:{self.runtime_port}"


class Environment(BaseModel):
    """The ``MLOPS_*`` variables :class:`Settings` is built from, typed: each field's alias is its
    variable. An unset variable takes the field's default."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    backend: Literal["local", "aws"] = Field("local", alias="MLOPS_BACKEND")
    home: Path | None = Field(None, alias="MLOPS_HOME")
    data_uri: str | None = Field(None, alias="MLOPS_DATA_URI")
    aws_conn_id: str = Field("aws_default", alias="MLOPS_AWS_CONN_ID")
    runtime_port: int = Field(8765, alias="MLOPS_RUNTIME_PORT", gt=0, lt=65536)
    aws_region: str = Field("us-east-1", alias="MLOPS_AWS_REGION")
    sagemaker_role_arn: str = Field("", alias="MLOPS_SAGEMAKER_ROLE")
    name_prefix: str = Field("mlops", alias="MLOPS_NAME_PREFIX")
    instance_type: str = Field("ml.m5.large", alias="MLOPS_INSTANCE_TYPE")
    runtime_host: str = Field("127.0.0.1", alias="MLOPS_RUNTIME_HOST")
    runtime_service_url: str = Field("", alias="MLOPS_RUNTIME_URL")

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("home", "data_uri", mode="before")
    @classmethod
    def _blank_is_default(cls, value: Any) -> Any:
        return value or None

    @field_validator("data_uri")
    @classmethod
    def _data_uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3://")
        return value

    @field_validator("runtime_port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.isdigit():
            raise ValueError("is not a TCP port number")
        return value

    @field_validator("runtime_host", mode="before")
    @classmethod
    def _host(cls, value: Any) -> Any:
        host = str(value).strip() or "127.0.0.1"
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("is not an IPv4 address to bind") from None
        return host

    @field_validator("runtime_service_url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> Any:
        url = str(value).strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url


def environment_variables() -> tuple[str, ...]:
    """The variables :class:`Environment` reads."""
    return tuple(field.alias for field in Environment.model_fields.values())


def get_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default ``os.environ``); raise ``ValueError`` naming
    the bad variable and its value."""
    environ = os.environ if environ is None else environ
    try:
        env = Environment.model_validate({name: environ[name] for name in environment_variables() if name in environ})
    except ValidationError as err:
        raise ValueError(describe(err)) from None
    home = (env.home or PROJECT_ROOT / ".mlops").resolve()
    return Settings(
        backend=env.backend,
        home=home,
        data_uri=(env.data_uri or (home / "data").as_uri()).rstrip("/"),
        aws_conn_id=env.aws_conn_id,
        runtime_port=env.runtime_port,
        aws_region=env.aws_region,
        sagemaker_role_arn=env.sagemaker_role_arn,
        name_prefix=env.name_prefix,
        instance_type=env.instance_type,
        runtime_host=env.runtime_host,
        runtime_service_url=env.runtime_service_url,
    )
