"""The multi-account policies in ``include/iam/`` allow exactly what a three-account deploy does.

What the deploy does is read from ``tests/aws/golden/deploy_model--three-accounts.json``, where
every request names the account it went to: the data-science account's multi-account calls (with
the Airflow role), and each stage account's (with its deployment role). Each request becomes the
IAM requirements ``(action, resource, context)`` of its own parameters (names, ARNs, buckets and
keys as sent), plus ``iam:PassRole`` for the execution role a ``CreateModel`` carries and
``sagemaker:AddTags`` for requests with ``Tags``. The policies are the shipped templates rendered
for the test's accounts (:mod:`accounts_fixtures`), evaluated with :mod:`testkit.iam`; the resource
policies (trust, bucket, KMS key, the model package group policy the code writes) with the
principal checks of :mod:`testkit.moto_accounts`.

Also checked: the calls each stage makes are exactly those its preflight simulates
(:func:`mlops.backends.aws.accounts.deploy_permissions`), so a run whose preflight passes is not
refused later; what SageMaker itself does with a stage's execution role (read the artifact and the
serving code, write data capture, pull the image, write logs) is allowed by both that role and the
data bucket's policy.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from accounts_fixtures import (
    ACCOUNTS,
    AIRFLOW_ROLE,
    BUCKET,
    DATA_SCIENCE,
    NAME_PREFIX,
    PREFIX,
    PROD,
    REGION,
    STAGING,
    deployment_role,
    execution_role,
    render,
    role_arn,
)

from testkit import iam
from testkit.moto_accounts import resource_policy_allows

GOLDEN = Path(__file__).resolve().parent / "golden" / "deploy_model--three-accounts.json"
MONITOR_GOLDEN = GOLDEN.parent / "monitor_model--three-accounts.json"
CROSS_POLICY = "data-science-orchestration-cross-account.json"
DEPLOYMENT_POLICY = "stage-deployment-role.json"
ALARMS_POLICY = "prod-deployment-rollback-alarms.json"
EXECUTION_POLICY = "stage-execution-role.json"
TRUST_POLICY = "stage-deployment-trust-policy.json"
BUCKET_POLICY = "data-bucket-cross-account-policy.json"
KEY_POLICY = "data-kms-key-cross-account.json"
# monitoring.aws.data_quality: model_monitor only (the own check, the default, needs nothing in prod)
MONITOR_POLICY = "prod-deployment-model-monitor.json"
MONITOR_EXECUTION_POLICY = "prod-execution-model-monitor.json"
MONITOR_BUCKET_POLICY = "data-bucket-cross-account-model-monitor.json"
TEMPLATES = (CROSS_POLICY, DEPLOYMENT_POLICY, ALARMS_POLICY, EXECUTION_POLICY, TRUST_POLICY, BUCKET_POLICY,
             KEY_POLICY, MONITOR_POLICY, MONITOR_EXECUTION_POLICY, MONITOR_BUCKET_POLICY)
OTHER_ACCOUNT = "999999999999"
SAGEMAKER = "sagemaker.amazonaws.com"
# The resource types SageMaker authorizes each operation on (Service Authorization Reference).
RESOURCE_PARAMS = {
    "DescribeModelPackage": [("model-package", "ModelPackageName")],
    "DescribeModel": [("model", "ModelName")], "CreateModel": [("model", "ModelName")],
    "DeleteModel": [("model", "ModelName")],
    "DescribeEndpointConfig": [("endpoint-config", "EndpointConfigName")],
    "CreateEndpointConfig": [("endpoint-config", "EndpointConfigName")],
    "DeleteEndpointConfig": [("endpoint-config", "EndpointConfigName")],
    "DescribeEndpoint": [("endpoint", "EndpointName")], "DeleteEndpoint": [("endpoint", "EndpointName")],
    "InvokeEndpoint": [("endpoint", "EndpointName")],
    "CreateEndpoint": [("endpoint", "EndpointName"), ("endpoint-config", "EndpointConfigName")],
    "GetModelPackageGroupPolicy": [("model-package-group", "ModelPackageGroupName")],
    "PutModelPackageGroupPolicy": [("model-package-group", "ModelPackageGroupName")],
    "DescribeModelPackageGroup": [("model-package-group", "ModelPackageGroupName")],
    # monitor_model with Model Monitor (monitor_model--three-accounts.json)
    "CreateDataQualityJobDefinition": [("data-quality-job-definition", "JobDefinitionName")],
    "DescribeDataQualityJobDefinition": [("data-quality-job-definition", "JobDefinitionName")],
    "DeleteDataQualityJobDefinition": [("data-quality-job-definition", "JobDefinitionName")],
    "CreateMonitoringSchedule": [("monitoring-schedule", "MonitoringScheduleName")],
    "DescribeMonitoringSchedule": [("monitoring-schedule", "MonitoringScheduleName")],
    "UpdateMonitoringSchedule": [("monitoring-schedule", "MonitoringScheduleName")],
    "ListMonitoringExecutions": [],  # no resource-level permissions: Resource "*"
    "DescribeProcessingJob": [("processing-job", "ProcessingJobName")],  # named by Model Monitor
}


@functools.cache
def golden(*paths: Path) -> tuple[dict, ...]:
    """The golden requests of the three-account runs (``deploy_model`` and ``monitor_model``, or
    ``paths``), with the normaliser's placeholders back to concrete (valid) values."""
    found = []
    for path in paths or (GOLDEN, MONITOR_GOLDEN):
        found += json.loads(path.read_text().replace("<hash>", "0badf00d").replace("<sha256>", "0" * 64))
    return tuple(found)


