"""AWS request-shape fixtures: moto for S3, botocore's Stubber on a real SageMaker client.

moto's SageMaker marks every training and tuning job Completed at once and invents its best
training job, so it cannot play the InProgress/Failed retry cases; botocore's Stubber can, and
it validates every request against the SageMaker service model (and every stubbed response
against the response shape). S3 — the uploaded source, the fold manifest, the model artifact
and the tuning history — is moto's, so uploads and streamed digests are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlops.backends.base import TrainingData
from mlops.core.settings import Settings

REGION = "us-east-1"
BUCKET = "mlops-test-bucket"
ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
RUN_URI = f"s3://{BUCKET}/mlops/training/churn/manual_run"
FOLDS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 1]


@pytest.fixture
def aws(monkeypatch):
    """Fake credentials and moto's AWS for the test's duration."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLOPS_USE_SPOT", raising=False)
    monkeypatch.delenv("MLOPS_MAX_PARALLEL_TRAINING_JOBS", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def sagemaker(aws):
    """``(client, stubber)``: a real SageMaker client whose calls the Stubber answers."""
    client = boto3.client("sagemaker", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def requests(sagemaker):
    """Every request the SageMaker client sends, as ``(operation, params)``, in order."""
    client, _ = sagemaker
    sent: list[tuple[str, dict]] = []

    def record(params, model, **_):
        sent.append((model.name, json.loads(json.dumps(params, default=str))))

    client.meta.events.register("provide-client-params.sagemaker", record)
    return sent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        backend="aws", home=tmp_path, data_uri=f"s3://{BUCKET}/mlops", aws_conn_id="aws_default",
        runtime_port=8765, aws_region=REGION, sagemaker_role_arn=ROLE, name_prefix="mlops",
        instance_type="ml.m5.large",
    )


@pytest.fixture
def training_data(s3) -> TrainingData:
    """Training data whose fold manifest (3 folds) is in S3, as ``prepare`` leaves it."""
    s3.put_object(Bucket=BUCKET, Key="mlops/training/churn/manual_run/train.parquet", Body=b"PAR1")
    manifest = {"k": 3, "seed": 42, "strategy": "stratified", "dataset_digest": "ab" * 32,
                "n_rows": len(FOLDS), "folds": FOLDS}
    s3.put_object(Bucket=BUCKET, Key="mlops/training/churn/manual_run/folds.json", Body=json.dumps(manifest))
    return TrainingData(
        train_uri=f"{RUN_URI}/train.parquet", folds_uri=f"{RUN_URI}/folds.json", target="Churn?",
        feature_columns=["State", "Int'l Plan", "Day Mins", "CustServ Calls"],
        categorical=["State", "Int'l Plan"], problem_type="binary", estimator="gradient_boosting",
        objective="roc_auc", positive_label="True.", seed=42,
    )
