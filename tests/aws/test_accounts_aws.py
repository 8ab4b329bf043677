"""A deploy into stage accounts fails early, naming account, role and action, when a stage
cannot be reached or may not do what the deploy does, and nothing is created anywhere.

Three moto accounts set up from the shipped templates (:mod:`accounts_fixtures`), with the
checks AWS makes and moto does not (:mod:`testkit.moto_accounts`); ``deploy_model``'s own
``stage_targets`` task runs, through the AWS backend's stage ports and the Airflow connections.
"""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from accounts_fixtures import (
    ACCOUNTS,
    BUCKET,
    CONNECTIONS,
    DATA_SCIENCE,
    PROD,
    REGION,
    STAGING,
    create_accounts,
    deployment_role,
    multi_account_pipelines,
    render,
)
from golden_scenarios import RUN_ID, dag_task
from moto_fixtures import IMAGE, metadata

from mlops.backends.base import StageAccessDenied
from testkit.moto_accounts import strict_accounts

GROUP = "churn-classifier"


@pytest.fixture
def accounts(aws, tmp_path, monkeypatch):
    """A function setting up the three accounts (its keywords go to ``create_accounts``) and
    returning ``(backend, package)``: the AWS backend on the data-science account with an Approved
    version whose artifact is under ``training/``."""
    from mlops.backends import Backend
    from mlops.backends.aws import stage_hosting
    from mlops.backends.aws.accounts import SageMakerStageAccess
    from mlops.backends.aws.registry import SageMakerRegistry
    from mlops.core.settings import Settings

    def make(**options):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        create_accounts(monkeypatch, **options)
        multi_account_pipelines(tmp_path / "pipelines", monkeypatch)
        settings = Settings(backend="aws", home=tmp_path, data_uri=f"s3://{BUCKET}/mlops", aws_conn_id="aws_default",
                            runtime_port=8765, aws_region=REGION,
                            sagemaker_role_arn=f"arn:aws:iam::{DATA_SCIENCE}:role/mlops-sagemaker")
        s3 = boto3.client("s3", region_name=REGION)
        registry = SageMakerRegistry(settings, boto3.client("sagemaker", region_name=REGION), s3, image_uri=IMAGE)
        registry.ensure_group(GROUP)
        key, content = "mlops/training/churn/run/refit/output/model.tar.gz", b"the refit's model"
        s3.put_object(Bucket=BUCKET, Key=key, Body=content)
        version = registry.register(GROUP, f"s3://{BUCKET}/{key}", hashlib.sha256(content).hexdigest(),
                                    {"roc_auc": 0.9}, metadata(0))
        version = registry.approve(version.arn, "policy", "good", {})
        backend = Backend(name="aws", tuner=None, trainer=None, registry=registry, hosting=None, automl=None,
                          transform=None, region=REGION, stages=SageMakerStageAccess(settings),
                          stage_hosting=stage_hosting(settings))
        monkeypatch.setattr("mlops.backends.get_backend", lambda settings=None: backend)
        monkeypatch.setattr("mlops.core.settings.get_settings", lambda: settings)
        return backend, version.to_dict()

    with strict_accounts():
        yield make


def stage_targets(backend, package):
    """``deploy_model``'s ``stage_targets`` task, as the DAG runs it."""
    settings = dag_task("deploy_model", "endpoint_settings")()
    return dag_task("deploy_model", "stage_targets")(package, settings, run_id=RUN_ID)


def nothing_created_in_the_stage_accounts():
    from moto.sagemaker.models import sagemaker_backends

    for account in ACCOUNTS.values():
        backend = sagemaker_backends[account][REGION]
        assert not backend.endpoints and not backend.endpoint_configs and not backend._models, account


def test_with_every_role_in_place_the_stages_resolve_to_their_accounts_and_the_group_is_shared(accounts):
    from testkit.moto_accounts import group_policy

    backend, package = accounts()
    targets = stage_targets(backend, package)

    assert {stage: (t["account_id"], t["principal_arn"]) for stage, t in targets.items()} == {
        stage: (ACCOUNTS[stage], deployment_role(stage)) for stage in ACCOUNTS}
    group_arn = package["arn"].rsplit("/", 1)[0].replace(":model-package/", ":model-package-group/")
    assert {p for s in group_policy(group_arn)["Statement"] for p in s["Principal"]["AWS"]} == {
        deployment_role("staging"), deployment_role("prod")}
    nothing_created_in_the_stage_accounts()


