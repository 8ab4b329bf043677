"""The bundle of ports one backend provides (:class:`Backend`), built by ``mlops.backends.aws``
or ``mlops.backends.local`` and picked by :func:`mlops.backends.get_backend`.

Its own module so that the implementations can build it without importing the selector that
imports them (no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops.backends.base import (
        AutoML,
        BatchTransform,
        DataQualityMonitor,
        Hosting,
        Registry,
        StageAccess,
        StageTarget,
        Trainer,
        Tuner,
    )


class BackendNotAvailable(RuntimeError):
    """The configured backend has no implementation of a port."""


@dataclass(frozen=True)
class Backend:
    name: str
    tuner: Tuner
    trainer: Trainer
    registry: Registry
    hosting: Hosting
    automl: AutoML
    transform: BatchTransform
    region: str = ""
    stages: StageAccess | None = None
    stage_hosting: Callable[[StageTarget], Hosting | None] | None = None  # hosting in a stage's account
    monitoring: DataQualityMonitor | None = None  # the prod endpoint's data-quality schedule
    stage_monitoring: Callable[[StageTarget], DataQualityMonitor | None] | None = None  # in a stage's account
    own_monitoring: DataQualityMonitor | None = None  # monitor_model's own check, where a managed one exists too

    def hosting_for(self, target: StageTarget | dict[str, Any] | None) -> Hosting:
        """The hosting port in ``target``'s account (a :class:`~mlops.backends.base.StageTarget`
        or its dict from XCom); :attr:`hosting` for ``None``, a backend without stages, or a
        target that is the project's own connection."""
        from mlops.backends.base import StageTarget

        if not target or self.stage_hosting is None:
            return self.hosting
        target = target if isinstance(target, StageTarget) else StageTarget.from_dict(target)
        return self.stage_hosting(target) or self.hosting

    def monitoring_for(self, target: StageTarget | dict[str, Any] | None,
                       managed: bool = False) -> DataQualityMonitor | None:
        """The data-quality monitoring port for the endpoint of ``target``.

        Not ``managed`` (the default) and the backend has :attr:`own_monitoring` (AWS): that,
        ``monitor_model``'s own check on the capture, which lands in the data bucket whatever
        account the endpoint is in, so it is read with the project's own connection. Otherwise
        (``managed``: Model Monitor on AWS; a backend whose only check is its own: local) the port in
        ``target``'s account (the account of the endpoint it monitors); :attr:`monitoring` as for
        :meth:`hosting_for`."""
        from mlops.backends.base import StageTarget

        if not managed and self.own_monitoring is not None:
            return self.own_monitoring
        if not target or self.stage_monitoring is None:
            return self.monitoring
        target = target if isinstance(target, StageTarget) else StageTarget.from_dict(target)
        return self.stage_monitoring(target) or self.monitoring

    def resource_url(self, kind: str, name: str, local_uri: str | None = None) -> str | None:
        """Where a person looks at a resource: the SageMaker console on AWS, else ``local_uri``."""
        from mlops.core.naming import console_url

        return console_url(self.region, kind, name) if self.name == "aws" else local_uri
