"""The local twin's accounts: each stage deploys into an account of its own.

The registry is in :data:`~mlops.backends.local.hosting.REGISTRY_ACCOUNT`; staging and prod are
in :data:`STAGE_ACCOUNTS` unless ``endpoint.<stage>.target.account_id`` names another one, so
the promotion path of the multi-account design (the registry shares its group with the stage
accounts, each stage's endpoints and deployment records apart) runs on one machine with no setup.
The twin has no IAM: a stage reaches its account without a role, and there are no permissions to
check (:meth:`LocalStageAccess.check_permissions` does nothing); what the resource policies decide
on AWS, the registry's sharing decides here.
"""

from __future__ import annotations

from mlops.backends.base import StageAccess, StageTarget
from mlops.backends.local.hosting import REGION, REGISTRY_ACCOUNT

STAGE_ACCOUNTS = {"staging": "111111111111", "prod": "222222222222"}


class LocalStageAccess(StageAccess):
    """Stages as local accounts (see the module docstring)."""

    def resolve(self, config) -> StageTarget:
        account = config.account_id or STAGE_ACCOUNTS[config.stage]
        return StageTarget(stage=config.stage, account_id=account, region=config.region or REGION,
                           aws_conn_id=config.aws_conn_id or "", execution_role_arn=config.execution_role_arn or "",
                           registry_account=REGISTRY_ACCOUNT)
