"""Stages in accounts of their own, on the local twin: the pipeline config names each stage's
target, the registry shares its group with the stage accounts, each account sees and invokes
only its own endpoints, deployments are recorded with their account and a rollback looks only
at its account's history.

Verified how: the real SQLite registry, real artifacts, one real runtime process for the module
and boto3's ``sagemaker-runtime`` client signed as each account (the runtime reads the account
from the SigV4 credential, as AWS does from the caller's credentials).
"""

from __future__ import annotations

import sqlite3
import textwrap
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from mlops.backends.base import EndpointSpec
from mlops.backends.local.accounts import STAGE_ACCOUNTS
from mlops.backends.local.hosting import REGISTRY_ACCOUNT, EndpointNotFound
from mlops.core.config import ConfigError, StageTargetConfig, load_pipeline, stage_target, stage_targets
from mlops.core.storage import DigestMismatch
from mlops.deploy.flow import deploy_version, prepare_stages, rollback, version_in_stage_at
from mlops.deploy.rules import resolve_deployable
from testkit.runtime import flip_a_byte

GROUP = "churn-classifier"
STAGING, PROD = STAGE_ACCOUNTS["staging"], STAGE_ACCOUNTS["prod"]


# ---------------------------------------------------------------- the pipeline config
def config_with(tmp_path, target: str):
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""
        name: p
        problem_type: binary
        source: {}
        schema: {target: y}
        validation: {}
        endpoint:
          staging: {memory_size_mb: 2048, max_concurrency: 5}
          prod:
            instance_type: ml.m5.large
            target: %s
    """) % target)
    return load_pipeline("p", tmp_path)


def test_without_targets_every_stage_uses_the_projects_connection_and_account():
    targets = stage_targets(load_pipeline("churn"))
    assert targets == {"staging": StageTargetConfig("staging"), "prod": StageTargetConfig("prod")}


def test_a_stage_target_names_connection_account_region_and_execution_role(tmp_path):
    config = config_with(tmp_path, '{aws_conn_id: aws_prod, account_id: "345678901234", region: eu-west-1, '
                                   'execution_role_arn: "arn:aws:iam::345678901234:role/mlops-prod-sagemaker"}')
    assert stage_target(config, "prod") == StageTargetConfig(
        "prod", "aws_prod", "345678901234", "eu-west-1", "arn:aws:iam::345678901234:role/mlops-prod-sagemaker")


@pytest.mark.parametrize(("target", "message"), [
    ('{account_id: "12345"}', r"prod.target.account_id='12345' is not 12 digits"),
    ("{region: Mars}", r"prod.target.region='Mars' is not an AWS region"),
    ("{role: x}", r"prod.target: unknown key\(s\) role"),
    ("[aws_prod]", r"prod.target must be a mapping, got list"),
    ('{execution_role_arn: "mlops-role"}', r"execution_role_arn='mlops-role' is not an IAM role ARN"),
    ('{account_id: "345678901234", execution_role_arn: "arn:aws:iam::111111111111:role/r"}',
     r"arn:aws:iam::111111111111:role/r is not in the stage's account 345678901234"),
    ('{aws_conn_id: aws_prod, account_id: "345678901234"}', r"needs execution_role_arn"),
])
def test_a_bad_stage_target_is_named(tmp_path, target, message):
    with pytest.raises(ConfigError, match=message):
        stage_target(config_with(tmp_path, target), "prod")


def test_an_unknown_stage_is_refused():
    with pytest.raises(ConfigError, match="stage 'dev' is not one of staging, prod"):
        stage_target(load_pipeline("churn"), "dev")


# ---------------------------------------------------------------- the local twin's accounts
@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """The local backend on a home of its own, with one runtime process for the module."""
    from mlops.backends import get_backend
    from testkit.net import free_port

    home = tmp_path_factory.mktemp("accounts")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLOPS_HOME", str(home))
        monkeypatch.setenv("MLOPS_BACKEND", "local")
        monkeypatch.delenv("MLOPS_DATA_URI", raising=False)
        monkeypatch.setenv("MLOPS_RUNTIME_PORT", str(free_port()))
        backend = get_backend()
        backend.registry.ensure_group(GROUP)
        try:
            yield backend
        finally:
            backend.hosting.stop_runtime()


def register(backend, tmp_path, churn_rate: float, approve: bool = True):
    from unit.test_deploy_rollback import write_model

    from mlops.core.storage import pack_model

    folder = write_model(tmp_path / f"model-{churn_rate}", churn_rate)
    uri, sha = pack_model(folder, (tmp_path / f"artifact-{churn_rate}" / "model.tar.gz").as_uri())
    version = backend.registry.register(GROUP, uri, sha, {"roc_auc": 0.9}, {"churn_rate": churn_rate})
    return backend.registry.approve(version.arn, "dana", "good", {}) if approve else version


def targets_of(backend, stages=("staging", "prod")):
    config = load_pipeline("churn")
    return {stage: backend.stages.resolve(stage_target(config, stage)) for stage in stages}


def spec(version, endpoint: str, config: str) -> EndpointSpec:
    return EndpointSpec(endpoint, config, version.model_uri, version.sha256, instance_type="ml.m5.large",
                        model_package_arn=version.arn)


def prepare(backend, version, names=("acct-staging", "acct-prod")):
    return prepare_stages(backend, load_pipeline("churn"), resolve_deployable(backend.registry, GROUP, version.arn),
                          endpoints={"staging": names[0], "prod": names[1]},
                          config_names={"staging": "cfg-staging", "prod": "cfg-prod"}, alarm_names=[])


def test_each_stage_is_an_account_of_its_own_and_the_registry_shares_the_group_with_them(backend, tmp_path):
    version = register(backend, tmp_path, 0.3)

    targets = prepare(backend, version)

    assert {stage: t["account_id"] for stage, t in targets.items()} == {"staging": STAGING, "prod": PROD}
    assert {t["registry_account"] for t in targets.values()} == {REGISTRY_ACCOUNT}
    assert backend.registry.shared_accounts(GROUP) == sorted([STAGING, PROD])


def test_a_stage_account_may_not_deploy_a_version_of_a_group_not_shared_with_it(backend, tmp_path):
    version = register(backend, tmp_path, 0.4)
    backend.registry.share_group(GROUP, [targets_of(backend, ["staging"])["staging"]])  # staging only
    prod = backend.hosting_for(targets_of(backend)["prod"])

    with pytest.raises(PermissionError, match=f"account {PROD} may not read model package group {GROUP} "
                                              f"of account {REGISTRY_ACCOUNT}"):
        prod.check_package(resolve_deployable(backend.registry, GROUP, version.arn))
    with pytest.raises(PermissionError, match=f"account {PROD} may not read"):
        prod.deploy(spec(version, "unshared-prod", "cfg"))
    with pytest.raises(EndpointNotFound):
        prod.describe("unshared-prod")


def test_the_stage_account_re_checks_status_and_digest(backend, tmp_path):
    pending = register(backend, tmp_path, 0.45, approve=False)
    approved = register(backend, tmp_path, 0.46)
    package = resolve_deployable(backend.registry, GROUP, approved.arn)
    targets = prepare(backend, approved)
    prod = backend.hosting_for(targets["prod"])

    with pytest.raises(ValueError, match="is PendingManualApproval; only Approved versions are deployed"):
        prod.check_package(pending.to_dict())
    flip_a_byte(approved.model_uri)  # after the registry account resolved the package
    with pytest.raises(DigestMismatch, match="refusing to deploy a changed artifact"):
        prepare_stages(backend, load_pipeline("churn"), package, endpoints={"prod": "x"},
                       config_names={"prod": "cfg"}, alarm_names=[])


def test_each_account_sees_and_invokes_only_its_own_endpoints(backend, tmp_path):
    version = register(backend, tmp_path, 0.5)
    targets = {stage: backend.hosting_for(t) for stage, t in prepare(backend, version).items()}
    targets["prod"].deploy(spec(version, "apart-prod", "cfg-1"))

    assert targets["prod"].describe("apart-prod").config_name == "cfg-1"
    with pytest.raises(EndpointNotFound):
        targets["staging"].describe("apart-prod")
    with pytest.raises(ClientError, match=f"Endpoint apart-prod of account {STAGING} not found"):
        targets["staging"].runtime_client().invoke_endpoint(EndpointName="apart-prod", ContentType="text/csv",
                                                             Body="12\n")
    answer = targets["prod"].runtime_client().invoke_endpoint(EndpointName="apart-prod", ContentType="text/csv",
                                                              Accept="text/csv", Body="12\n")
    assert float(answer["Body"].read().decode().strip().split(",")[-1]) == pytest.approx(0.5)
    targets["staging"].delete("apart-prod")  # another account's: not found, nothing deleted
    assert targets["prod"].describe("apart-prod").status == "InService"
    assert "apart-prod" not in [e.name for e in targets["staging"].list_endpoints()]


def test_an_endpoint_name_another_account_has_is_refused(backend, tmp_path):
    version = register(backend, tmp_path, 0.55)
    targets = {stage: backend.hosting_for(t) for stage, t in prepare(backend, version).items()}
    targets["staging"].deploy(spec(version, "taken", "cfg-1"))

    with pytest.raises(RuntimeError, match=f"endpoint name taken is taken by account {STAGING}"):
        targets["prod"].deploy(spec(version, "taken", "cfg-2"))


def test_deployments_are_recorded_with_their_account_and_rollback_looks_at_its_own(backend, tmp_path):
    first, second = register(backend, tmp_path, 0.6), register(backend, tmp_path, 0.7)
    targets = prepare(backend, second)
    prod, staging = backend.hosting_for(targets["prod"]), backend.hosting_for(targets["staging"])
    registry = backend.registry
    for version, config in ((first, "rb-1"), (second, "rb-2")):
        deploy_version(registry, prod, version.to_dict(), spec(version, "rb-prod", config), "prod", account=PROD)
    # a prod-named deployment in another account does not change what prod's account serves
    deploy_version(registry, staging, first.to_dict(), spec(first, "rb-other", "rb-x"), "prod", account=STAGING)

    assert version_in_stage_at(registry, "prod", account=PROD).arn == second.arn
    assert version_in_stage_at(registry, "prod", account=STAGING).arn == first.arn
    assert registry.deployments("prod", PROD)[0].account == PROD

    from mlops.backends.base import StageTarget

    served = rollback(registry, prod, GROUP, "prod", spec(second, "rb-prod", "rb-3"),
                      StageTarget.from_dict(targets["prod"]))
    assert served.config_name == "rb-3"
    record = registry.deployments("prod", PROD)[0]
    assert (record.arn, record.detail["rollback_from"], record.account) == (first.arn, second.arn, PROD)


def test_a_version_1_registry_database_gains_the_account_column(tmp_path):
    from mlops.backends.local.registry import SQLiteRegistry

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE deployments (id INTEGER PRIMARY KEY AUTOINCREMENT, arn TEXT NOT NULL, stage TEXT NOT NULL,
                endpoint_name TEXT NOT NULL, endpoint_config TEXT NOT NULL, outcome TEXT NOT NULL,
                deployed_at TEXT NOT NULL, deployed_at_utc TEXT NOT NULL, detail TEXT NOT NULL);
            PRAGMA user_version = 1;
        """)
    registry = SQLiteRegistry(path)
    registry.ensure_group(GROUP)
    assert registry.deployments() == []
    with sqlite3.connect(path) as conn:
        assert "account" in {row[1] for row in conn.execute("PRAGMA table_info(deployments)")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_local_hosting_refuses_an_account_that_is_not_twelve_digits(backend):
    from mlops.backends.local.hosting import LocalHosting

    with pytest.raises(ValueError, match="account 'prod' is not 12 digits"):
        LocalHosting(backend.hosting.settings, account="prod")


def test_a_configured_account_id_is_the_local_stage_account(backend, tmp_path):
    config = config_with(tmp_path, '{account_id: "345678901234"}')
    target = backend.stages.resolve(stage_target(config, "prod"))
    assert (target.account_id, target.cross_account) == ("345678901234", True)
    assert replace(target, account_id=REGISTRY_ACCOUNT).cross_account is False


def test_rollback_model_rolls_prod_back_in_prods_account_and_notifies(backend, tmp_path):
    from aws.golden_scenarios import dag_task

    from mlops.dag_defaults import PROD_ENDPOINT
    from mlops.notifications import read_notifications

    first, second = register(backend, tmp_path, 0.8), register(backend, tmp_path, 0.9)
    targets = prepare(backend, second)
    prod = backend.hosting_for(targets["prod"])
    for version, config in ((first, "dag-rb-1"), (second, "dag-rb-2")):
        deploy_version(backend.registry, prod, version.to_dict(), spec(version, PROD_ENDPOINT, config), "prod",
                       account=PROD)

    served = dag_task("rollback_model", "rollback_prod")(run_id="manual__rollback")

    assert prod.describe(PROD_ENDPOINT).config_name == served["config_name"]
    assert version_in_stage_at(backend.registry, "prod", account=PROD).arn == first.arn
    sent = read_notifications()[-1]
    assert (sent["event"], sent["model_version"], sent["run_id"]) == ("rollback", first.arn, "manual__rollback")
    assert sent["detail"] == {"rollback_from": second.arn, "account": PROD}


def test_approvers_see_the_candidate_next_to_the_version_serving_prod_on_the_same_holdout(backend, tmp_path):
    from types import SimpleNamespace

    import pandas as pd

    from mlops.deploy.flow import compare_with_serving
    from mlops.operators.approval import comparison_table

    serving = register(backend, tmp_path, 0.25)
    prepare(backend, serving)  # the registry shares the group with prod's account
    deploy_version(backend.registry, backend.hosting_for(targets_of(backend)["prod"]), serving.to_dict(),
                   spec(serving, "cmp-prod", "cmp-1"), "prod", account=PROD)
    holdout = tmp_path / "holdout.parquet"
    pd.DataFrame({"tenure": [1, 2, 3, 4], "churn": ["yes", "no", "no", "no"]}).to_parquet(holdout)
    config = SimpleNamespace(schema={"target": "churn", "positive_label": "yes"})

    found = compare_with_serving(backend.registry, config, {"holdout_accuracy": 0.9}, holdout.as_uri(), PROD)

    assert (found["serving"]["arn"], found["account"]) == (serving.arn, PROD)
    # a model answering "no" for everyone: right on 3 of the 4 rows of this holdout
    assert found["serving"]["metrics"]["holdout_accuracy"] == pytest.approx(0.75)
    table = comparison_table(found)
    assert f"version {serving.version} in account {PROD}" in table
    assert "| holdout_accuracy | 0.9000 | 0.7500 |" in table
    from mlops.operators.approval import ModelApprovalOperator

    operator = ModelApprovalOperator(task_id="approve_model", subject="Approve?", model_package_arn="arn", evidence={},
                                     thresholds={"min_holdout_accuracy": 0.8}, comparison=found)
    assert table in operator._body(operator.recommendation())
    nothing = compare_with_serving(backend.registry, config, {}, holdout.as_uri(), "999999999999")
    assert nothing["serving"] is None and "nothing serves prod yet in account 999999999999" in comparison_table(nothing)
