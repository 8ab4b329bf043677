"""boto3 clients for the AWS ports, built from the project's Airflow AWS connection.

Every client retries throttling and transient faults with botocore's adaptive retry mode
(exponential backoff with jitter, client-side rate limiting); once the budget is spent the
ClientError reaches the caller with the service's own message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


class AwsClients:
    """Mixin for an AWS port: its boto3 clients, built on first use by :func:`client`.

    ``__init__`` calls :meth:`_use_clients` with the clients it was given (tests hand in
    Stubber-wrapped or moto clients); the others are made from the project's connection.
    """

    settings: Settings

    def _use_clients(self, **given: Any) -> None:
        """``given``: ``sagemaker=``, ``s3=``, ``cloudwatch=``, ``sagemaker_runtime=`` (None: build)."""
        self._clients = {name.replace("_", "-"): value for name, value in given.items() if value is not None}

    def aws_client(self, service: str):
        if service not in self._clients:
            self._clients[service] = client(service, self.settings)
        return self._clients[service]

    @property
    def sagemaker(self):
        return self.aws_client("sagemaker")

    @property
    def s3(self):
        return self.aws_client("s3")