def needs_of(entry: dict) -> list[tuple[str, str, dict[str, str]]]:
    """``[(action, resource ARN, context)]`` of one recorded request, from its own parameters."""
    service, operation, params, account = entry["service"], entry["operation"], entry["params"], entry["account"]
    if (service, operation) == ("sts", "GetCallerIdentity"):
        return []  # needs no permission
    if (service, operation) == ("sts", "AssumeRole"):
        return [("sts:AssumeRole", params["RoleArn"], {})]
    if (service, operation) == ("iam", "SimulatePrincipalPolicy"):
        return [("iam:SimulatePrincipalPolicy", params["PolicySourceArn"], {})]
    if service == "s3":
        if operation == "ListObjectsV2":  # monitor_model's reads of the capture, ground truth and reports
            return [("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", {"s3:prefix": params.get("Prefix", "")})]
        actions = {"GetObject": "s3:GetObject", "PutObject": "s3:PutObject"}
        return [(actions[operation], f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {})]
    if service == "cloudwatch":
        # DescribeAlarms by AlarmNamePrefix: taken as every alarm under that prefix
        names = params.get("AlarmNames") or ([params["AlarmNamePrefix"] + "*"] if "AlarmNamePrefix" in params
                                             else [params["AlarmName"]])
        return [(f"cloudwatch:{operation}", f"arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}", {})
                for name in names]
    if operation not in RESOURCE_PARAMS:
        raise KeyError(f"{service}:{operation} is not in RESOURCE_PARAMS: add the resource type IAM authorizes it on")
    found = [] if RESOURCE_PARAMS[operation] else [(f"sagemaker:{operation}", "*", {})]
    for kind, key in RESOURCE_PARAMS[operation]:
        name = params[key]
        found.append((f"sagemaker:{operation}", name if name.startswith("arn:") else
                      f"arn:aws:sagemaker:{REGION}:{account}:{kind}/{name}", {}))
    for key in ("ExecutionRoleArn", "RoleArn"):  # CreateModel's; CreateDataQualityJobDefinition's
        if key in params:
            found.append(("iam:PassRole", params[key], {"iam:PassedToService": SAGEMAKER}))
    if "Tags" in params:
        found += [("sagemaker:AddTags", resource, {}) for _, resource, _ in found[:1]]
    return found


def needs_in(account: str) -> list[tuple[str, str, dict[str, str]]]:
    found = [need for entry in golden() if entry["account"] == account for need in needs_of(entry)]
    return list({(a, r, json.dumps(c, sort_keys=True)): (a, r, c) for a, r, c in found}.values())


def stage_policies(stage: str) -> list[dict]:
    policies = [render(DEPLOYMENT_POLICY, stage)]
    return policies + ([render(ALARMS_POLICY, stage), render(MONITOR_POLICY, stage)] if stage == "prod" else [])


