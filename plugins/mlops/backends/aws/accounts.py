"""Stages in AWS accounts of their own: which account a stage's connection reaches, and whether
its role may do there what a deploy does, checked before anything is deployed.

A stage names an Airflow AWS connection (``endpoint.<stage>.target.aws_conn_id``) whose extra
holds the ``role_arn`` of a deployment role in the stage's account; the amazon provider's
``AwsBaseHook`` assumes it. :class:`SageMakerStageAccess`:

* :meth:`~SageMakerStageAccess.resolve` asks STS who the connection is (``GetCallerIdentity``,
  which no policy can deny): the assume fails here when the role is missing or does not trust
  the Airflow role, naming account, role and ``sts:AssumeRole``; a connection that lands in
  another account than the configured one fails too. A stage's connection that does not exist
  fails by name (the provider would fall back to the default credentials: the registry's
  account, silently).
* :meth:`~SageMakerStageAccess.check_permissions` asks IAM's policy simulator
  (``SimulatePrincipalPolicy``, run by the deployment role on itself) whether the role may make
  each call of the deploy on the names the deploy will use: the package and its artifact in the
  registry's account, the model, endpoint config, endpoint, rollback alarms and ``iam:PassRole``
  of the stage's execution role. A denied action fails the run before staging starts, naming
  account, role, action and resource. The simulator evaluates the role's identity policies
  (with permission boundaries and SCPs); the registry's bucket and model package group policies
  are proven by the reads of :meth:`~mlops.backends.aws.hosting.SageMakerHosting.check_package`
  right after.

One account for everything needs none of this: a stage without a connection of its own uses the
project's, and its permissions are the Airflow role's (``include/iam/airflow-execution-role.json``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from mlops.backends.base import StageAccess, StageAccessDenied, StageTarget
from mlops.core.naming import prefixed

if TYPE_CHECKING:
    from mlops.core.config import StageTargetConfig
    from mlops.core.settings import Settings

log = logging.getLogger(__name__)

ASSUMED_ROLE = re.compile(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+")
ROLE = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/.+")
DENIED_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId")
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"


def role_arn_of(principal_arn: str) -> str:
    """The IAM role behind an STS assumed-role ARN (``arn:aws:sts::1:assumed-role/r/s`` ->
    ``arn:aws:iam::1:role/r``); any other ARN as it is."""
    match = ASSUMED_ROLE.fullmatch(principal_arn)
    return f"arn:{match.group(1)}:iam::{match.group(2)}:role/{match.group(3)}" if match else principal_arn


def account_of(arn: str) -> str:
    return arn.split(":")[4] if arn.count(":") >= 5 else ""


def deploy_permissions(settings: Settings, target: StageTarget, endpoint_name: str, config_name: str,
                       package: dict[str, Any], alarm_names: list[str]) -> list[tuple[str, list[str], dict]]:
    """``[(resource ARN, [IAM actions], condition context), ...]``: every call a deploy makes in the
    stage's account (:class:`~mlops.backends.aws.hosting.SageMakerHosting`: ``check_package``,
    ``submit``, ``wait``, ``delete``, ``ensure_rollback_alarms``, ``runtime_client``), on the
    SageMaker names it will use."""
    base = f"arn:aws:sagemaker:{target.region}:{target.account_id}"
    name = prefixed(settings.name_prefix, config_name)
    endpoint = prefixed(settings.name_prefix, endpoint_name)
    bucket, _, key = package["model_uri"].removeprefix("s3://").partition("/")
    needs = [
        (package["arn"], ["sagemaker:DescribeModelPackage"], {}),
        (f"arn:aws:s3:::{bucket}/{key}", ["s3:GetObject"], {}),
        (f"{base}:model/{name}", ["sagemaker:DescribeModel", "sagemaker:CreateModel", "sagemaker:AddTags",
                                  "sagemaker:DeleteModel"], {}),
        (f"{base}:endpoint-config/{name}", ["sagemaker:DescribeEndpointConfig", "sagemaker:CreateEndpointConfig",
                                            "sagemaker:AddTags", "sagemaker:DeleteEndpointConfig",
                                            "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"], {}),
        (f"{base}:endpoint/{endpoint}", ["sagemaker:DescribeEndpoint", "sagemaker:CreateEndpoint",
                                         "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:AddTags",
                                         "sagemaker:InvokeEndpoint"], {}),
        (target.execution_role_arn, ["iam:PassRole"], {"iam:PassedToService": SAGEMAKER_SERVICE}),
    ]
    needs += [(f"arn:aws:cloudwatch:{target.region}:{target.account_id}:alarm:"
               f"{prefixed(settings.name_prefix, alarm, 255)}", ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
               {}) for alarm in alarm_names]
    return needs


class SageMakerStageAccess(StageAccess):
    """:class:`~mlops.backends.base.StageAccess` through STS and IAM (see the module docstring).

    :param settings: the project's settings: its connection reaches the registry's account.
    :param session_for: ``(aws_conn_id, region) -> boto3.Session`` (default: the amazon provider's
        ``AwsBaseHook``, which assumes the connection's ``role_arn``).
    """

    def __init__(self, settings: Settings, session_for=None):
        self.settings = settings
        self._session_for = session_for or _hook_session
        self._identities: dict[tuple[str, str], dict[str, str]] = {}

    # ------------------------------------------------------------ who a connection is
    def _identity(self, stage: str, conn_id: str, region: str) -> dict[str, str]:
        """STS's answer for ``conn_id``: ``Account`` and ``Arn`` (once per connection and region)."""
        from botocore.exceptions import ClientError

        if (conn_id, region) not in self._identities:
            try:
                session = self._session_for(conn_id, region)
                identity = session.client("sts", region_name=region).get_caller_identity()
            except ClientError as err:
                raise self._unreachable(stage, conn_id, err) from None
            self._identities[conn_id, region] = {"Account": identity["Account"], "Arn": identity["Arn"]}
        return self._identities[conn_id, region]

    @staticmethod
    def _unreachable(stage: str, conn_id: str, err) -> StageAccessDenied:
        role = _connection_role(conn_id) or "(none in its extra)"
        operation = getattr(err, "operation_name", "") or "AssumeRole"
        action = "sts:AssumeRole" if operation == "AssumeRole" else f"sts:{operation}"
        error = err.response.get("Error", {})
        return StageAccessDenied(
            f"stage {stage}: connection {conn_id!r} cannot reach account {account_of(role) or '?'}: role {role}, "
            f"action {action}: {error.get('Code')}: {error.get('Message')} (the role must exist and trust the "
            "Airflow role: include/iam/stage-deployment-trust-policy.json)")

    def registry_account(self) -> str:
        return self._identity("registry", self.settings.aws_conn_id, self.settings.aws_region)["Account"]

    def resolve(self, config: StageTargetConfig) -> StageTarget:
        """The stage's account, region, connection, execution role and the role its connection acts
        as; see the module docstring. Raises :class:`StageAccessDenied` or ``ValueError`` naming
        the stage and what is wrong."""
        stage = config.stage
        conn_id = config.aws_conn_id or self.settings.aws_conn_id
        if config.aws_conn_id and not _connection_exists(conn_id):
            raise ValueError(f"stage {stage}: Airflow connection {conn_id!r} (endpoint.{stage}.target.aws_conn_id) "
                             "does not exist; without it the deploy would run in the default credentials' account")
        region = config.region or _connection_region(conn_id) or self.settings.aws_region
        registry_account = self.registry_account()
        identity = self._identity(stage, conn_id, region)
        account = identity["Account"]
        if config.account_id and account != config.account_id:
            raise StageAccessDenied(
                f"stage {stage}: connection {conn_id!r} acts as {identity['Arn']} in account {account}, "
                f"not in the configured account {config.account_id} (endpoint.{stage}.target.account_id)")
        role = config.execution_role_arn or (self.settings.sagemaker_role_arn if account == registry_account else "")
        if not role:
            raise ValueError(f"stage {stage} deploys into account {account}, not the registry's ({registry_account}): "
                             f"endpoint.{stage}.target.execution_role_arn must name the SageMaker execution role there")
        if account_of(role) != account:
            raise ValueError(f"stage {stage}: execution role {role} is not in the stage's account {account}")
        target = StageTarget(stage=stage, account_id=account, region=region, aws_conn_id=conn_id,
                             execution_role_arn=role, principal_arn=role_arn_of(identity["Arn"]),
                             registry_account=registry_account)
        log.info("stage %s: account %s, region %s, connection %s as %s, execution role %s", stage, account,
                 region, conn_id, target.principal_arn, role)
        return target

    # ------------------------------------------------------------ may it deploy there
    def check_permissions(self, target: StageTarget, endpoint_name: str, config_name: str,
                          package: dict[str, Any], alarm_names: list[str]) -> None:
        """Simulate every call of the deploy for the stage's role; see the module docstring.

        Only for a stage in another account: in the registry's account the stage acts as the
        Airflow role, whose policy the project ships (and which needs no simulator permission).
        """
        from botocore.exceptions import ClientError

        if not target.cross_account:
            return
        iam = self._session_for(target.aws_conn_id, target.region).client("iam", region_name=target.region)
        denied = []
        for resource, actions, context in deploy_permissions(self.settings, target, endpoint_name, config_name,
                                                             package, alarm_names):
            request: dict[str, Any] = {"PolicySourceArn": target.principal_arn, "ActionNames": actions,
                                       "ResourceArns": [resource]}
            if context:
                request["ContextEntries"] = [{"ContextKeyName": key, "ContextKeyValues": [value],
                                              "ContextKeyType": "string"} for key, value in context.items()]
            try:
                results = iam.simulate_principal_policy(**request)["EvaluationResults"]
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") not in DENIED_CODES:
                    raise
                raise StageAccessDenied(
                    f"stage {target.stage}, account {target.account_id}: role {target.principal_arn} may not "
                    f"iam:SimulatePrincipalPolicy on itself, so its permissions cannot be checked before the deploy "
                    f"(include/iam/stage-deployment-role.json grants it): {err.response['Error'].get('Message')}"
                ) from None
            denied += [f"{result['EvalActionName']} on {resource} ({result['EvalDecision']})"
                       for result in results if result["EvalDecision"] != "allowed"]
        if denied:
            raise StageAccessDenied(
                f"stage {target.stage}, account {target.account_id}: role {target.principal_arn} may not "
                + "; ".join(denied) + " (include/iam/stage-deployment-role.json)")


# ---------------------------------------------------------------- Airflow connections
def _connection(conn_id: str):
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return AwsBaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _connection_exists(conn_id: str) -> bool:
    return _connection(conn_id) is not None


def _connection_extra(conn_id: str) -> dict[str, Any]:
    connection = _connection(conn_id)
    return (connection.extra_dejson or {}) if connection is not None else {}


def _connection_role(conn_id: str) -> str:
    return str(_connection_extra(conn_id).get("role_arn") or "")


def _connection_region(conn_id: str) -> str:
    return str(_connection_extra(conn_id).get("region_name") or "")


def _hook_session(conn_id: str, region: str):
    """The boto3 session of an Airflow AWS connection (its ``role_arn`` assumed), as the amazon
    provider makes it."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=conn_id, region_name=region).get_session(region_name=region)
