"""Registry and hosting fixtures: moto's SageMaker, S3 and CloudWatch, and a Stubber where moto
has no such call.

moto implements the model package group and package calls (create, describe, list with sort
and pagination, update with approval status and description), models, endpoint configs,
create/describe/delete endpoint and CloudWatch alarms. It has no ``UpdateEndpoint`` and its
endpoints are InService at once, so updates, blue/green rollbacks and busy or failed
endpoints are played with botocore's Stubber on a real client (which validates every request
against the SageMaker service model).

Import the ``*_fixture`` functions into a test module to register the fixtures they name
(``registry_fixture`` registers ``registry``); ``aws``, ``s3`` and ``settings`` come from
``conftest.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from mlops.backends.aws.hosting import SageMakerHosting
from mlops.backends.aws.registry import SageMakerRegistry

REGION = "us-east-1"
BUCKET = "mlops-test-bucket"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
GROUP = "churn-classifier"  # the logical group the port is given ...
AWS_GROUP = "mlops-churn-classifier"  # ... and SageMaker's, with the settings' name prefix
# CustomerMetadataProperties value pattern of the SageMaker API ([\p{L}\p{Z}\p{N}_.:/=+\-@]*).
METADATA_VALUE = re.compile(r"[\w\s.:/=+\-@]{1,256}")


class Calls:
    """Every request a client sends, as ``(operation, params)``, in order."""

    def __init__(self, client, service: str):
        self.sent: list[tuple[str, dict]] = []
        client.meta.events.register(f"provide-client-params.{service}", self._record)

    def _record(self, params, model, **_):
        self.sent.append((model.name, json.loads(json.dumps(params, default=str))))

    def named(self, operation: str) -> list[dict]:
        return [params for name, params in self.sent if name == operation]


@pytest.fixture(name="moto_sagemaker")
def moto_sagemaker_fixture(aws):
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture(name="sagemaker_calls")
def sagemaker_calls_fixture(moto_sagemaker) -> Calls:
    return Calls(moto_sagemaker, "sagemaker")


@pytest.fixture(name="cloudwatch")
def cloudwatch_fixture(aws):
    return boto3.client("cloudwatch", region_name=REGION)


@pytest.fixture(name="registry")
def registry_fixture(settings, moto_sagemaker, s3) -> SageMakerRegistry:
    registry = SageMakerRegistry(settings, sagemaker_client=moto_sagemaker, s3_client=s3, image_uri=IMAGE)
    registry.ensure_group(GROUP)
    return registry


@pytest.fixture(name="hosting")
def hosting_fixture(settings, moto_sagemaker, s3, cloudwatch, registry) -> SageMakerHosting:
    return SageMakerHosting(settings, sagemaker_client=moto_sagemaker, s3_client=s3, cloudwatch_client=cloudwatch,
                            registry=registry, waiter_delay=0, waiter_max_attempts=3)


def put_artifact(s3, name: str = "model", content: bytes | None = None) -> tuple[str, str]:
    """A ``model.tar.gz`` in moto's S3: (s3:// URI, sha256)."""
    content = content if content is not None else f"model bytes of {name}".encode()
    key = f"mlops/models/{name}/model.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=content)
    return f"s3://{BUCKET}/{key}", hashlib.sha256(content).hexdigest()


def metadata(n: int = 0) -> dict:
    return {
        "dataset_digest": "d" * 64, "validation_id": f"validation-{n}", "code_version": "abc123def456",
        "dag_id": "train_model", "run_id": f"manual__2026-11-21T06:00:0{n}+00:00",
        "report_uri": f"s3://{BUCKET}/mlops/reports/run-{n}/model_report.html",
        "golden_uri": f"s3://{BUCKET}/mlops/reports/run-{n}/golden.parquet",
        "hyperparameters": {"learning_rate": 0.1, "max_iter": 100 + n, "max_leaf_nodes": 31},
        "fold_scores": [0.91, 0.92, 0.9],
    }


def register(registry, s3, n: int = 0, group: str = GROUP):
    uri, sha = put_artifact(s3, f"{group}-{n}", f"model {group} {n}".encode())
    return registry.register(group, uri, sha, {"roc_auc": 0.9 + n / 100, "accuracy": 0.88}, metadata(n))


def read_s3_json(s3, uri: str):
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


# The serving source archive's members: the entry point and the package it imports.
SERVING_SOURCE = ["inference.py", "mlops_serving/__init__.py", "mlops_serving/columnar.py",
                  "mlops_serving/compiled.py", "mlops_serving/messages.py", "mlops_serving/records.py"]


def read_s3_tar_names(s3, uri: str) -> list[str]:
    import tarfile

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


def described_endpoint(name: str, config: str, status: str = "InService", **extra) -> dict:
    """A DescribeEndpoint answer for the Stubber."""
    now = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    return {"EndpointName": name, "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
            "EndpointConfigName": config, "EndpointStatus": status, "CreationTime": now,
            "LastModifiedTime": now, **extra}


def serving_dir() -> Path:
    from mlops.core.paths import INCLUDE_DIR

    return INCLUDE_DIR / "serving"