def allowed(policies: list[dict], action: str, resource: str, context: dict[str, str]) -> bool:
    return any(iam.allowed(policy, action, resource, context) for policy in policies)


# ---------------------------------------------------------------- the calls of each account
def test_the_golden_run_calls_every_account():
    assert {entry["account"] for entry in golden()} == {DATA_SCIENCE, STAGING, PROD}


def test_the_data_science_accounts_multi_account_calls_are_allowed_to_the_airflow_role():
    policies = [render("airflow-execution-role.json"), render(CROSS_POLICY)]
    denied = [need for need in needs_in(DATA_SCIENCE) if not allowed(policies, *need)]
    assert not denied, denied
    cross = {(a, r) for a, r, _ in needs_in(DATA_SCIENCE) if a.startswith("sts:") or "GroupPolicy" in a}
    assert {a for a, _ in cross} == {"sts:AssumeRole", "sagemaker:GetModelPackageGroupPolicy",
                                     "sagemaker:PutModelPackageGroupPolicy"}
    assert all(allowed([render(CROSS_POLICY)], a, r, {}) for a, r in cross)


@pytest.mark.parametrize("stage", sorted(ACCOUNTS))
def test_every_call_in_a_stage_account_is_allowed_to_its_deployment_role(stage):
    needs = needs_in(ACCOUNTS[stage])
    assert needs, f"the golden run made no call in {stage}'s account"
    denied = [need for need in needs if not allowed(stage_policies(stage), *need)]
    assert not denied, denied


@pytest.mark.parametrize("stage", sorted(ACCOUNTS))
def test_the_preflight_simulates_every_call_a_stage_makes(stage):
    """A passing preflight means no call of the deploy is refused later."""
    from mlops.backends.aws.accounts import deploy_permissions
    from mlops.backends.base import StageTarget
    from mlops.core.settings import Settings

    deploy = golden(GOLDEN)
    entries = [e for e in deploy if e["account"] == ACCOUNTS[stage] and e["service"] == "sagemaker"]
    config = next(e["params"]["EndpointConfigName"] for e in entries if e["operation"] == "CreateEndpointConfig")
    endpoint = next(e["params"]["EndpointName"] for e in entries if e["operation"] == "CreateEndpoint")
    package = next(e["params"]["ModelPackageName"] for e in entries if e["operation"] == "DescribeModelPackage")
    artifact = next(e["params"] for e in deploy if e["account"] == ACCOUNTS[stage] and e["operation"] == "GetObject")
    alarms = sorted({n for e in deploy if e["account"] == ACCOUNTS[stage] and e["operation"] == "DescribeAlarms"
                     for n in e["params"]["AlarmNames"]})
    settings = Settings(backend="aws", home=Path("."), data_uri=f"s3://{BUCKET}/{PREFIX}", aws_conn_id="x",
                        runtime_port=1, aws_region=REGION, name_prefix=NAME_PREFIX)
    target = StageTarget(stage, ACCOUNTS[stage], REGION, f"aws_{stage}", execution_role(stage),
                         deployment_role(stage), DATA_SCIENCE)
    simulated = {(action, resource) for resource, actions, _ in deploy_permissions(
        settings, target, endpoint, config, {"arn": package, "model_uri": f"s3://{artifact['Bucket']}/{artifact['Key']}"},
        alarms) for action in actions}
    needs = {(a, r) for entry in deploy if entry["account"] == ACCOUNTS[stage] for a, r, _ in needs_of(entry)}
    missed = [(a, r) for a, r in sorted(needs) if (a, r) not in simulated and a != "iam:SimulatePrincipalPolicy"]
    assert not missed, missed
    denied = [(a, r) for a, r in simulated if not allowed(stage_policies(stage), a, r, {"iam:PassedToService": SAGEMAKER})]
    assert not denied, denied


