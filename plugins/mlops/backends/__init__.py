"""Backend selection: one setting (``MLOPS_BACKEND``) picks every port's implementation."""

from __future__ import annotations

from mlops.backends.backend import Backend, BackendNotAvailable
from mlops.core.settings import Settings, get_settings

__all__ = ["Backend", "BackendNotAvailable", "get_backend"]


def get_backend(settings: Settings | None = None) -> Backend:
    """Build the ports for ``settings.backend`` (imports happen here, inside tasks)."""
    settings = settings or get_settings()
    if settings.backend == "local":
        from mlops.backends import local

        return local.build(settings)
    from mlops.backends import aws

    return aws.build(settings)
