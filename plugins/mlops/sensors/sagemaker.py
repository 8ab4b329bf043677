"""Wait for a decision on a model package, wherever it is made.

:class:`ModelPackageApprovalSensor` reads ``ModelApprovalStatus`` through the Registry port, so
the same task waits on the local SQLite registry and on the SageMaker Model Registry. On AWS a
decision made in SageMaker Studio counts like one made in Airflow; with ``deferrable=True`` the
wait happens in the triggerer (:class:`~mlops.triggers.sagemaker_registry.ModelPackageApprovalTrigger`),
otherwise the sensor pokes, best in ``mode="reschedule"`` so no worker slot is held between pokes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

TRIGGER = "mlops.triggers.sagemaker_registry.ModelPackageApprovalTrigger"


def _default_deferrable() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


class ModelPackageApprovalSensor(BaseSensorOperator):
    """Succeed once the model package is Approved; a rejection ends the run cleanly.

    Returns (XCom) ``{"arn", "status", "approver", "reason"}``. A decision this project did not
    write itself (one made in SageMaker Studio) is added to the registry's approval history
    with the approver SageMaker names. On Rejected the task is skipped (downstream is skipped
    too), or fails with ``fail_on_rejection=True``.

    :param model_package_arn: the version to wait for (templated).
    :param fail_on_rejection: fail instead of skipping when the package is Rejected.
    :param deferrable: wait in the triggerer where the registry offers a trigger (SageMaker);
        the local registry is a file, polled by pokes.
    :param waiter_delay: seconds between checks in the triggerer.
    :param waiter_max_attempts: checks in the triggerer before the sensor times out.
    """

    template_fields: Sequence[str] = ("model_package_arn",)

    def __init__(self, *, model_package_arn: str, fail_on_rejection: bool = False,
                 deferrable: bool | None = None, waiter_delay: int = 60, waiter_max_attempts: int = 1440,
                 **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.model_package_arn = model_package_arn
        self.fail_on_rejection = fail_on_rejection
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    @staticmethod
    def _registry():
        from mlops.backends import get_backend

        return get_backend().registry

    def execute(self, context):
        if self.deferrable:
            registry = self._registry()
            trigger = registry.approval_trigger(self.model_package_arn, waiter_delay=self.waiter_delay,
                                                waiter_max_attempts=self.waiter_max_attempts)
            if trigger is not None:
                done = self.poke(context)
                if done.is_done:
                    return done.xcom_value
                from airflow.sdk.module_loading import import_string

                self.defer(trigger=import_string(trigger["classpath"])(**trigger["kwargs"]),
                           method_name="execute_complete")
        return super().execute(context)

    def poke(self, context) -> PokeReturnValue:
        from mlops.backends.base import APPROVED, REJECTED

        version = self._registry().get(self.model_package_arn)
        self.log.info("%s is %s", version.arn, version.status)
        if version.status == APPROVED:
            return PokeReturnValue(is_done=True, xcom_value=self._decided(version))
        if version.status == REJECTED:
            self._rejected(version)
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context, event: dict[str, Any] | None = None):
        from airflow.sdk.exceptions import AirflowException

        from mlops.backends.base import APPROVED, REJECTED

        event = event or {}
        version = self._registry().get(self.model_package_arn)
        if event.get("status") == "success" and version.status == APPROVED:
            return self._decided(version)
        if event.get("status") == "rejected" or version.status == REJECTED:
            self._rejected(version)
        raise AirflowException(f"waiting for a decision on {self.model_package_arn} failed: "
                               f"{event.get('message', event)}")

    def _rejected(self, version):
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        decision = self._decided(version)
        message = f"{version.arn} was rejected by {decision['approver']}: {decision['reason']}"
        if self.fail_on_rejection:
            raise AirflowFailException(message)
        raise AirflowSkipException(message)

    def _decided(self, version) -> dict[str, Any]:
        """The decision, added to the approval history when it was made outside this project."""
        registry = self._registry()
        approver = version.approver or "unknown"
        reason = version.approval_reason or f"{version.status} outside Airflow"
        history = registry.approval_history(version.arn)
        if history[:1] and history[0]["status"] == version.status:
            approver, reason = history[0]["approver"], history[0]["reason"]
        else:
            registry.record_external_decision(version.arn, version.status, approver, reason,
                                              {"observed_by": self.task_id, "source": "model registry"})
        self.log.info("%s %s by %s: %s", version.arn, version.status, approver, reason)
        return {"arn": version.arn, "status": version.status, "approver": approver, "reason": reason}