# Granted, but not called by a first deploy into an empty account: the golden single-account runs
# make these calls (deploy_model.json: the blue/green UpdateEndpoint; rollback_model.json: a Failed
# endpoint deleted and re-created); staging's teardown deletes in the three-account run too.
NOT_IN_A_FIRST_DEPLOY = {"sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:DeleteEndpointConfig",
                         "sagemaker:DeleteModel",
                         # a new prod version's baseline (monitor_model.json's third run): the schedule
                         # is pointed at a new definition, the old one and stale alarms deleted
                         "sagemaker:UpdateMonitoringSchedule", "sagemaker:DeleteDataQualityJobDefinition",
                         "cloudwatch:DeleteAlarms"}


@pytest.mark.parametrize("stage", sorted(ACCOUNTS))
def test_a_stage_deployment_role_grants_nothing_a_deploy_does_not_use(stage):
    needs = needs_in(ACCOUNTS[stage])
    unused = [f"{statement['Sid']}: {action} on {resource}" for policy in stage_policies(stage)
              for statement, action, resource in iam.grants(policy)
              if action not in NOT_IN_A_FIRST_DEPLOY and not any(
                  iam.matches(action, a, ignore_case=True) and iam.matches(resource, r) for a, r, _ in needs)]
    assert not unused, unused
    single_account = {e["operation"] for name in ("deploy_model.json", "rollback_model.json", "monitor_model.json")
                      for e in json.loads((GOLDEN.parent / name).read_text())}
    assert {a.split(":", 1)[1] for a in NOT_IN_A_FIRST_DEPLOY} <= single_account


@pytest.mark.parametrize("stage", sorted(ACCOUNTS))
def test_a_stage_deployment_role_may_not_act_outside_its_account_prefix_or_role(stage):
    policies = stage_policies(stage)
    account = ACCOUNTS[stage]
    other = "staging" if stage == "prod" else "prod"
    leaks = []
    for action, resource, context in needs_in(account):
        outsiders = [(resource.replace(f":{account}:", f":{OTHER_ACCOUNT}:"), context),
                     (resource.replace(f"/{NAME_PREFIX}-", "/zz-").replace(f":{NAME_PREFIX}-", ":zz-"), context)]
        if action == "iam:PassRole":
            outsiders += [(execution_role(other), context), (resource, {"iam:PassedToService": "ec2.amazonaws.com"})]
        if action == "s3:GetObject":
            outsiders += [(f"arn:aws:s3:::{BUCKET}/{PREFIX}/raw/churn/x.parquet", {})]
        leaks += [(action, r, c) for r, c in outsiders if r != resource or c != context if allowed(policies, action, r, c)]
    assert not leaks, leaks


# ---------------------------------------------------------------- trust and resource policies
@pytest.mark.parametrize("stage", sorted(ACCOUNTS))
def test_only_the_data_science_airflow_role_may_assume_a_stage_deployment_role(stage):
    trust = render(TRUST_POLICY, stage)
    role = deployment_role(stage)
    policy = {**trust, "Statement": [{**s, "Resource": role} for s in iam.statements(trust)]}
    assert resource_policy_allows(policy, role_arn(DATA_SCIENCE, AIRFLOW_ROLE), "sts:AssumeRole", role)
    for other in (role_arn(DATA_SCIENCE, "someone-else"), role_arn(OTHER_ACCOUNT, AIRFLOW_ROLE),
                  role_arn(ACCOUNTS[stage], AIRFLOW_ROLE)):
        assert not resource_policy_allows(policy, other, "sts:AssumeRole", role), other


def test_the_model_package_group_policy_lets_the_stage_roles_describe_its_versions_only():
    from mlops.backends.aws.registry import SageMakerRegistry

    group = f"arn:aws:sagemaker:{REGION}:{DATA_SCIENCE}:model-package-group/{NAME_PREFIX}-churn-classifier"
    version = group.replace("model-package-group", "model-package") + "/3"
    policy = SageMakerRegistry.group_policy(group, [deployment_role("staging"), deployment_role("prod")])
    for stage in ACCOUNTS:
        assert resource_policy_allows(policy, deployment_role(stage), "sagemaker:DescribeModelPackage", version)
        assert not resource_policy_allows(policy, deployment_role(stage), "sagemaker:UpdateModelPackage", version)
        assert not resource_policy_allows(policy, deployment_role(stage), "sagemaker:DescribeModelPackage",
                                          version.replace("churn-classifier", "other-group"))
    assert not resource_policy_allows(policy, execution_role("prod"), "sagemaker:DescribeModelPackage", version)
    assert not resource_policy_allows(policy, role_arn(OTHER_ACCOUNT, "x"), "sagemaker:DescribeModelPackage", version)
    assert all("*" not in a for _, a, _ in iam.grants(policy))


