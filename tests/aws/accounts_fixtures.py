"""Three AWS accounts on moto, set up as ``include/iam/README.md`` tells a platform team to.

* the **data-science** account (moto's default, ``123456789012``): the data bucket (with
  ``data-bucket-cross-account-policy.json``), the model registry, and the Airflow role
  ``mlops-airflow`` holding ``airflow-execution-role.json`` and
  ``data-science-orchestration-cross-account.json``;
* the **staging** (``234567890123``) and **prod** (``345678901234``) accounts: each a deployment
  role ``mlops-<stage>-deployment`` trusting the Airflow role (``stage-deployment-trust-policy.json``)
  with ``stage-deployment-role.json`` (prod also ``prod-deployment-rollback-alarms.json``), and a
  SageMaker execution role ``mlops-<stage>-sagemaker`` (``sagemaker-trust-policy.json``,
  ``stage-execution-role.json``).

Every policy is the shipped template rendered with these accounts. The process's credentials are
the Airflow role's (assumed once, as a worker on MWAA or EKS has them), and the Airflow
connections ``aws_staging``/``aws_prod`` name the deployment roles, as the README's setup does.
:func:`multi_account_pipelines` writes the churn config with ``endpoint.<stage>.target`` set.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import yaml

from testkit import iam

REGION = "us-east-1"
DATA_SCIENCE, STAGING, PROD = "123456789012", "234567890123", "345678901234"
ACCOUNTS = {"staging": STAGING, "prod": PROD}
BUCKET, PREFIX, NAME_PREFIX = "mlops-test-bucket", "mlops", "mlops"
AIRFLOW_ROLE = "mlops-airflow"
CONNECTIONS = {"staging": "aws_staging", "prod": "aws_prod"}


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def deployment_role(stage: str) -> str:
    return role_arn(ACCOUNTS[stage], f"{NAME_PREFIX}-{stage}-deployment")


def execution_role(stage: str) -> str:
    return role_arn(ACCOUNTS[stage], f"{NAME_PREFIX}-{stage}-sagemaker")


def values(stage: str | None = None) -> dict[str, str]:
    """Every placeholder of the templates, for the data-science account or ``stage``'s."""
    found = {"Region": REGION, "AccountId": DATA_SCIENCE, "DataBucket": BUCKET, "DataPrefix": PREFIX,
             "NamePrefix": NAME_PREFIX, "SageMakerRoleName": f"{NAME_PREFIX}-sagemaker", "Keyspace": "mlops",
             "StagingAccountId": STAGING, "ProdAccountId": PROD, "AirflowRoleName": AIRFLOW_ROLE,
             "DataKmsKeyArn": f"arn:aws:kms:{REGION}:{DATA_SCIENCE}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
    if stage is not None:
        found.update(Stage=stage, StageAccountId=ACCOUNTS[stage])
    return found


def render(name: str, stage: str | None = None) -> dict:
    wanted = iam.placeholders(name)
    return iam.render(name, {key: value for key, value in values(stage).items() if key in wanted})


def _role(account: str, name: str, trust: dict, policies: dict[str, dict]) -> None:
    client = _client_in(account, "iam")
    client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    for policy_name, document in policies.items():
        client.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))


def _client_in(account: str, service: str):
    """A client acting as ``account``'s administrator in moto (set-up only): moto's
    ``x-moto-account-id`` header picks the account."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    session.events.register("before-sign", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", account))
    return session.client(service, region_name=REGION)


def create_accounts(monkeypatch, *, prod_role: bool = True, prod_policy: dict | None = None,
                    bucket_policy: bool = True) -> None:
    """The three accounts (see the module docstring); the process then acts as the Airflow role.

    :param prod_role: False leaves prod's deployment role out (a platform team forgot it).
    :param prod_policy: prod's deployment role policy instead of the shipped one.
    :param bucket_policy: False leaves the data bucket without its cross-account policy.
    """
    trust_root = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                           "Principal": {"AWS": f"arn:aws:iam::{DATA_SCIENCE}:root"}}]}
    _role(DATA_SCIENCE, AIRFLOW_ROLE, trust_root, {
        "mlops-airflow": render("airflow-execution-role.json"),
        "mlops-cross-account": render("data-science-orchestration-cross-account.json")})
    for stage, account in ACCOUNTS.items():
        policies = {"mlops-deployment": render("stage-deployment-role.json", stage)}
        if stage == "prod":
            policies["mlops-rollback-alarms"] = render("prod-deployment-rollback-alarms.json", stage)
            if prod_policy is not None:
                policies = {"mlops-deployment": prod_policy}
        if stage != "prod" or prod_role:
            _role(account, f"{NAME_PREFIX}-{stage}-deployment", render("stage-deployment-trust-policy.json", stage),
                  policies)
        _role(account, f"{NAME_PREFIX}-{stage}-sagemaker",
              iam.render("sagemaker-trust-policy.json", {"AccountId": account}),
              {"mlops-execution": render("stage-execution-role.json", stage)})
    s3 = _client_in(DATA_SCIENCE, "s3")
    if bucket_policy:
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(render("data-bucket-cross-account-policy.json")))
    credentials = _client_in(DATA_SCIENCE, "sts").assume_role(
        RoleArn=role_arn(DATA_SCIENCE, AIRFLOW_ROLE), RoleSessionName="airflow-worker")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    for stage, conn_id in CONNECTIONS.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
            {"conn_type": "aws", "extra": {"role_arn": deployment_role(stage), "region_name": REGION}}))


def multi_account_pipelines(folder: Path, monkeypatch) -> Path:
    """The shipped churn config with ``endpoint.<stage>.target`` naming the stage accounts, in
    ``folder`` (``MLOPS_PIPELINES_DIR`` points there)."""
    from mlops.core.config import load_pipeline

    raw = load_pipeline("churn").raw
    raw = json.loads(json.dumps(raw))  # a copy
    for stage in ACCOUNTS:
        raw["endpoint"][stage]["target"] = {"aws_conn_id": CONNECTIONS[stage], "account_id": ACCOUNTS[stage],
                                            "execution_role_arn": execution_role(stage)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "churn.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(folder))
    return folder
