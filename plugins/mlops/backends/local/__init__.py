"""Local twins of every port: real training, tuning, registry, serving and batch prediction
on this machine, with no AWS account (and monitor_model's own check as the data-quality schedule)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.backends.backend import Backend
    from mlops.core.settings import Settings


def stage_hosting(settings: Settings):
    """``target -> LocalHosting`` acting in a stage's account."""
    from mlops.backends.local.hosting import LocalHosting

    return lambda target: LocalHosting(settings, account=target.account_id)


def build(settings: Settings) -> Backend:
    from mlops.backends.backend import Backend
    from mlops.backends.local.accounts import LocalStageAccess
    from mlops.backends.local.automl import FlamlAutoML
    from mlops.backends.local.hosting import LocalHosting
    from mlops.backends.local.monitoring import LocalDataQualityMonitor
    from mlops.backends.local.registry import SQLiteRegistry
    from mlops.backends.local.training import LocalTrainer, OptunaTuner
    from mlops.backends.local.transform import LocalBatchTransform

    automl = FlamlAutoML(settings.state_dir / "automl")
    return Backend(
        name="local",
        tuner=OptunaTuner(),
        trainer=LocalTrainer(),
        registry=SQLiteRegistry(settings.registry_db),
        hosting=LocalHosting(settings),
        automl=automl,
        transform=LocalBatchTransform(automl),
        stages=LocalStageAccess(),
        stage_hosting=stage_hosting(settings),
        monitoring=LocalDataQualityMonitor(settings.state_dir),
    )
