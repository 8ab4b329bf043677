"""The SageMaker hooks this project adds to the amazon provider's: waiters the provider lacks.

The provider has no waiter for an AutoML V2 job (``DescribeAutoMLJobV2``) or for a decision on a
model package (``ModelApprovalStatus``). Both are added the provider's way, as waiter models
(data, not sleep loops) behind :class:`SageMakerHook` subclasses, so the AWS backend (blocking
waits) and the triggers (deferred waits) use the same rules:

* :class:`SageMakerAutoMLHook`: ``AutoMLJobV2Complete`` (``plugins/mlops/waiters/sagemaker_automl.json``:
  Completed is success, Failed and Stopped are terminal failures, Stopping keeps waiting);
* :class:`ModelPackageRegistryHook`: ``ModelPackageApproved`` (Approved is success, Rejected a
  terminal failure, a missing package an error, PendingManualApproval keeps waiting).
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

AUTOML_WAITER_MODEL = Path(__file__).resolve().parents[1] / "waiters" / "sagemaker_automl.json"
AUTOML_WAITER_NAME = "AutoMLJobV2Complete"
AUTOML_STATUS_QUERIES = ["AutoMLJobStatus", "AutoMLJobSecondaryStatus"]


class SageMakerAutoMLHook(SageMakerHook):
    """:class:`SageMakerHook` whose custom waiters are this project's AutoML V2 waiter model.

    ``get_waiter("AutoMLJobV2Complete")`` returns a botocore waiter (or an aiobotocore one with
    ``deferrable=True``) on ``DescribeAutoMLJobV2``; pass ``client=`` to wait with another client.
    """

    @cached_property
    def waiter_path(self) -> Path:
        return AUTOML_WAITER_MODEL


def terminal_message(job_name: str, response: dict[str, Any]) -> tuple[str, str]:
    """``(status, message)`` for the last ``DescribeAutoMLJobV2`` answer of a job that ended badly."""
    if isinstance(response.get("Error"), dict):
        error = response["Error"]
        return "error", f"AutoML job {job_name}: {error.get('Code')}: {error.get('Message')}"
    status = response.get("AutoMLJobStatus", "unknown")
    reason = response.get("FailureReason") or "no FailureReason given"
    secondary = response.get("AutoMLJobSecondaryStatus")
    detail = f" ({secondary})" if secondary and secondary != status else ""
    return status.lower(), f"AutoML job {job_name} {status}{detail}: {reason}"


APPROVAL_WAITER_NAME = "ModelPackageApproved"
APPROVAL_WAITER_MODEL: dict[str, Any] = {
    "version": 2,
    "waiters": {
        APPROVAL_WAITER_NAME: {
            "operation": "DescribeModelPackage",
            "delay": 60,
            "maxAttempts": 1440,
            "description": "Wait until a model package is Approved; Rejected is a terminal failure.",
            "acceptors": [
                {"matcher": "path", "argument": "ModelApprovalStatus", "expected": "Approved", "state": "success"},
                {"matcher": "path", "argument": "ModelApprovalStatus", "expected": "Rejected", "state": "failure"},
                {"matcher": "path", "argument": "ModelPackageStatus", "expected": "Failed", "state": "failure"},
                {"matcher": "error", "expected": "ValidationException", "state": "failure"},
            ],
        }
    },
}
APPROVAL_STATUS_QUERIES = ["ModelApprovalStatus", "ApprovalDescription"]


class ModelPackageRegistryHook(SageMakerHook):
    """:class:`SageMakerHook` that also knows the ``ModelPackageApproved`` waiter.

    ``get_waiter("ModelPackageApproved")`` returns a botocore waiter on ``DescribeModelPackage``
    (an aiobotocore one with ``deferrable=True``); every other name is the provider's.
    """

    def get_waiter(self, waiter_name: str, parameters: dict[str, str] | None = None,
                   config_overrides: dict[str, Any] | None = None, deferrable: bool = False, client=None):
        if waiter_name != APPROVAL_WAITER_NAME:
            return super().get_waiter(waiter_name, parameters, config_overrides, deferrable, client)
        from airflow.providers.amazon.aws.waiters.base_waiter import BaseBotoWaiter

        if deferrable and client is None:
            raise ValueError("client must be provided for a deferrable waiter.")
        model = copy.deepcopy(APPROVAL_WAITER_MODEL)
        if config_overrides:
            model["waiters"][waiter_name].update(config_overrides)
        return BaseBotoWaiter(client=client or self.conn, model_config=model, deferrable=deferrable).waiter(waiter_name)
