"""moto, as strict as AWS where a multi-account deploy depends on it.

moto keeps accounts apart (each has its own IAM, STS, SageMaker and S3 state) and
``sts:AssumeRole`` gives credentials whose calls land in the role's account. What it does not
do, and AWS does, is added here while :func:`strict_accounts` is active, evaluating policies with
:mod:`testkit.iam` (identity policies are the roles' inline policies kept by moto's IAM):

* **AssumeRole** fails with AWS's ``AccessDenied`` ("User: <caller> is not authorized to perform:
  sts:AssumeRole on resource: <role>") unless the role exists in its account, its trust policy
  names the caller's role (or its account's root), and the caller's identity policy allows
  ``sts:AssumeRole`` on it. moto issues credentials for any ARN, even a role that was never created.
* **SimulatePrincipalPolicy** (moto has none) answers ``allowed`` / ``implicitDeny`` per action
  and resource from the role's inline policies, with the request's context entries; the caller
  must be allowed ``iam:SimulatePrincipalPolicy`` on the role.
* **Model package group resource policies**: ``PutModelPackageGroupPolicy`` and
  ``GetModelPackageGroupPolicy`` (moto has neither) keep the policy per group; a
  ``DescribeModelPackage`` of another account's version (moto looks only in the caller's account)
  is answered from the owner's moto backend when both the group's policy (principal, action,
  resource) and the caller's identity policy allow it, else ``AccessDeniedException``.
* **S3 bucket policies across accounts**: a ``GetObject`` of another account's bucket (moto
  serves it to anyone) needs the bucket's policy and the caller's identity policy to allow it,
  else ``AccessDenied``.

Calls within one account are not IAM-checked here (moto checks SageMaker actions against
``"*"`` only, so scoped policies cannot be enforced by it): the golden requests of each account
are checked against that account's role policy in ``tests/aws/test_iam_accounts.py`` instead.
What stays unproven is listed in ``docs/aws-verification.md``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from testkit import iam

PARTITION = "aws"
_GROUP_POLICIES: dict[str, str] = {}  # model package group ARN -> resource policy JSON


# ---------------------------------------------------------------- who is calling
def caller(response) -> tuple[str, str, str]:
    """``(account, principal ARN as STS reports it, role or user ARN)`` of the request's credentials."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    key, account = response.get_access_key(), response.current_account
    assumed = sts_backends[account][PARTITION].get_assumed_role_from_access_key(key)
    if assumed is not None:
        return account, assumed.arn, assumed.role_arn
    user = iam_backends[account][PARTITION].get_user_from_access_key_id(key)
    if user is not None:
        return account, user.arn, user.arn
    return account, f"arn:aws:iam::{account}:root", f"arn:aws:iam::{account}:root"


def identity_policies(principal: str) -> list[dict[str, Any]]:
    """The inline policies of the role (or user) ``principal`` in moto's IAM of its account."""
    from moto.iam.models import iam_backends

    account, name = principal.split(":")[4], principal.rsplit("/", 1)[-1]
    backend = iam_backends[account][PARTITION]
    if ":role/" in principal:
        return [json.loads(backend.get_role_policy(name, policy)[1]) for policy in backend.list_role_policies(name)]
    if ":user/" in principal:
        return [json.loads(backend.get_user_policy(name, policy)["policy_document"])
                for policy in backend.list_user_policies(name)]
    return [{"Version": "2012-10-17", "Statement": [  # an account's root may do anything in it
        {"Sid": "Root", "Effect": "Allow", "Action": "*", "Resource": "*"}]}]


