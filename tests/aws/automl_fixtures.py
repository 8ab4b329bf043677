"""Fixtures for the Autopilot and batch transform request-shape tests (moto and botocore Stubber).

moto 5 accepts ``CreateAutoMLJobV2`` and keeps the job InProgress forever, and has no
``ListCandidatesForAutoMLJob``: status transitions and candidate listings are stubbed with
botocore's Stubber, whose ``expected_params`` check each request and whose service model
validates each response. Transform jobs in moto are Completed at once.

Test modules import the ``*_fixture`` functions; pytest finds them by their ``name``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from mlops.core.settings import Settings

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"
BUCKET = "mlops-data"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-sklearn-automl:2.5-1-cpu-py3"

# An Autopilot HYPERPARAMETER_TUNING candidate: feature transform -> algorithm -> inverse label
# transform, with the SAGEMAKER_INFERENCE_SUPPORTED markers Autopilot puts on the last two.
HPO_CONTAINERS = [
    {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/automl/dpp/model.tar.gz",
     "Environment": {"AUTOML_TRANSFORM_MODE": "feature-transform", "SAGEMAKER_PROGRAM": "sagemaker_serve"}},
    {"Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1-cpu-py3",
     "ModelDataUrl": f"s3://{BUCKET}/automl/tuning/churn-job-xgb-7/output/model.tar.gz",
     "Environment": {"MAX_CONTENT_LENGTH": "20971520", "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
                     "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,probabilities"}},
    {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/automl/dpp/model.tar.gz",
     "Environment": {"AUTOML_TRANSFORM_MODE": "inverse-label-transform", "SAGEMAKER_PROGRAM": "sagemaker_serve",
                     "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
                     "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,labels,probabilities"}},
]
# An ENSEMBLING candidate: one AutoGluon container.
ENSEMBLE_CONTAINERS = [
    {"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/autogluon-inference:1.1-cpu-py310",
     "ModelDataUrl": f"s3://{BUCKET}/automl/ensemble/model.tar.gz",
     "Environment": {"MODEL_NAME": "model", "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
                     "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,labels,probabilities"}},
]


@contextlib.contextmanager
def handing_out(hook_class, client):
    """While inside, every ``hook_class`` hands out ``client`` from ``get_async_conn()``."""

    class Connection:
        async def __aenter__(self):
            return client

        async def __aexit__(self, *exc):
            return False

    async def get_async_conn(self):
        return Connection()

    original = hook_class.__dict__.get("get_async_conn")
    hook_class.get_async_conn = get_async_conn
    try:
        yield
    finally:
        if original is None:
            del hook_class.get_async_conn
        else:
            hook_class.get_async_conn = original


def run_trigger(trigger, operation: str, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run a waiter trigger's inherited ``run()`` on an aiobotocore client answered by AioStubber.

    Each answer is given to ``operation`` called with the trigger's ``waiter_args``; the
    trigger's ``aws_hook_class`` hands out that client while it runs. Every answer must be used.
    """
    from aiobotocore.session import get_session
    from aiobotocore.stub import AioStubber

    hook_class = trigger.aws_hook_class

    async def main():
        async with get_session().create_client("sagemaker", region_name=REGION, aws_access_key_id="testing",
                                               aws_secret_access_key="testing") as client:
            stubber = AioStubber(client)
            for answer in answers:
                stubber.add_response(operation, answer, trigger.waiter_args)
            stubber.activate()

            with handing_out(hook_class, client):
                events = [event.payload async for event in trigger.run()]
            stubber.assert_no_pending_responses()
            return events

    return asyncio.run(main())