def test_a_missing_prod_role_fails_naming_account_role_and_assume_role(accounts):
    backend, package = accounts(prod_role=False)

    with pytest.raises(StageAccessDenied) as raised:
        stage_targets(backend, package)

    message = str(raised.value)
    assert f"cannot reach account {PROD}" in message
    assert f"role {deployment_role('prod')}" in message
    assert "action sts:AssumeRole" in message and "AccessDenied" in message
    nothing_created_in_the_stage_accounts()


def test_a_prod_role_without_a_permission_fails_naming_account_role_action_and_resource(accounts):
    policy = render("stage-deployment-role.json", "prod")
    for statement in policy["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "sagemaker:CreateEndpointConfig"]
    backend, package = accounts(prod_policy=policy)

    with pytest.raises(StageAccessDenied) as raised:
        stage_targets(backend, package)

    message = str(raised.value)
    assert f"stage prod, account {PROD}: role {deployment_role('prod')} may not" in message
    assert (f"sagemaker:CreateEndpointConfig on arn:aws:sagemaker:{REGION}:{PROD}:endpoint-config/"
            "mlops-deploy-model-prod-config-") in message
    assert "(implicitDeny)" in message
    assert "cloudwatch:PutMetricAlarm" in message  # the alarms file was left off too
    nothing_created_in_the_stage_accounts()


def test_a_prod_role_that_may_not_simulate_itself_fails_saying_so(accounts):
    policy = render("stage-deployment-role.json", "prod")
    policy["Statement"] = [s for s in policy["Statement"] if "iam:SimulatePrincipalPolicy" not in s["Action"]]
    backend, package = accounts(prod_policy=policy)

    with pytest.raises(StageAccessDenied, match=rf"account {PROD}: role {deployment_role('prod')} may not "
                                                r"iam:SimulatePrincipalPolicy on itself"):
        stage_targets(backend, package)


def test_a_trust_policy_that_does_not_name_the_airflow_role_fails_like_a_missing_role(accounts, monkeypatch):
    backend, package = accounts()
    from moto.iam.models import iam_backends

    role = iam_backends[STAGING]["aws"].get_role_by_arn(deployment_role("staging"))
    role.assume_role_policy_document = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"AWS": f"arn:aws:iam::{DATA_SCIENCE}:role/someone-else"}}]})

    with pytest.raises(StageAccessDenied, match=rf"stage staging: connection 'aws_staging' cannot reach account "
                                                rf"{STAGING}: role {deployment_role('staging')}, action sts:AssumeRole"):
        stage_targets(backend, package)


def test_a_connection_that_lands_in_another_account_than_configured_fails(accounts, monkeypatch):
    backend, package = accounts()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTIONS['prod'].upper()}", json.dumps(
        {"conn_type": "aws", "extra": {"role_arn": deployment_role("staging"), "region_name": REGION}}))

    with pytest.raises(StageAccessDenied, match=rf"stage prod: connection 'aws_prod' acts as "
                                                rf"arn:aws:sts::{STAGING}:assumed-role/.* in account {STAGING}, "
                                                rf"not in the configured account {PROD}"):
        stage_targets(backend, package)


def test_a_stage_connection_that_does_not_exist_fails_by_name(accounts, monkeypatch):
    backend, package = accounts()
    monkeypatch.delenv("AIRFLOW_CONN_AWS_PROD")

    with pytest.raises(ValueError, match="stage prod: Airflow connection 'aws_prod' .* does not exist"):
        stage_targets(backend, package)


def test_without_the_bucket_policy_the_stage_cannot_re_check_the_artifact_and_says_which_account(accounts):
    backend, package = accounts(bucket_policy=False)

    with pytest.raises(PermissionError, match=rf"account {STAGING} \(connection aws_staging\) may not GetObject "
                                              rf"for {package['arn']}"):
        stage_targets(backend, package)
    nothing_created_in_the_stage_accounts()


def test_a_stage_account_the_group_is_not_shared_with_may_not_describe_the_version(accounts):
    backend, package = accounts()
    targets = stage_targets(backend, package)
    from testkit import moto_accounts

    moto_accounts._GROUP_POLICIES.clear()  # the group's resource policy removed again
    prod = backend.hosting_for(targets["prod"])

    with pytest.raises(PermissionError, match=rf"account {PROD} \(connection aws_prod\) may not DescribeModelPackage"):
        prod.check_package(package)


def test_a_tampered_artifact_is_refused_by_the_stage_account(accounts):
    from mlops.core.storage import DigestMismatch

    backend, package = accounts()
    key = package["model_uri"].removeprefix(f"s3://{BUCKET}/")
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=b"someone else's model")

    with pytest.raises(DigestMismatch, match="refusing to deploy a changed artifact"):
        stage_targets(backend, package)