def identity_allows(principal: str, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    return any(iam.allowed(policy, action, resource, context) for policy in identity_policies(principal))


def resource_policy_allows(policy: dict[str, Any] | None, principal: str, action: str, resource: str) -> bool:
    """Whether a resource policy's Allow names ``principal`` (its ARN, or its account's root)."""
    if not policy:
        return False
    root = f"arn:aws:iam::{principal.split(':')[4]}:root"
    for statement in iam.statements(policy):
        named = iam.as_list((statement.get("Principal") or {}).get("AWS", []))
        if statement.get("Effect") == "Allow" and (principal in named or root in named or "*" in named) and any(
                iam.matches(a, action, ignore_case=True) for a in iam.as_list(statement["Action"])) and any(
                iam.matches(r, resource) for r in iam.as_list(statement["Resource"])):
            return True
    return False


def _not_authorized(who: str, action: str, resource: str, why: str = "") -> str:
    return f"User: {who} is not authorized to perform: {action} on resource: {resource}{why}"


def _access_denied(message: str):
    """STS's and IAM's ``AccessDenied`` (HTTP 403, query protocol)."""
    from moto.core.exceptions import _RESTError

    error = _RESTError("AccessDenied", message)
    error.code = 403
    return error


# ---------------------------------------------------------------- STS and IAM
def _assume_role(original):
    def assume_role(self):
        from moto.iam.exceptions import NotFoundException
        from moto.iam.models import iam_backends

        role_arn = self._get_param("RoleArn")
        _, who, principal = caller(self)
        denied = _access_denied(_not_authorized(who, "sts:AssumeRole", role_arn))
        try:
            role = iam_backends[role_arn.split(":")[4]][PARTITION].get_role_by_arn(role_arn)
        except NotFoundException:
            raise denied from None
        trust = json.loads(role.assume_role_policy_document)
        if not resource_policy_allows({**trust, "Statement": [{**s, "Resource": role_arn} for s in
                                                             iam.statements(trust)]},
                                      principal, "sts:AssumeRole", role_arn):
            raise denied
        if not identity_allows(principal, "sts:AssumeRole", role_arn):
            raise denied
        return original(self)

    return assume_role


def _simulate_principal_policy(self):
    from moto.core.responses import ActionResult

    source = self._get_param("PolicySourceArn")
    _, who, principal = caller(self)
    if not identity_allows(principal, "iam:SimulatePrincipalPolicy", source):
        raise _access_denied(_not_authorized(who, "iam:SimulatePrincipalPolicy", source))
    context = {entry["ContextKeyName"]: entry["ContextKeyValues"][0]
               for entry in self._get_param("ContextEntries") or []}
    results = []
    for action in self._get_param("ActionNames"):
        for resource in self._get_param("ResourceArns") or ["*"]:
            decision = "allowed" if identity_allows(source, action, resource, context) else "implicitDeny"
            results.append({"EvalActionName": action, "EvalResourceName": resource, "EvalDecision": decision,
                            "MatchedStatements": [], "MissingContextValues": []})
    return ActionResult({"EvaluationResults": results, "IsTruncated": False})


# ---------------------------------------------------------------- SageMaker model package groups
def _group_arn(response, name: str) -> str:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[response.current_account][response.region].describe_model_package_group(name).arn


def _put_group_policy(self):
    from moto.core.responses import ActionResult

    name, policy = self._get_param("ModelPackageGroupName"), self._get_param("ResourcePolicy")
    arn = _group_arn(self, name)
    json.loads(policy)  # SageMaker refuses a policy that is not JSON
    _GROUP_POLICIES[arn] = policy
    return ActionResult({"ModelPackageGroupArn": arn})


def _get_group_policy(self):
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult

    name = self._get_param("ModelPackageGroupName")
    arn = _group_arn(self, name)
    if arn not in _GROUP_POLICIES:
        raise JsonRESTError("ValidationException", f"Cannot find resource policy for model package group {name}.")
    return ActionResult({"ResourcePolicy": _GROUP_POLICIES[arn]})


def _describe_model_package(original):
    def describe_model_package(self):
        from moto.core.exceptions import JsonRESTError
        from moto.core.responses import ActionResult
        from moto.sagemaker.models import sagemaker_backends

        name = self._get_param("ModelPackageName")
        owner = name.split(":")[4] if name.startswith("arn:") else self.current_account
        account, who, principal = caller(self)
        if owner == account:
            return original(self)
        group_arn = name.rsplit("/", 1)[0].replace(":model-package/", ":model-package-group/")
        policy = json.loads(_GROUP_POLICIES[group_arn]) if group_arn in _GROUP_POLICIES else None
        action = "sagemaker:DescribeModelPackage"
        if not (resource_policy_allows(policy, principal, action, name) and identity_allows(principal, action, name)):
            raise JsonRESTError("AccessDeniedException", _not_authorized(
                who, action, name, f" because no resource-based policy allows the {action} action"))
        package = sagemaker_backends[owner][self.region].describe_model_package(name)
        return ActionResult(package.gen_response_object())

    return describe_model_package


# ---------------------------------------------------------------- S3 across accounts
def _key_response_get(original):
    def key_response_get(self, query, key_name):
        from moto.s3.exceptions import S3AccessDeniedError
        from moto.s3.models import s3_backends

        owner = s3_backends.bucket_accounts.get(self.bucket_name, (None, None))[1]
        account, _, principal = caller(self)
        if owner is not None and owner != account:
            resource = f"arn:aws:s3:::{self.bucket_name}/{key_name}"
            bucket = s3_backends[owner][PARTITION].get_bucket(self.bucket_name)
            policy = json.loads(bucket.policy) if bucket.policy else None
            if not (resource_policy_allows(policy, principal, "s3:GetObject", resource)
                    and identity_allows(principal, "s3:GetObject", resource)):
                raise S3AccessDeniedError()
        return original(self, query, key_name)

    return key_response_get


@contextlib.contextmanager
def strict_accounts() -> Iterator[None]:
    """moto with the checks of the module docstring (inside ``mock_aws``)."""
    from unittest import mock

    from moto.iam.responses import IamResponse
    from moto.s3.responses import S3Response
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sts.responses import TokenResponse

    _GROUP_POLICIES.clear()
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(TokenResponse, "assume_role", _assume_role(TokenResponse.assume_role)))
        stack.enter_context(mock.patch.object(IamResponse, "simulate_principal_policy", _simulate_principal_policy,
                                              create=True))
        stack.enter_context(mock.patch.object(SageMakerResponse, "put_model_package_group_policy", _put_group_policy,
                                              create=True))
        stack.enter_context(mock.patch.object(SageMakerResponse, "get_model_package_group_policy", _get_group_policy,
                                              create=True))
        stack.enter_context(mock.patch.object(SageMakerResponse, "describe_model_package",
                                              _describe_model_package(SageMakerResponse.describe_model_package)))
        stack.enter_context(mock.patch.object(S3Response, "_key_response_get",
                                              _key_response_get(S3Response._key_response_get)))
        yield
    _GROUP_POLICIES.clear()


def group_policy(group_arn: str) -> dict[str, Any] | None:
    """The resource policy put on ``group_arn`` while :func:`strict_accounts` is active."""
    text = _GROUP_POLICIES.get(group_arn)
    return json.loads(text) if text else None