def test_the_group_policy_the_golden_run_put_is_that_policy():
    put = next(e for e in golden() if e["operation"] == "PutModelPackageGroupPolicy")
    policy = json.loads(put["params"]["ResourcePolicy"])
    principals = {p for s in policy["Statement"] for p in s["Principal"]["AWS"]}
    assert principals == {deployment_role("staging"), deployment_role("prod")}


def test_the_data_bucket_policy_shares_artifacts_code_and_data_capture_only():
    policy = render(BUCKET_POLICY)
    artifact = f"arn:aws:s3:::{BUCKET}/{PREFIX}/training/churn/run/model.tar.gz"
    code = f"arn:aws:s3:::{BUCKET}/{PREFIX}/code/serving/0123/sourcedir.tar.gz"
    capture = f"arn:aws:s3:::{BUCKET}/{PREFIX}/monitoring/data-capture/mlops-churn-classifier-prod/x.jsonl"
    raw = f"arn:aws:s3:::{BUCKET}/{PREFIX}/raw/churn/ds=2026-01-01/part-0.parquet"
    for stage in ACCOUNTS:
        assert resource_policy_allows(policy, deployment_role(stage), "s3:GetObject", artifact)
        assert not resource_policy_allows(policy, deployment_role(stage), "s3:GetObject", code)
        assert resource_policy_allows(policy, execution_role(stage), "s3:GetObject", artifact)
        assert resource_policy_allows(policy, execution_role(stage), "s3:GetObject", code)
        for principal in (deployment_role(stage), execution_role(stage)):
            assert not resource_policy_allows(policy, principal, "s3:GetObject", raw)
            assert not resource_policy_allows(policy, principal, "s3:PutObject", artifact)
    assert resource_policy_allows(policy, execution_role("prod"), "s3:PutObject", capture)
    assert not resource_policy_allows(policy, execution_role("staging"), "s3:PutObject", capture)
    assert not resource_policy_allows(policy, role_arn(OTHER_ACCOUNT, "x"), "s3:GetObject", artifact)


