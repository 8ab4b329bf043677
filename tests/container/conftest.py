"""Training jobs run as SageMaker's scikit-learn container runs them, on the container's toolkit.

A job is laid out as SageMaker lays it out for the toolkit (sagemaker-training): under the
job's ``/opt/ml`` (``SAGEMAKER_BASE_DIR``, which the toolkit reads in place of ``/opt/ml``),
``input/config/hyperparameters.json`` holds the request's ``HyperParameters`` as sent (strings),
``input/config/inputdataconfig.json`` and ``resourceconfig.json`` describe the channels and the
host, and ``input/data/<channel>/`` holds each channel's files. The request itself is the one
the AWS backend builds (:meth:`SageMakerTrainer.request`, :meth:`SageMakerTuner.request`), with
its S3 side in moto; ``sagemaker_submit_directory`` points at the very ``sourcedir.tar.gz`` it
uploaded, copied out of moto (the toolkit downloads an ``s3://`` one the same way).
The toolkit is started as the image starts it (``train``, with
``SAGEMAKER_TRAINING_MODULE=sagemaker_sklearn_container.training:main``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from mlops.backends.aws.training import SageMakerTrainer, SageMakerTuner
from mlops.backends.base import TrainingData
from mlops.core.entrypoints import generators_module
from mlops.core.settings import Settings
from testkit.container import container_python
from testkit.training_job import REFIT_HYPERPARAMETERS, REGION, parquet_bytes, run_training_job

BUCKET = "mlops-contract"
RUN_URI = f"s3://{BUCKET}/mlops/training/churn/contract"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
ROWS = 600
K = 3


@dataclass(frozen=True)
class TrainingJob:
    """A training job the container's toolkit ran: its ``/opt/ml``, request, exit code and output."""

    opt_ml: Path
    request: dict
    returncode: int
    output: str

    @property
    def model_dir(self) -> Path:
        return self.opt_ml / "model"

    def metrics(self) -> dict:
        return json.loads((self.opt_ml / "output" / "data" / "metrics.json").read_text())


@pytest.fixture(scope="session")
def container(tmp_path_factory) -> Path:
    """The container environment's interpreter (built once, cached; skips without PyPI)."""
    return container_python()


@pytest.fixture(scope="session")
def churn_frame():
    return generators_module().churn(ROWS, seed=3)


@pytest.fixture(scope="session")
def aws_requests(tmp_path_factory, churn_frame) -> dict:
    """The refit's CreateTrainingJob and the tuning job's CreateHyperParameterTuningJob requests,
    built by the AWS backend, and the source archive it uploaded."""
    schema = ["State", "Account Length", "Area Code", "Int'l Plan", "VMail Plan", "Day Mins", "Eve Mins",
              "Night Mins", "Intl Calls", "CustServ Calls"]
    data = TrainingData(
        train_uri=f"{RUN_URI}/train/", folds_uri=f"{RUN_URI}/folds/folds.json", target="Churn?",
        feature_columns=schema, categorical=["State", "Area Code", "Int'l Plan", "VMail Plan"],
        problem_type="binary", estimator="gradient_boosting", objective="roc_auc", positive_label="True.", seed=42,
    )
    manifest = {"k": K, "seed": 42, "strategy": "stratified", "n_rows": ROWS, "folds": [i % K for i in range(ROWS)]}
    settings = Settings(backend="aws", home=tmp_path_factory.mktemp("home"), data_uri=f"s3://{BUCKET}/mlops",
                        aws_conn_id="aws_default", runtime_port=8765, aws_region=REGION,
                        sagemaker_role_arn="arn:aws:iam::123456789012:role/mlops-sagemaker", name_prefix="mlops",
                        instance_type="ml.m5.large")
    environ = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update(environ)
    try:
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="mlops/training/churn/contract/folds/folds.json",
                          Body=json.dumps(manifest))
            sagemaker = boto3.client("sagemaker", region_name=REGION)
            refit = SageMakerTrainer(settings, sagemaker_client=sagemaker, s3_client=s3, image_uri=IMAGE).request(
                "mlops-refit-contract", "refit-contract", data, REFIT_HYPERPARAMETERS, RUN_URI)
            tuning = SageMakerTuner(settings, sagemaker_client=sagemaker, s3_client=s3, image_uri=IMAGE).request(
                "mlops-tune-contract", "tune-contract", data,
                {"learning_rate": {"type": "float", "low": 0.05, "high": 0.3}}, 2, RUN_URI)
            source_uri = json.loads(refit["HyperParameters"]["sagemaker_submit_directory"])
            key = source_uri.removeprefix(f"s3://{BUCKET}/")
            source = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    return {"refit": refit, "tuning": tuning, "source": source, "manifest": manifest}


@pytest.fixture(scope="session")
def refit_job(container, aws_requests, churn_frame, tmp_path_factory) -> TrainingJob:
    """The refit training job, run by the container's toolkit: its model serves the serving tests."""
    request = aws_requests["refit"]
    opt_ml = tmp_path_factory.mktemp("refit") / "opt" / "ml"
    code, output = run_training_job(container, opt_ml, request["HyperParameters"],
                                    {"train": {"train.parquet": parquet_bytes(churn_frame)}}, aws_requests["source"])
    return TrainingJob(opt_ml, request, code, output)
