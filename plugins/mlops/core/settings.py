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
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
INCLUDE_DIR = PROJECT_ROOT / "include"
PIPELINES_DIR = INCLUDE_DIR / "pipelines"
BACKENDS = ("local", "aws")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build one with :func:`get_settings`."""

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


def get_settings() -> Settings:
    """Read the settings from the environment; raise ``ValueError`` naming a bad value."""
    backend = os.environ.get("MLOPS_BACKEND", "local").strip().lower()
    if backend not in BACKENDS:
        raise ValueError(f"MLOPS_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
    home = Path(os.environ.get("MLOPS_HOME") or PROJECT_ROOT / ".mlops").resolve()
    data_uri = os.environ.get("MLOPS_DATA_URI") or (home / "data").as_uri()
    if not data_uri.startswith(("file://", "s3://")):
        raise ValueError(f"MLOPS_DATA_URI={data_uri!r} must start with file:// or s3://")
    port_text = os.environ.get("MLOPS_RUNTIME_PORT", "8765")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"MLOPS_RUNTIME_PORT={port_text!r} is not a TCP port number")
    runtime_host = os.environ.get("MLOPS_RUNTIME_HOST", "").strip() or "127.0.0.1"
    try:
        ipaddress.IPv4Address(runtime_host)
    except ValueError:
        raise ValueError(f"MLOPS_RUNTIME_HOST={runtime_host!r} is not an IPv4 address to bind") from None
    runtime_service_url = os.environ.get("MLOPS_RUNTIME_URL", "").strip().rstrip("/")
    if runtime_service_url and not runtime_service_url.startswith(("http://", "https://")):
        raise ValueError(f"MLOPS_RUNTIME_URL={runtime_service_url!r} must start with http:// or https://")
    return Settings(
        backend=backend,
        home=home,
        data_uri=data_uri.rstrip("/"),
        aws_conn_id=os.environ.get("MLOPS_AWS_CONN_ID", "aws_default"),
        runtime_port=int(port_text),
        aws_region=os.environ.get("MLOPS_AWS_REGION", "us-east-1"),
        sagemaker_role_arn=os.environ.get("MLOPS_SAGEMAKER_ROLE", ""),
        name_prefix=os.environ.get("MLOPS_NAME_PREFIX", "mlops"),
        instance_type=os.environ.get("MLOPS_INSTANCE_TYPE", "ml.m5.large"),
        runtime_host=runtime_host,
        runtime_service_url=runtime_service_url,
    )
