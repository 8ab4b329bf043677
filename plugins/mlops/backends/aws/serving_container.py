"""The serving container of a model version on SageMaker: image, source archive, environment.

A leaf module (it imports no other backend module): both the registry, which puts the
container into a model package's ``InferenceSpecification``, and hosting, which creates a
model from it when a spec names no package, take it from here.

* the image: the scikit-learn inference image (:mod:`mlops.backends.aws.sklearn_image`, the
  one training uses, so the scikit-learn that pickles an artifact unpickles it);
* the source archive: ``sourcedir.tar.gz`` with ``include/serving/inference.py`` at its root and
  the package it imports (``mlops_serving/``) beside it, deterministic, uploaded once per content;
* the environment: ``SAGEMAKER_PROGRAM``/``SAGEMAKER_SUBMIT_DIRECTORY`` naming it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.backends.aws.s3 import split_s3_uri
from mlops.backends.aws.sklearn_image import sklearn_image_uri
from mlops.core.paths import INCLUDE_DIR

if TYPE_CHECKING:
    from mlops.core.settings import Settings

SERVING_DIR = INCLUDE_DIR / "serving"
SERVING_PROGRAM = "inference.py"
SERVING_PACKAGE = "mlops_serving"  # the handlers' parts, imported by SERVING_PROGRAM


def inference_image_uri(region: str) -> str:
    """The scikit-learn inference image in ``region`` (raises ``ValueError`` where there is none)."""
    return sklearn_image_uri(region, "inference")


def serving_archive() -> tuple[bytes, str]:
    """``sourcedir.tar.gz`` with ``inference.py`` and ``mlops_serving/*.py`` (deterministic), and its sha256."""
    from mlops.core.storage import pack_model

    work = Path(tempfile.mkdtemp(prefix="mlops-sourcedir-"))
    try:
        source = work / "src"
        source.mkdir()
        shutil.copy2(SERVING_DIR / SERVING_PROGRAM, source / SERVING_PROGRAM)
        (source / SERVING_PACKAGE).mkdir()
        for module in sorted((SERVING_DIR / SERVING_PACKAGE).glob("*.py")):
            shutil.copy2(module, source / SERVING_PACKAGE / module.name)
        archive = work / "sourcedir.tar.gz"
        _, digest = pack_model(source, archive.as_uri())
        return archive.read_bytes(), digest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def serving_environment(settings: Settings, s3) -> dict[str, str]:
    """Container environment running ``include/serving/inference.py`` in the scikit-learn image.

    Uploads the sourcedir once per content (``<data root>/code/serving/<sha256>/``).
    """
    from botocore.exceptions import ClientError

    data, digest = serving_archive()
    bucket, prefix = split_s3_uri(settings.data_uri)
    key = "/".join(p for p in (prefix.strip("/"), "code", "serving", digest[:16], "sourcedir.tar.gz") if p)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    return {
        "SAGEMAKER_PROGRAM": SERVING_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{bucket}/{key}",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": settings.aws_region,
    }
