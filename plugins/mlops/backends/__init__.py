"""Backend selection: one setting (``MLOPS_BACKEND``) picks every port's implementation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops.settings import Settings, get_settings

if TYPE_CHECKING:
    from mlops.backends.base import AutoML, BatchTransform, Hosting, Registry, Trainer, Tuner


class BackendNotAvailable(RuntimeError):
    """The configured backend has no implementation of a port."""


@dataclass(frozen=True)
class Backend:
    name: str
    tuner: Tuner
    trainer: Trainer
    registry: Registry
    hosting: Hosting
    automl: AutoML
    transform: BatchTransform
    region: str = ""

    def resource_url(self, kind: str, name: str, local_uri: str | None = None) -> str | None:
        """Where a person looks at a resource: the SageMaker console on AWS, else ``local_uri``."""
        from mlops.links import console_url

        return console_url(self.region, kind, name) if self.name == "aws" else local_uri


def get_backend(settings: Settings | None = None) -> Backend:
    """Build the ports for ``settings.backend`` (imports happen here, inside tasks)."""
    settings = settings or get_settings()
    if settings.backend == "local":
        from mlops.backends import local

        return local.build(settings)
    from mlops.backends import aws

    return aws.build(settings)
