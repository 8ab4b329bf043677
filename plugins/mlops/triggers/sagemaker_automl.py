"""Deferrable wait for a SageMaker Autopilot (AutoML V2) job.

The amazon provider waits for AutoML V1 jobs only, by polling ``DescribeAutoMLJob`` in a sleep
loop (``SageMakerHook.create_auto_ml_job``); it has no trigger and no waiter for
``DescribeAutoMLJobV2``. This module adds both, the provider's way: the waiting rules are a
custom waiter model (``plugins/mlops/waiters/sagemaker_automl.json``: Completed is success,
Failed and Stopped are terminal failures, Stopping keeps waiting until Stopped) and the trigger
is an :class:`~airflow.providers.amazon.aws.triggers.base.AwsBaseWaiterTrigger`, whose ``on_kill``
stops the job when a person kills the deferred task.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.triggers.base import TriggerEvent

from mlops.hooks.sagemaker import (
    AUTOML_STATUS_QUERIES,
    AUTOML_WAITER_NAME,
    SageMakerAutoMLHook,
    terminal_message,
)


class SageMakerAutoMLJobV2Trigger(AwsBaseWaiterTrigger):
    """Wait in the triggerer until an AutoML V2 job is Completed; fail on Failed or Stopped.

    Emits ``{"status": "success", "job_name": ...}``, or ``{"status": "failed" | "stopped" |
    "timeout" | "error", "job_name": ..., "message": ...}`` where the message names the job,
    its status and the job's ``FailureReason``.

    :param job_name: the AutoML V2 job.
    :param waiter_delay: seconds between ``DescribeAutoMLJobV2`` calls.
    :param waiter_max_attempts: calls before giving up (``timeout``).
    :param aws_conn_id: Airflow AWS connection.
    :param region_name: region of the job.
    :param verify: SSL verification, as for the hook.
    :param botocore_config: botocore client configuration, as for the hook.
    """

    aws_hook_class = SageMakerAutoMLHook

    def __init__(
        self,
        job_name: str,
        waiter_delay: int = 60,
        waiter_max_attempts: int = 1440,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ):
        self.job_name = job_name
        super().__init__(
            serialized_fields={"job_name": job_name},
            waiter_name=AUTOML_WAITER_NAME,
            waiter_args={"AutoMLJobName": job_name},
            failure_message=f"AutoML job {job_name} did not complete",
            status_message=f"AutoML job {job_name} is still running",
            status_queries=AUTOML_STATUS_QUERIES,
            return_key="job_name",
            return_value=job_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )

    async def on_kill(self) -> None:
        """Stop the job (``StopAutoMLJob`` stops V2 jobs too) when a person kills the deferred
        task; a job that ended meanwhile is left as it is, errors are logged, never raised."""
        from botocore.exceptions import ClientError

        async with await self.hook().get_async_conn() as client:
            try:
                await client.stop_auto_ml_job(AutoMLJobName=self.job_name)
            except ClientError as err:
                self.log.warning("AutoML job %s was not stopped: %s", self.job_name, err)
                return
        self.log.warning("AutoML job %s: stop requested (the deferred task was killed)", self.job_name)

    def _event_from_exception(self, error: Exception) -> TriggerEvent:
        if isinstance(error, WaiterTerminalFailure):
            status, message = terminal_message(self.job_name, error.last_response or {})
            return TriggerEvent({"status": status, "job_name": self.job_name, "message": message})
        if isinstance(error, WaiterMaxAttemptsError):
            return TriggerEvent({
                "status": "timeout", "job_name": self.job_name,
                "message": f"AutoML job {self.job_name} still running after {self.attempts} checks "
                           f"{self.waiter_delay} s apart: {error}",
            })
        return super()._event_from_exception(error)
