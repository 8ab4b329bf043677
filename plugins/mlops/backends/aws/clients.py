"""boto3 clients for the AWS ports, built from the project's Airflow AWS connection.

Every client retries throttling and transient faults with botocore's adaptive retry mode
(exponential backoff with jitter, client-side rate limiting); once the budget is spent the
ClientError reaches the caller with the service's own message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mlops.core.settings import Settings

RETRIES = {"max_attempts": 10, "mode": "adaptive"}
NOT_FOUND_CODES = ("ResourceNotFound", "ResourceNotFoundException")
NOT_FOUND_MESSAGES = ("could not find", "cannot find", "not found", "does not exist", "not exist")

T = TypeVar("T")


def client(service: str, settings: Settings, session=None):
    """A boto3 client for ``service`` (``sagemaker``, ``sagemaker-runtime``, ``s3`` ...) of the
    connection ``settings.aws_conn_id``; made from ``session`` (:func:`session`) when given, so the
    clients of one port share one assumed role."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from botocore.config import Config

    hook = AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type=service, region_name=settings.aws_region,
                       config=Config(retries=RETRIES))
    if session is None:
        return hook.get_conn()
    return session.client(service, region_name=settings.aws_region, config=hook.config, verify=hook.verify,
                          endpoint_url=hook.conn_config.get_service_endpoint_url(service))


def session(settings: Settings):
    """The boto3 session of the connection ``settings.aws_conn_id``, as the amazon provider makes
    it: with the connection's ``role_arn`` assumed (one ``sts:AssumeRole``; it refreshes itself)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=settings.aws_conn_id, region_name=settings.aws_region).get_session(
        region_name=settings.aws_region)


def is_not_found(error: BaseException) -> bool:
    """Whether ``error`` is a botocore ``ClientError`` saying the resource does not exist.

    SageMaker answers ``ResourceNotFound`` for some resources (tuning jobs, AutoML jobs) and
    ``ValidationException`` ("Could not find ...", "... not found") for others (models, endpoints,
    training and transform jobs, model packages).
    """
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return code in NOT_FOUND_CODES or (
        code == "ValidationException" and any(text in message for text in NOT_FOUND_MESSAGES))


def or_none(call: Callable[[], T]) -> T | None:
    """``call()``, or None when it says the resource does not exist; any other error is raised.

    Pass the client call as a lambda, so it stays at its call site: ``or_none(lambda:
    self.sagemaker.describe_model(ModelName=name))``.
    """
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as err:
        if is_not_found(err):
            return None
        raise


def stop_quietly(call: Callable[[], Any], what: str) -> None:
    """Make a ``Stop*`` ``call`` for ``what`` (an operator's ``on_kill``): an error, e.g. SageMaker's
    ``ValidationException`` for a job that already ended, is logged, never raised. Pass the call
    as a lambda, as for :func:`or_none`."""
    import logging

    from botocore.exceptions import ClientError

    log = logging.getLogger(__name__)
    try:
        call()
    except ClientError as err:
        log.warning("%s was not stopped: %s", what, err)
        return
    log.warning("%s: stop requested (the task was killed)", what)


class AwsClients:
    """Mixin for an AWS port: its boto3 clients, built on first use by :func:`client`.

    ``__init__`` calls :meth:`_use_clients` with the clients it was given (tests hand in
    Stubber-wrapped or moto clients); the others are made from the project's connection.
    """

    settings: Settings

    def _use_clients(self, **given: Any) -> None:
        """``given``: ``sagemaker=``, ``s3=``, ``cloudwatch=``, ``sagemaker_runtime=`` (None: build).

        Every SageMaker client checks its requests against SageMaker's limits before it sends
        them (:func:`mlops.backends.limits.strict_requests`), whoever built it."""
        from mlops.backends.limits import strict_requests

        self._clients = {name.replace("_", "-"): strict_requests(value) for name, value in given.items()
                         if value is not None}

    def aws_client(self, service: str):
        from mlops.backends.limits import strict_requests

        if service not in self._clients:
            if getattr(self, "_session", None) is None:
                self._session = session(self.settings)
            self._clients[service] = strict_requests(client(service, self.settings, self._session))
        return self._clients[service]

    @property
    def sagemaker(self):
        return self.aws_client("sagemaker")

    @property
    def s3(self):
        return self.aws_client("s3")
