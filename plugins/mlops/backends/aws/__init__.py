"""The AWS implementations of the ports: SageMaker training, tuning (HPO), Model Registry,
endpoints, Autopilot (AutoML V2), batch transform, and the prod endpoint's data-quality check:
``monitor_model``'s own on the S3 capture (the default) or Model Monitor's schedule
(``monitoring.aws.data_quality``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.backends.backend import Backend
    from mlops.core.settings import Settings


def _stage_settings(settings: Settings, target) -> Settings | None:
    """``settings`` with a stage's connection, region and execution role; None when they are the
    project's own."""
    from dataclasses import replace

    stage_settings = replace(settings, aws_conn_id=target.aws_conn_id or settings.aws_conn_id,
                             aws_region=target.region or settings.aws_region,
                             sagemaker_role_arn=target.execution_role_arn or settings.sagemaker_role_arn)
    return None if stage_settings == settings else stage_settings


def stage_hosting(settings: Settings):
    """``target -> SageMakerHosting`` in a stage's account: the stage's connection, region and
    execution role (:class:`~mlops.backends.base.StageTarget`); None for a target that is the
    project's own connection, region and role (the backend's hosting serves it)."""
    from mlops.backends.aws.hosting import SageMakerHosting

    def hosting(target):
        stage_settings = _stage_settings(settings, target)
        return None if stage_settings is None else SageMakerHosting(stage_settings, account_id=target.account_id)

    return hosting


def stage_monitoring(settings: Settings):
    """``target -> SageMakerDataQualityMonitor`` in a stage's account (where its endpoint is, so
    the schedule can name it), with the stage's connection, region and execution role; None for
    the project's own (the backend's monitoring serves it)."""
    from mlops.backends.aws.model_monitor import SageMakerDataQualityMonitor

    def monitoring(target):
        stage_settings = _stage_settings(settings, target)
        return None if stage_settings is None else SageMakerDataQualityMonitor(stage_settings)

    return monitoring


def build(settings: Settings) -> Backend:
    from mlops.backends.aws.accounts import SageMakerStageAccess
    from mlops.backends.aws.automl import AutopilotAutoML
    from mlops.backends.aws.hosting import SageMakerHosting
    from mlops.backends.aws.model_monitor import SageMakerDataQualityMonitor
    from mlops.backends.aws.registry import SageMakerRegistry
    from mlops.backends.aws.training import SageMakerTrainer, SageMakerTuner
    from mlops.backends.aws.transform import SageMakerBatchTransform
    from mlops.backends.backend import Backend, BackendNotAvailable
    from mlops.ml.capture_monitor import CaptureDataQualityMonitor

    if not settings.sagemaker_role_arn:
        raise BackendNotAvailable("MLOPS_BACKEND=aws needs MLOPS_SAGEMAKER_ROLE (the SageMaker execution role ARN)")
    if not settings.data_uri.startswith("s3://"):
        raise BackendNotAvailable(f"MLOPS_BACKEND=aws needs MLOPS_DATA_URI=s3://..., got {settings.data_uri}")
    return Backend(
        name="aws",
        tuner=SageMakerTuner(settings),
        trainer=SageMakerTrainer(settings),
        registry=SageMakerRegistry(settings),
        hosting=SageMakerHosting(settings),
        automl=AutopilotAutoML(settings),
        transform=SageMakerBatchTransform(settings),
        region=settings.aws_region,
        stages=SageMakerStageAccess(settings),
        stage_hosting=stage_hosting(settings),
        monitoring=SageMakerDataQualityMonitor(settings),
        stage_monitoring=stage_monitoring(settings),
        own_monitoring=CaptureDataQualityMonitor(own_check_record(settings)),
    )


def own_check_record(settings: Settings) -> str:
    """Where the AWS backend's own check records its schedules: under the data root, beside the capture."""
    return f"{settings.data_uri.rstrip('/')}/monitoring/own-check/schedules.json"
