"""The deploy rules: what may be deployed at all.

A stage only ever serves a model version that is Approved and whose artifact still has the
sha256 recorded at registration. These rules hold for every path that deploys (the deploy DAG,
a rollback, the endpoint operator) on both backends, so they live here, below the operators.
"""

from __future__ import annotations

from typing import Any


class DeploymentRefused(RuntimeError):
    """A model version may not be deployed: not Approved, or its artifact changed."""


def resolve_deployable(registry, group: str, arn: str | None) -> dict[str, Any]:
    """The version to deploy: ``arn`` if given, else the newest Approved one in ``group``.

    Refuses anything not Approved and any artifact whose sha256 no longer matches the one
    recorded at registration.
    """
    from mlops.backends.base import APPROVED
    from mlops.core.storage import sha256_of

    version = registry.get(arn) if arn else registry.latest_approved(group)
    if version is None:
        raise DeploymentRefused(f"model package group {group!r} has no Approved version to deploy")
    if version.status != APPROVED:
        raise DeploymentRefused(f"{version.arn} is {version.status}; only Approved versions are deployed")
    actual = sha256_of(version.model_uri)
    if actual != version.sha256:
        raise DeploymentRefused(
            f"{version.arn}: artifact {version.model_uri} has sha256 {actual}, registered {version.sha256}"
        )
    return version.to_dict()
