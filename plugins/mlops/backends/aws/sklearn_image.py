"""The SageMaker scikit-learn framework image: one version for training and for serving.

A model is trained (tuning trials, the refit) and served (endpoints, registered packages) in
the image of :data:`SKLEARN_FRAMEWORK_VERSION`, so the scikit-learn that pickles an artifact is
the one that unpickles it. There is no fallback version: a region or SDK without this image is
an error naming both, never a silently different image for one of the two.

The URI comes from the SageMaker Python SDK's public ``image_uris.retrieve`` (the one way this
project reads it). Importing the SDK takes seconds, so it is imported on first use, in the AWS
backends only (never at DAG parse time), and each answer is cached.
"""

from __future__ import annotations

import functools

SKLEARN_FRAMEWORK_VERSION = "1.9-0"  # scikit-learn 1.9 (requirements.txt); the container tests' lock too
SCOPES = ("training", "inference")


def _image_uris():
    try:
        from sagemaker.core import image_uris
    except ImportError:
        raise RuntimeError("the sagemaker package is not installed: cannot look up the scikit-learn image") from None
    return image_uris


def published_regions(scope: str, version: str = SKLEARN_FRAMEWORK_VERSION) -> list[str]:
    """The regions the SDK lists the scikit-learn ``scope`` image of ``version`` in."""
    versions = _image_uris().config_for_framework("sklearn")[scope]["versions"]
    return sorted(versions.get(version, {}).get("registries", {}))


@functools.cache
def sklearn_image_uri(region: str, scope: str, version: str = SKLEARN_FRAMEWORK_VERSION) -> str:
    """ECR URI of the scikit-learn image of ``version`` for ``scope`` (training or inference) in
    ``region``, from ``sagemaker.core.image_uris.retrieve``.

    :raises ValueError: naming the scope, version and region when the SDK has no such image.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    image_uris = _image_uris()
    known = list(image_uris.config_for_framework("sklearn")[scope]["versions"])
    if version not in known:
        raise ValueError(f"no scikit-learn {scope} image {version!r}; the SageMaker SDK knows {', '.join(known)}")
    try:
        return image_uris.retrieve("sklearn", region=region, version=version, image_scope=scope)
    except ValueError:
        regions = published_regions(scope, version)
        raise ValueError(f"the scikit-learn {scope} image {version} is not published in {region} (the SageMaker "
                         f"SDK lists it in {len(regions)} regions, e.g. {', '.join(regions[:3])})") from None