@pytest.mark.parametrize("stage", sorted(ACCOUNTS))
def test_what_sagemaker_does_with_a_stage_execution_role_is_allowed_by_it_and_the_bucket(stage):
    """From the golden CreateModel and CreateEndpointConfig of that stage: the model's artifact,
    the serving code it names, the data capture destination (prod), the image, the logs."""
    account = ACCOUNTS[stage]
    entries = [e for e in golden() if e["account"] == account]
    model = next(e["params"] for e in entries if e["operation"] == "CreateModel")
    assert model["ExecutionRoleArn"] == execution_role(stage)
    container = model["PrimaryContainer"]
    reads = [container["ModelDataUrl"], container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]]
    config = next(e["params"] for e in entries if e["operation"] == "CreateEndpointConfig")
    writes = [config["DataCaptureConfig"]["DestinationS3Uri"] + "/AllTraffic/2026/01/01/00/x.jsonl"] \
        if "DataCaptureConfig" in config else []
    identity, bucket = [render(EXECUTION_POLICY, stage)], render(BUCKET_POLICY)
    for action, uris in (("s3:GetObject", reads), ("s3:PutObject", writes)):
        for uri in uris:
            resource = "arn:aws:s3:::" + uri.removeprefix("s3://").replace("<sha256>", "0" * 64).replace("<hash>", "0")
            assert allowed(identity, action, resource, {}), (action, resource)
            assert resource_policy_allows(bucket, execution_role(stage), action, resource), (action, resource)
    image = container["Image"]
    repository = f"arn:aws:ecr:{REGION}:{image.split('.')[0]}:repository/{image.split('/', 1)[1].split(':')[0]}"
    assert allowed(identity, "ecr:BatchGetImage", repository, {})
    logs = f"arn:aws:logs:{REGION}:{account}:log-group:/aws/sagemaker/Endpoints/{NAME_PREFIX}-churn-classifier-{stage}"
    assert allowed(identity, "logs:PutLogEvents", logs + ":log-stream:x", {})
    assert not allowed(identity, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/raw/x", {})
    assert not allowed(identity, "logs:PutLogEvents", logs.replace(account, OTHER_ACCOUNT) + ":log-stream:x", {})


def test_the_kms_key_policy_lets_the_stage_roles_use_the_key_through_s3_only():
    policy = render(KEY_POLICY)
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    for stage in ACCOUNTS:
        for principal in (deployment_role(stage), execution_role(stage)):
            statement = next(s for s in iam.statements(policy) if principal in iam.as_list(s["Principal"]["AWS"]))
            assert statement["Condition"] == {"StringEquals": via_s3}
    writers = {p for s in iam.statements(policy) if "kms:GenerateDataKey" in iam.as_list(s["Action"])
               for p in iam.as_list(s["Principal"]["AWS"])}
    assert writers == {execution_role("prod")}


# ---------------------------------------------------------------- the templates themselves
@pytest.mark.parametrize("name", TEMPLATES)
def test_a_multi_account_template_has_no_wildcard_action_and_unique_sids(name):
    policy = render(name, "prod")
    sids = [statement.get("Sid") for statement in iam.statements(policy)]
    assert all(sids) and len(set(sids)) == len(sids), sids
    for statement in iam.statements(policy):
        for action in iam.as_list(statement["Action"]):
            assert "*" not in action, f"{statement['Sid']}: wildcard action {action}"


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_placeholder_of_a_multi_account_template_is_documented(name):
    readme = (iam.IAM_DIR / "README.md").read_text()
    assert name in readme
    missing = [p for p in iam.placeholders(name) if f"${{{p}}}" not in readme]
    assert not missing, missing


@pytest.mark.parametrize("name", [CROSS_POLICY, DEPLOYMENT_POLICY, ALARMS_POLICY, EXECUTION_POLICY, MONITOR_POLICY,
                                  MONITOR_EXECUTION_POLICY])
def test_star_resources_only_where_there_are_no_resource_level_permissions(name):
    for statement in iam.statements(render(name, "prod")):
        if "*" in iam.as_list(statement["Resource"]):
            assert "NoResourceLevelPermissions" in statement["Sid"], statement["Sid"]


@pytest.mark.parametrize("name", [CROSS_POLICY, DEPLOYMENT_POLICY, ALARMS_POLICY, EXECUTION_POLICY, MONITOR_POLICY,
                                  MONITOR_EXECUTION_POLICY])
def test_granted_action_names_exist(name):
    import botocore.session

    session = botocore.session.get_session()
    for action in iam.granted_actions(render(name, "prod")):
        prefix, _, operation = action.partition(":")
        if action in ("iam:PassRole",) or prefix == "s3":
            continue
        service = {"sagemaker": "sagemaker", "logs": "logs", "ecr": "ecr", "cloudwatch": "cloudwatch", "sts": "sts",
                   "iam": "iam"}[prefix]
        operations = set(session.get_service_model(service).operation_names)
        if prefix == "sagemaker":
            operations |= set(session.get_service_model("sagemaker-runtime").operation_names)
        assert operation in operations, action


# ---------------------------------------------------------------- monitor_model in prod's account
def test_with_the_own_check_monitor_model_makes_no_call_in_prods_account():
    """The default (``monitoring.aws.data_quality: own_check``) needs no grant in prod: the golden
    run's own-check part goes only to the data-science account."""
    entries = list(golden(MONITOR_GOLDEN))
    managed_end = max(i for i, e in enumerate(entries) if e["operation"] == "DescribeProcessingJob")
    own = entries[managed_end + 1:]
    assert own and {e["account"] for e in own} == {DATA_SCIENCE}, {(e["account"], e["operation"]) for e in own}


def test_model_monitors_calls_land_in_prod_with_its_deployment_role_and_pass_only_prods_execution_role():
    entries = golden(MONITOR_GOLDEN)
    calls = {e["operation"]: e["account"] for e in entries if e["service"] in ("sagemaker", "cloudwatch")
             and e["operation"] != "DescribeModelPackage"}
    assert set(calls.values()) == {PROD}, calls
    assert {"CreateDataQualityJobDefinition", "CreateMonitoringSchedule", "ListMonitoringExecutions",
            "DescribeProcessingJob", "PutMetricAlarm"} <= set(calls)
    registry = {e["account"] for e in entries if e["operation"] == "DescribeModelPackage"}
    assert registry == {DATA_SCIENCE}
    monitoring = [n for e in entries if e["account"] == PROD for n in needs_of(e)]
    assert not [n for n in monitoring if not allowed([render(MONITOR_POLICY, "prod"), render(DEPLOYMENT_POLICY, "prod")],
                                                     *n)]
    without = [n for n in monitoring if n[0] != "sts:AssumeRole"
               and not allowed([render(DEPLOYMENT_POLICY, "prod"), render(ALARMS_POLICY, "prod")], *n)]
    assert without, "the Model Monitor policy grants nothing the deployment role lacks"


def test_what_a_model_monitor_execution_does_with_prods_execution_role_is_allowed_by_it_and_the_bucket():
    """From the golden CreateDataQualityJobDefinition (baseline, output, image) and prod's capture
    destination (the deploy's CreateEndpointConfig): the processing job reads the baseline and the
    capture, lists the capture, writes its reports, pulls the analyzer, logs and emits data metrics."""
    from mlops.backends.aws.model_monitor import DATA_METRICS_NAMESPACE

    (definition,) = [e["params"] for e in golden(MONITOR_GOLDEN) if e["operation"] == "CreateDataQualityJobDefinition"]
    assert definition["RoleArn"] == execution_role("prod")
    capture = next(e["params"]["DataCaptureConfig"]["DestinationS3Uri"] for e in golden(GOLDEN)
                   if e["account"] == PROD and e["operation"] == "CreateEndpointConfig")
    baseline = definition["DataQualityBaselineConfig"]
    output = definition["DataQualityJobOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["S3Uri"]

    def arn(uri: str) -> str:
        return "arn:aws:s3:::" + uri.removeprefix("s3://")

    identity = [render(EXECUTION_POLICY, "prod"), render(MONITOR_EXECUTION_POLICY, "prod")]
    bucket = [render(BUCKET_POLICY), render(MONITOR_BUCKET_POLICY)]
    objects = [("s3:GetObject", arn(baseline["StatisticsResource"]["S3Uri"])),
               ("s3:GetObject", arn(baseline["ConstraintsResource"]["S3Uri"])),
               ("s3:GetObject", arn(f"{capture}/AllTraffic/2026/11/21/06/x.jsonl")),
               ("s3:PutObject", arn(f"{output}/{PREFIX}-churn-classifier-prod/x/2026/11/21/07/statistics.json"))]
    for action, resource in objects:
        assert allowed(identity, action, resource, {}), (action, resource)
        assert any(resource_policy_allows(p, execution_role("prod"), action, resource) for p in bucket), resource
    listing = {"s3:prefix": capture.removeprefix(f"s3://{BUCKET}/") + "/AllTraffic/"}
    assert allowed(identity, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", listing)
    assert not allowed(identity, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"{PREFIX}/raw/"})
    image = definition["DataQualityAppSpecification"]["ImageUri"]
    repository = f"arn:aws:ecr:{REGION}:{image.split('.')[0]}:repository/{image.split('/', 1)[1].split(':')[0]}"
    assert allowed(identity, "ecr:BatchGetImage", repository, {})
    assert allowed(identity, "logs:PutLogEvents",
                   f"arn:aws:logs:{REGION}:{PROD}:log-group:/aws/sagemaker/ProcessingJobs:log-stream:x", {})
    assert allowed(identity, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": DATA_METRICS_NAMESPACE})
    # and nothing for the own check's default set-up: without the Model Monitor files, prod's
    # execution role can neither read the capture nor write reports
    assert not allowed([render(EXECUTION_POLICY, "prod")], *objects[2], {})
    assert not resource_policy_allows(render(BUCKET_POLICY), execution_role("prod"), *objects[3])
    # staging's execution role gets nothing of it
    for action, resource in objects[2:]:
        assert not resource_policy_allows(render(MONITOR_BUCKET_POLICY), execution_role("staging"), action, resource)
