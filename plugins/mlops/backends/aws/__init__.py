"""The AWS implementations of the ports: SageMaker training, tuning (HPO), Model Registry,
endpoints, Autopilot (AutoML V2) and batch transform."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.backends import Backend
    from mlops.settings import Settings


def build(settings: Settings) -> Backend:
    from mlops.backends import Backend, BackendNotAvailable
    from mlops.backends.aws.automl import AutopilotAutoML
    from mlops.backends.aws.hosting import SageMakerHosting
    from mlops.backends.aws.registry import SageMakerRegistry
    from mlops.backends.aws.training import SageMakerTrainer, SageMakerTuner
    from mlops.backends.aws.transform import SageMakerBatchTransform

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
    )
