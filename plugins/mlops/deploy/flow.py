"""Deployment logic that is not an operator: deploy-and-record, deployment history, rollback.

The prod endpoint's options (capture, blue/green, alarms) are :mod:`mlops.deploy.endpoint_options`.

Everything here works through the ports (:class:`~mlops.backends.base.Registry`,
:class:`~mlops.backends.base.Hosting`), so it is the same on both backends:

* :func:`plan_deployment` resolves the package the deploy rules allow and names the spec;
  :func:`deploy_version` deploys it (blocking) and records the attempt, failing on a silent
  rollback (the endpoint InService on another config); :func:`start_deployment` and
  :func:`complete_deployment` are the same in two halves, for an operator that defers between.
* :func:`previous_approved`, :func:`version_in_stage_at` and :func:`rollback` re-point a stage
  to the Approved version before the one it serves, through the same checks as any deploy.
* :func:`package_for_run` says which version a deploy run deploys: the one it was given or
  announced, never "whatever is newest when the task runs".
* :func:`prepare_stages` resolves the account each stage deploys into and checks, before
  anything is deployed, that each stage may deploy the package there (:class:`~mlops.backends.base.StageAccess`,
  ``Hosting.check_package``); records keep the account, and a rollback looks only at its account's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.backends.base import APPROVED, FAILED, ROLLED_BACK, SUCCEEDED, Deployment
from mlops.deploy.rules import DeploymentRefused, resolve_deployable

if TYPE_CHECKING:
    from mlops.backends.base import Endpoint, EndpointSpec, JobHandle, ModelVersion, Registry, StageTarget


class SilentRollback(RuntimeError):
    """The endpoint is back on a previous endpoint config: the update did not take."""


# ---------------------------------------------------------------- deploy and record
def _now() -> str:
    return datetime.now(UTC).isoformat()


def deploy_version(registry: Registry, hosting, package: dict[str, Any], spec: EndpointSpec, stage: str,
                   detail: dict[str, Any] | None = None, account: str = "") -> Endpoint:
    """Deploy ``spec`` (for the already-resolved ``package``), check it took, and record it.

    The endpoint must end up on ``spec.config_name``: InService on any other config is a
    silent rollback and raises :class:`SilentRollback` (recorded ``rolled_back``); any other
    error is recorded ``failed`` and re-raised. ``detail`` is added to the record, with the
    names the backend gives the endpoint and its config (:meth:`~mlops.backends.base.Hosting.named`);
    ``account`` is the account ``hosting`` acts in.
    """
    spec = hosting.named(spec)
    return finish_deployment(registry, package, spec, stage, lambda: hosting.deploy(spec), detail, account)


def plan_deployment(registry: Registry, hosting, requested: dict[str, Any],
                    build_spec: Callable[[dict[str, Any]], EndpointSpec]) -> tuple[dict[str, Any], EndpointSpec]:
    """``(package, spec)`` of a deploy: the package the deploy rules allow
    (:func:`~mlops.deploy.rules.resolve_deployable` of ``requested``'s ``group`` and ``arn``), and
    ``build_spec(package)`` serving exactly that package, under the names ``hosting`` gives it.

    :raises ~mlops.deploy.rules.DeploymentRefused: not Approved, or the artifact changed.
    """
    package = resolve_deployable(registry, requested["group"], requested.get("arn"))
    spec = replace(build_spec(package), model_uri=package["model_uri"], sha256=package["sha256"],
                   model_package_arn=package["arn"])
    return package, hosting.named(spec)


def start_deployment(registry: Registry, hosting, package: dict[str, Any], spec: EndpointSpec, stage: str,
                     account: str = "") -> JobHandle:
    """Submit ``spec`` (:meth:`~mlops.backends.base.Hosting.submit`) and return the handle to wait
    for or defer on; a submit that fails is recorded ``failed`` and re-raised. Finish with
    :func:`complete_deployment`."""
    try:
        return hosting.submit(spec)
    except Exception as err:
        record_attempt(registry, package, spec, stage, FAILED, {"error": str(err)}, account)
        raise


def complete_deployment(registry: Registry, hosting, package: dict[str, Any], spec: EndpointSpec, handle: JobHandle,
                        stage: str, event: dict[str, Any] | None = None, account: str = "") -> Endpoint:
    """Collect the endpoint :func:`start_deployment` started, check it runs ``spec``'s config and
    record the attempt (:func:`finish_deployment`). ``event`` is the trigger's, after a deferral:
    anything but success fails the deploy (recorded).

    :raises SilentRollback: the endpoint is back on another config.
    """
    from mlops.backends.base import Endpoint

    def collect() -> Endpoint:
        if event is not None and event.get("status") != "success":
            raise RuntimeError(f"endpoint {spec.endpoint_name} did not come InService: {event.get('message', event)}")
        return Endpoint(**hosting.collect(handle))

    return finish_deployment(registry, package, spec, stage, collect, account=account)


def finish_deployment(registry: Registry, package: dict[str, Any], spec: EndpointSpec, stage: str,
                      obtain: Callable[[], Endpoint], detail: dict[str, Any] | None = None,
                      account: str = "") -> Endpoint:
    """Get the endpoint from ``obtain`` (a blocking deploy, or the collect after a deferral), fail
    on a silent rollback, and record the attempt in the registry (``account``: where the endpoint
    is); see :func:`deploy_version`. ``spec`` carries the backend's names (``hosting.named(spec)``),
    which the endpoint reports back."""
    outcome, recorded = FAILED, dict(detail or {})
    try:
        endpoint = obtain()
        if endpoint.config_name != spec.config_name:
            outcome = ROLLED_BACK
            raise SilentRollback(
                f"endpoint {spec.endpoint_name} is {endpoint.status} on config {endpoint.config_name}, "
                f"not the intended {spec.config_name}: the update was rolled back"
            )
        outcome = SUCCEEDED
        recorded.update(endpoint.to_dict())
        return endpoint
    except Exception as err:
        recorded["error"] = str(err)
        raise
    finally:
        record_attempt(registry, package, spec, stage, outcome, recorded, account)


def record_attempt(registry: Registry, package: dict[str, Any], spec: EndpointSpec, stage: str, outcome: str,
                   detail: dict[str, Any], account: str = "") -> None:
    """Append one attempt to the deployment history (e.g. a submit that failed before any wait)."""
    registry.record_deployment(Deployment(
        arn=package["arn"], stage=stage, endpoint_name=spec.endpoint_name, endpoint_config=spec.config_name,
        outcome=outcome, deployed_at=_now(), detail=detail, account=account,
    ))


# ---------------------------------------------------------------- history and rollback
def _utc(value: datetime | str) -> datetime:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def version_in_stage_at(registry: Registry, stage: str, at: datetime | str | None = None,
                        account: str | None = None) -> ModelVersion | None:
    """The version serving ``stage`` (in ``account``, when given) at ``at`` (default: now): that of
    the newest succeeded deployment at or before ``at``. Failed, rolled-back and rejected attempts
    left the previous version serving. None when nothing had been deployed."""
    at_utc = _utc(at) if at is not None else datetime.now(UTC)
    for deployment in registry.deployments(stage, account):  # newest first
        if deployment.outcome == SUCCEEDED and _utc(deployment.deployed_at) <= at_utc:
            return registry.get(deployment.arn)
    return None


def approved_at(registry: Registry, arn: str) -> datetime | None:
    """When ``arn`` was last approved (its newest decision to Approved), or None if never."""
    for decision in registry.approval_history(arn):  # newest first
        if decision["status"] == APPROVED:
            return _utc(decision["decided_at"])
    return None


def approved_as_of(registry: Registry, group: str, moment: datetime) -> ModelVersion | None:
    """The newest version of ``group`` that is Approved and was approved at or before ``moment``."""
    for version in registry.list_versions(group, status=APPROVED):  # newest first
        when = approved_at(registry, version.arn)
        if when is not None and when <= _utc(moment):
            return version
    return None


def package_for_run(registry: Registry, group: str, context: dict[str, Any]) -> str:
    """The model package ARN a deploy run deploys.

    In order: the run's ``model_package_arn`` Param; the version the triggering
    ``<group>_approved`` Asset event announced; the newest version approved at or before the
    run's logical date (or ``run_after``), so that clearing the run later deploys the same one.

    :raises DeploymentRefused: nothing of ``group`` had been approved by then.
    """
    from mlops.core.assets import approved_model
    from mlops.core.runs import announced, run_moment

    given = (context.get("params") or {}).get("model_package_arn")
    if given:
        return given
    event = announced(context, approved_model(group))
    if event and event.get("model_package_arn"):
        return event["model_package_arn"]
    moment = run_moment(context)
    version = approved_as_of(registry, group, moment)
    if version is None:
        raise DeploymentRefused(f"model package group {group!r} had no Approved version at {moment.isoformat()}")
    return version.arn


def previous_approved(registry: Registry, group: str, current_arn: str) -> ModelVersion | None:
    """The newest Approved version of ``group`` older than ``current_arn`` (lower version)."""
    current = registry.get(current_arn)
    older = [v for v in registry.list_versions(group, status=APPROVED) if v.version < current.version]
    return max(older, key=lambda v: v.version, default=None)


def rollback_plan(registry: Registry, hosting, group: str, stage: str,
                  target: StageTarget | None = None) -> tuple[ModelVersion, dict[str, Any]]:
    """``(the version serving stage now, the package to roll back to)``: the newest Approved version
    older than the one ``stage`` serves (in ``target``'s account, when given), through the same
    checks as any deploy (Approved, digest unchanged, and, in another account than the registry's,
    :meth:`~mlops.backends.base.Hosting.check_package` from there with ``hosting``). Raises
    ``DeploymentRefused`` when there is nothing to go back to."""

    account = target.account_id if target is not None else None
    current = version_in_stage_at(registry, stage, account=account)
    if current is None:
        where = f" in account {account}" if account else ""
        raise DeploymentRefused(f"nothing has been deployed to {stage}{where}: there is nothing to roll back")
    previous = previous_approved(registry, group, current.arn)
    if previous is None:
        raise DeploymentRefused(
            f"{stage} serves {current.arn}; group {group!r} has no older Approved version to roll back to"
        )
    package = resolve_deployable(registry, group, previous.arn)
    if target is not None and target.cross_account:
        hosting.check_package(package)
    return current, package


def rollback(registry: Registry, hosting, group: str, stage: str, spec: EndpointSpec,
             target: StageTarget | None = None,
             plan: tuple[ModelVersion, dict[str, Any]] | None = None) -> Endpoint:
    """Re-point ``stage`` (its endpoint in ``target``'s account, when given) to the Approved
    version before the one it serves now (:func:`rollback_plan`, unless ``plan`` is given);
    ``hosting`` acts in that account.

    :func:`deploy_version` deploys ``spec`` with the target's artifact and records it with
    ``detail.rollback_from``. Raises ``DeploymentRefused`` when there is nothing to go back to.
    """
    current, package = plan or rollback_plan(registry, hosting, group, stage, target)
    spec = replace(spec, model_uri=package["model_uri"], sha256=package["sha256"], model_package_arn=package["arn"])
    account = target.account_id if target is not None else ""
    return deploy_version(registry, hosting, package, spec, stage,
                          detail={"rollback_from": current.arn, "rollback_to": package["arn"]}, account=account)


# ---------------------------------------------------------------- stages in accounts
def prepare_stages(backend, config, package: dict[str, Any], endpoints: dict[str, str],
                   config_names: dict[str, str], alarm_names: list[str]) -> dict[str, dict[str, Any]]:
    """Resolve where each stage deploys and prove, before anything is deployed, that it can.

    For each stage of ``endpoints`` (``{stage: endpoint name}``): its account, region, connection
    and execution role (:meth:`~mlops.backends.base.StageAccess.resolve`). Then the registry
    shares ``package``'s group with the stages in other accounts, and each stage checks from its
    own account that its role may make every call of the deploy (names from ``config_names``;
    prod also the rollback ``alarm_names``), and that it can read ``package`` (Approved, same
    digest) and its artifact. Raises naming stage, account, role and action.

    :return: ``{stage: StageTarget dict}`` for the stage's tasks (through XCom).
    """
    from mlops.core.config import stage_target

    targets = {stage: backend.stages.resolve(stage_target(config, stage)) for stage in endpoints}
    if any(target.cross_account for target in targets.values()):
        backend.registry.share_group(package["group"], list(targets.values()))
    for stage, target in targets.items():
        backend.stages.check_permissions(target, endpoints[stage], config_names[stage], package,
                                         alarm_names if stage == "prod" else [])
        if target.cross_account:
            backend.hosting_for(target).check_package(package)
    return {stage: target.to_dict() for stage, target in targets.items()}


# ---------------------------------------------------------------- what approvers compare
def compare_with_serving(registry: Registry, config, candidate: dict[str, Any], holdout_uri: str | None,
                         account: str | None, stage: str = "prod") -> dict[str, Any]:
    """The candidate's holdout metrics next to the version serving ``stage`` (in ``account``, the
    stage's: on AWS, prod's own account) scored on the same holdout, for an approval page.

    :param candidate: the candidate's holdout metrics (``holdout_roc_auc``, ...).
    :param holdout_uri: the candidate's holdout rows; None (a version registered before holdouts
        were recorded) leaves the serving version unscored, said so in ``note``.
    :return: ``{"stage", "account", "candidate", "serving": {"arn", "version", "metrics"} | None, "note"}``.
    """
    from mlops.ml.evaluation import evaluate_holdout

    serving = version_in_stage_at(registry, stage, account=account)
    found: dict[str, Any] = {"stage": stage, "account": account or "", "candidate": dict(candidate),
                             "serving": None, "note": ""}
    if serving is None:
        found["note"] = f"nothing serves {stage} yet" + (f" in account {account}" if account else "")
        return found
    found["serving"] = {"arn": serving.arn, "version": serving.version, "metrics": {}}
    if not holdout_uri:
        found["note"] = "the candidate has no recorded holdout: the serving version is shown unscored"
        return found
    schema = config.schema
    metrics, _ = evaluate_holdout({"model_uri": serving.model_uri, "sha256": serving.sha256}, holdout_uri,
                                  schema["target"], schema.get("positive_label"))
    found["serving"]["metrics"] = metrics
    return found
