"""Deferrable wait for a decision on a SageMaker model package (``ModelApprovalStatus``).

The amazon provider has no waiter for model package approval. This module adds one the
provider's way: the waiting rules are a waiter model (:data:`mlops.hooks.sagemaker.APPROVAL_WAITER_MODEL`: Approved is success,
Rejected is a terminal failure, a missing package is an error, PendingManualApproval keeps
waiting) and the trigger is an :class:`~airflow.providers.amazon.aws.triggers.base.AwsBaseWaiterTrigger`.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.triggers.base import TriggerEvent

from mlops.hooks.sagemaker import APPROVAL_STATUS_QUERIES, APPROVAL_WAITER_NAME, ModelPackageRegistryHook


class ModelPackageApprovalTrigger(AwsBaseWaiterTrigger):
    """Wait in the triggerer until a model package is Approved (e.g. in SageMaker Studio).

    Emits ``{"status": "success", "model_package_arn": ...}``; ``{"status": "rejected", ...,
    "message": <ApprovalDescription>}`` when someone rejects it; ``timeout`` or ``error`` with a
    message otherwise.

    :param model_package_arn: the versioned model package.
    :param waiter_delay: seconds between ``DescribeModelPackage`` calls.
    :param waiter_max_attempts: calls before giving up (default: a day at 60 s).
    :param aws_conn_id: Airflow AWS connection.
    :param region_name: region of the registry.
    :param verify: SSL verification, as for the hook.
    :param botocore_config: botocore client configuration, as for the hook.
    """

    aws_hook_class = ModelPackageRegistryHook

    def __init__(
        self,
        model_package_arn: str,
        waiter_delay: int = 60,
        waiter_max_attempts: int = 1440,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ):
        self.model_package_arn = model_package_arn
        super().__init__(
            serialized_fields={"model_package_arn": model_package_arn},
            waiter_name=APPROVAL_WAITER_NAME,
            waiter_args={"ModelPackageName": model_package_arn},
            failure_message=f"model package {model_package_arn} was not approved",
            status_message=f"model package {model_package_arn} awaits a decision",
            status_queries=APPROVAL_STATUS_QUERIES,
            return_key="model_package_arn",
            return_value=model_package_arn,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )

    def _event_from_exception(self, error: Exception) -> TriggerEvent:
        arn = self.model_package_arn
        if isinstance(error, WaiterTerminalFailure):
            response = error.last_response or {}
            if response.get("ModelApprovalStatus") == "Rejected":
                return TriggerEvent({"status": "rejected", "model_package_arn": arn,
                                     "message": response.get("ApprovalDescription") or "rejected"})
            detail = response.get("Error", {}).get("Message") or response.get("ModelPackageStatus") or str(error)
            return TriggerEvent({"status": "error", "model_package_arn": arn,
                                 "message": f"model package {arn}: {detail}"})
        if isinstance(error, WaiterMaxAttemptsError):
            return TriggerEvent({"status": "timeout", "model_package_arn": arn,
                                 "message": f"model package {arn} still undecided after {self.attempts} checks "
                                            f"{self.waiter_delay} s apart"})
        return super()._event_from_exception(error)