def run_on_kill(trigger, operation: str, expected_params: dict[str, Any], answer: dict[str, Any] | None = None,
                error: str | None = None) -> None:
    """Run a trigger's ``on_kill()`` (what the triggerer does when a person kills the deferred task)
    on an aiobotocore client answered by AioStubber: ``operation`` with ``expected_params`` gets
    ``answer`` (or the client error ``error``). The answer must be used."""
    from aiobotocore.session import get_session
    from aiobotocore.stub import AioStubber

    hook_class = type(trigger.hook())

    async def main():
        async with get_session().create_client("sagemaker", region_name=REGION, aws_access_key_id="testing",
                                               aws_secret_access_key="testing") as client:
            stubber = AioStubber(client)
            if error:
                stubber.add_client_error(operation, "ValidationException", error, expected_params=expected_params)
            else:
                stubber.add_response(operation, answer or {}, expected_params)
            stubber.activate()

            with handing_out(hook_class, client):
                await trigger.on_kill()
            stubber.assert_no_pending_responses()

    asyncio.run(main())


def settings_for(home: Path) -> Settings:
    return Settings(backend="aws", home=home, data_uri=f"s3://{BUCKET}/mlops", aws_conn_id="aws_default",
                    runtime_port=8765, aws_region=REGION, sagemaker_role_arn=ROLE)


def candidate(name: str, value: float, created: datetime, containers=None, metric: str = "AUC",
              kind: str = "Maximize", step: str = "churn-job-xgb-7") -> dict:
    """One ``ListCandidatesForAutoMLJob`` entry, valid against botocore's service model."""
    return {
        "CandidateName": name,
        "FinalAutoMLJobObjectiveMetric": {"Type": kind, "MetricName": metric, "Value": value,
                                          "StandardMetricName": metric},
        "ObjectiveStatus": "Succeeded",
        "CandidateSteps": [{"CandidateStepType": "AWS::SageMaker::TrainingJob",
                            "CandidateStepArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{step}",
                            "CandidateStepName": step}],
        "CandidateStatus": "Completed",
        "InferenceContainers": copy.deepcopy(containers or HPO_CONTAINERS),
        "CreationTime": created,
        "EndTime": created,
        "LastModifiedTime": created,
    }


def described_job(name: str, status: str, reason: str | None = None, target: str = "Churn?",
                  objective: str = "AUC", problem_type: str = "BinaryClassification",
                  secondary: str | None = None) -> dict:
    """A ``DescribeAutoMLJobV2`` answer for a tabular job."""
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    answer = {
        "AutoMLJobName": name,
        "AutoMLJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:automl-job/{name}",
        "AutoMLJobInputDataConfig": [{"ChannelType": "training", "ContentType": "x-application/vnd.amazon+parquet",
                                      "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                      "S3Uri": f"s3://{BUCKET}/train.parquet"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/automl/{name}/"},
        "RoleArn": ROLE,
        "AutoMLJobObjective": {"MetricName": objective},
        "AutoMLProblemTypeConfig": {"TabularJobConfig": {
            "TargetAttributeName": target, "ProblemType": problem_type, "Mode": "ENSEMBLING",
            "CompletionCriteria": {"MaxCandidates": 5, "MaxAutoMLJobRuntimeInSeconds": 3600}}},
        "AutoMLProblemTypeConfigName": "Tabular",
        "CreationTime": now,
        "LastModifiedTime": now,
        "AutoMLJobStatus": status,
        "AutoMLJobSecondaryStatus": secondary or {"InProgress": "TrainingModels", "Completed": "Completed",
                                                  "Failed": "Failed", "Stopped": "Stopped",
                                                  "Stopping": "Stopping"}[status],
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


@pytest.fixture(name="aws_settings")
def aws_settings_fixture(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return settings_for(tmp_path / "mlops")


@pytest.fixture(name="moto_clients")
def moto_clients_fixture(aws_settings):
    """``(sagemaker, s3)`` clients on moto, with the data bucket created."""
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield boto3.client("sagemaker", region_name=REGION), s3


@pytest.fixture(name="stubbed")
def stubbed_fixture(aws_settings):
    """A ``sagemaker`` client whose answers are queued on a Stubber (asserted all used)."""
    client = boto3.client("sagemaker", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
