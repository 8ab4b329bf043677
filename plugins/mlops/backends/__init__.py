"""Backend selection: one setting (``MLOPS_BACKEND``) picks every port's implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.backends.backend import Backend, BackendNotAvailable

if TYPE_CHECKING:  # the settings (and pydantic) load when a backend is built, not in worker processes
    from mlops.core.settings import Settings

__all__ = ["Backend", "BackendNotAvailable", "get_backend"]


def get_backend(settings: Settings | None = None) -> Backend:
    """Build the ports for ``settings.backend`` (imports happen here, inside tasks)."""
    from mlops.core.settings import get_settings

    settings = settings or get_settings()
    if settings.backend == "local":
        from mlops.backends import local

        return local.build(settings)
    from mlops.backends import aws

    return aws.build(settings)
