"""The SageMaker scikit-learn framework image: one version for training and for serving.

A model is trained (tuning trials, the refit) and served (endpoints, registered packages) in
the image of :data:`SKLEARN_FRAMEWORK_VERSION`, so the scikit-learn that pickles an artifact is
the one that unpickles it. There is no fallback version: a region or SDK without this image is
an error naming both, never a silently different image for one of the two.

The URI comes from the image table the SageMaker Python SDK ships
(``sagemaker/core/image_uri_config/sklearn.json``: per scope, version and region the account,
repository, processor and Python tag), read without importing the SDK, which takes seconds.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

SKLEARN_FRAMEWORK_VERSION = "1.9-0"  # scikit-learn 1.9 (requirements.txt); the container tests' lock too
SCOPES = ("training", "inference")


@functools.cache
def _image_table() -> dict:
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the sagemaker package is not installed: cannot look up the scikit-learn image")
    table = Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config" / "sklearn.json"
    return json.loads(table.read_text(encoding="utf-8"))


def sklearn_image_uri(region: str, scope: str, version: str = SKLEARN_FRAMEWORK_VERSION) -> str:
    """ECR URI of the scikit-learn image of ``version`` for ``scope`` (training or inference) in ``region``.

    Raises ``ValueError`` naming the scope, version and region when the SDK's table has no such image.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    versions = _image_table()[scope]["versions"]
    if version not in versions:
        raise ValueError(f"no scikit-learn {scope} image {version!r}; the SageMaker SDK knows {', '.join(versions)}")
    entry = versions[version]
    account = entry["registries"].get(region)
    if account is None:
        raise ValueError(f"the scikit-learn {scope} image {version} is not published in {region}")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return (f"{account}.dkr.ecr.{region}.{domain}/{entry['repository']}:"
            f"{version}-{entry['processors'][0]}-{entry['py_versions'][0]}")
