"""Deferrable waits for SageMaker training, tuning and transform jobs that stop the job on kill.

The amazon provider's ``SageMakerTrigger`` waits for a job and fires when it ends, but when a
person kills the deferred task (mark failed, clear, mark success) the job runs on, and bills.
Airflow calls a trigger's ``on_kill`` in that case only (not on a triggerer restart, a timeout or
the job's end), so :class:`SageMakerJobTrigger` is the provider's trigger with an ``on_kill`` that
stops the job.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger


class SageMakerJobTrigger(SageMakerTrigger):
    """The provider's :class:`SageMakerTrigger` (same arguments, waiters and events) whose
    ``on_kill`` stops the training, tuning or transform job (an endpoint update cannot be stopped).
    A job that ended meanwhile is left as it is; errors are logged, never raised."""

    async def on_kill(self) -> None:
        from botocore.exceptions import ClientError

        kind = self.job_type.lower()
        if kind not in ("training", "tuning", "transform"):
            return
        async with await self.hook().get_async_conn() as client:
            try:
                if kind == "training":
                    await client.stop_training_job(TrainingJobName=self.job_name)
                elif kind == "tuning":
                    await client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=self.job_name)
                else:
                    await client.stop_transform_job(TransformJobName=self.job_name)
            except ClientError as err:
                self.log.warning("%s job %s was not stopped: %s", kind, self.job_name, err)
                return
        self.log.warning("%s job %s: stop requested (the deferred task was killed)", kind, self.job_name)
