"""boto3 clients for the AWS ports, built from the project's Airflow AWS connection.

Every client retries throttling and transient faults with botocore's adaptive retry mode
(exponential backoff with jitter, client-side rate limiting); once the budget is spent the
ClientError reaches the caller with the service's own message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.settings import Settings

RETRIES = {"max_attempts": 10, "mode": "adaptive"}


def client(service: str, settings: Settings):
    """A boto3 client for ``service`` (``sagemaker``, ``sagemaker-runtime``, ``s3`` ...)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from botocore.config import Config

    hook = AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type=service, region_name=settings.aws_region,
                       config=Config(retries=RETRIES))
    return hook.get_conn()
