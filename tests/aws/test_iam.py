"""The IAM policies in ``include/iam/`` allow exactly what the project's code does on AWS.

What the code needs is collected, not guessed: every AWS call site in the source
(:func:`testkit.aws_calls.call_sites`), the amazon provider's ``SageMakerTrigger`` polls, the recorded golden
requests (``tests/aws/golden/*.json``, when present), the S3 data plane of ``ObjectStoragePath``
(s3fs) and the Keyspaces statements. Each call becomes IAM requirements ``(action, resource ARN,
condition context)`` on the names the code really creates (computed with the AWS backends' own
naming methods, ``MLOPS_NAME_PREFIX`` included), plus ``iam:PassRole`` for requests carrying a role ARN and
``sagemaker:AddTags`` for creates carrying ``Tags``. The policies are then evaluated
(:mod:`testkit.iam`): every requirement is allowed, the same call on a resource outside the
project's names, bucket prefix, account or region is not, and every (action, resource) the
policy grants is required by something.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlops.core.config import available_pipelines, load_pipeline
from mlops.dag_defaults import CHURN_MODEL_GROUP, PROD_ENDPOINT, STAGING_ENDPOINT
from testkit import aws_calls, iam

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_POLICY = "airflow-execution-role.json"
SAGEMAKER_POLICY = "sagemaker-execution-role.json"
TRUST_POLICY = "sagemaker-trust-policy.json"
KMS_POLICY = "data-bucket-sse-kms.json"
POLICIES = (AIRFLOW_POLICY, SAGEMAKER_POLICY, TRUST_POLICY, KMS_POLICY)
PERMISSION_POLICIES = (AIRFLOW_POLICY, SAGEMAKER_POLICY, KMS_POLICY)
GOLDEN_DIR = ROOT / "tests" / "aws" / "golden"

REGION, ACCOUNT = "us-east-1", "123456789012"
OTHER_REGION, OTHER_ACCOUNT = "eu-west-1", "210987654321"
BUCKET, PREFIX, NAME_PREFIX, ROLE_NAME = "mlops-test-bucket", "mlops/data", "mlops", "mlops-sagemaker"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
RUN_ID = "manual__2024-05-01T00:00:00+00:00"


GROUP = CHURN_MODEL_GROUP
ENDPOINTS = (STAGING_ENDPOINT, PROD_ENDPOINT)


@functools.cache
def _pipelines() -> dict[str, dict]:
    """``name -> raw config`` of every pipeline in ``include/pipelines/`` (read once; not to be mutated)."""
    return {name: load_pipeline(name).raw for name in available_pipelines()}


def _keyspace() -> str:
    keyspaces = {config["source"]["keyspaces"]["keyspace"] for config in _pipelines().values()
                 if "keyspaces" in config.get("source", {})}
    keyspaces |= set(re.findall(r"CREATE KEYSPACE IF NOT EXISTS (\w+)", (ROOT / "sql/keyspaces/00_keyspace.cql").read_text()))
    assert len(keyspaces) == 1, f"the policy has one ${{Keyspace}}; the project uses {keyspaces}"
    return keyspaces.pop()


KEYSPACE = _keyspace()
VALUES = {"Region": REGION, "AccountId": ACCOUNT, "DataBucket": BUCKET, "DataPrefix": PREFIX,
          "NamePrefix": NAME_PREFIX, "SageMakerRoleName": ROLE_NAME, "Keyspace": KEYSPACE, "DataKmsKeyArn": KMS_KEY}
# What each placeholder is (include/iam/README.md says how to fill them).
PLACEHOLDERS = {
    AIRFLOW_POLICY: {"Region", "AccountId", "DataBucket", "DataPrefix", "NamePrefix", "SageMakerRoleName",
                     "Keyspace"},
    SAGEMAKER_POLICY: {"Region", "AccountId", "DataBucket", "DataPrefix", "SageMakerRoleName"},
    TRUST_POLICY: {"AccountId"},
    KMS_POLICY: {"Region", "DataBucket", "DataPrefix", "DataKmsKeyArn"},
}

# ------------------------------------------------------------------------------ API -> IAM tables
# S3 operation -> IAM actions. No default: an operation missing here fails the test.
S3_ACTIONS = {
    "GetObject": ("s3:GetObject",), "HeadObject": ("s3:GetObject",),
    "PutObject": ("s3:PutObject",), "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",), "CompleteMultipartUpload": ("s3:PutObject",),
    "ListObjectsV2": ("s3:ListBucket",), "ListObjects": ("s3:ListBucket",), "HeadBucket": ("s3:ListBucket",),
    "DeleteObject": ("s3:DeleteObject",), "DeleteObjects": ("s3:DeleteObject",),
    "CopyObject": ("s3:GetObject", "s3:PutObject"), "UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload",),
}
S3_BUCKET_ACTIONS = {"s3:ListBucket"}
# SageMaker operation -> the resource types IAM authorizes it on (Service Authorization Reference);
# "*" = no resource-level permissions. No default: an operation missing here fails the test.
SAGEMAKER_RESOURCES = {
    "CreateTrainingJob": ("training-job",), "DescribeTrainingJob": ("training-job",),
    "CreateHyperParameterTuningJob": ("hyper-parameter-tuning-job",),
    "DescribeHyperParameterTuningJob": ("hyper-parameter-tuning-job",),
    "ListTrainingJobsForHyperParameterTuningJob": ("hyper-parameter-tuning-job",),
    "CreateAutoMLJobV2": ("automl-job",), "DescribeAutoMLJobV2": ("automl-job",),
    "ListCandidatesForAutoMLJob": ("automl-job",),
    "CreateModel": ("model",), "DescribeModel": ("model",), "DeleteModel": ("model",),
    "CreateEndpointConfig": ("endpoint-config",), "DescribeEndpointConfig": ("endpoint-config",),
    "DeleteEndpointConfig": ("endpoint-config",),
    "CreateEndpoint": ("endpoint", "endpoint-config"), "UpdateEndpoint": ("endpoint", "endpoint-config"),
    "DescribeEndpoint": ("endpoint",), "DeleteEndpoint": ("endpoint",), "InvokeEndpoint": ("endpoint",),
    "CreateModelPackageGroup": ("model-package-group",), "DescribeModelPackageGroup": ("model-package-group",),
    "CreateModelPackage": ("model-package", "model-package-group"),
    "DescribeModelPackage": ("model-package",), "UpdateModelPackage": ("model-package",),
    "ListModelPackages": ("*",),
    "CreateTransformJob": ("transform-job",), "DescribeTransformJob": ("transform-job",),
    # on_kill: the operators (and the triggers of deferred tasks) stop what they started
    "StopTrainingJob": ("training-job",), "StopHyperParameterTuningJob": ("hyper-parameter-tuning-job",),
    "StopAutoMLJob": ("automl-job",), "StopTransformJob": ("transform-job",),
    "ListTags": ("model", "endpoint-config", "endpoint"),  # any taggable resource; these are Clarify's
    # monitor_model's Model Monitor data-quality schedule on the prod endpoint
    "CreateDataQualityJobDefinition": ("data-quality-job-definition",),
    "DescribeDataQualityJobDefinition": ("data-quality-job-definition",),
    "DeleteDataQualityJobDefinition": ("data-quality-job-definition",),
    "CreateMonitoringSchedule": ("monitoring-schedule",), "DescribeMonitoringSchedule": ("monitoring-schedule",),
    "UpdateMonitoringSchedule": ("monitoring-schedule",),
    "ListMonitoringExecutions": ("*",),
    "DescribeProcessingJob": ("processing-job",),  # where an execution wrote its reports
}
# Resource types SageMaker names itself (the project cannot prefix them): an example name; only
# account and region scope them (Model Monitor names each execution's processing job).
SERVICE_NAMED = {"processing-job": "model-monitoring-202611210800-0a1b2c3d"}
CLOUDWATCH_RESOURCES = {"PutMetricAlarm": "alarm", "DescribeAlarms": "alarm", "DeleteAlarms": "alarm"}
MONITOR_MODULE = "plugins/mlops/backends/aws/model_monitor.py"  # its alarms are the data-quality schedule's
# Actions allowed on Resource "*", and why (each such statement's Sid says so too).
STAR_RESOURCE_ACTIONS = {
    "sagemaker:ListModelPackages": "ListModelPackages supports no resource-level permissions",
    "sagemaker:ListMonitoringExecutions": "ListMonitoringExecutions supports no resource-level permissions",
    "ecr:GetAuthorizationToken": "GetAuthorizationToken supports no resource-level permissions",
    "cloudwatch:PutMetricData": "PutMetricData supports no resource-level permissions; a namespace condition scopes it",
}
# IAM actions that are not API operations of a botocore service model.
IAM_ONLY_ACTIONS = {
    "iam:PassRole": "lets the caller hand a role to a service",
    "cassandra:Select": "Keyspaces CQL SELECT (over the Cassandra driver, SigV4)",
    "cassandra:Modify": "Keyspaces CQL INSERT/UPDATE/DELETE",
}
ROLE_SERVICE = "sagemaker.amazonaws.com"
# AWS's documented minimum policy of the execution role passed to CreateAutoMLJob / CreateAutoMLJobV2
# (SageMaker Developer Guide, "How to use SageMaker AI execution roles"), there granted on "*".
# SageMaker launches Autopilot's processing, training and transform jobs itself, with this role as
# theirs (iam:PassRole); the endpoint actions are for its explainability step (SageMaker Clarify), which
# makes a temporary model, endpoint config and endpoint whose names the service picks.
AUTOPILOT_ROLE_MINIMUM = (
    "iam:PassRole", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:InvokeEndpoint",
    "sagemaker:ListTags", "sagemaker:DescribeEndpoint", "sagemaker:CreateModel", "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateEndpoint", "sagemaker:DeleteModel", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteEndpoint",
    "cloudwatch:PutMetricData", "logs:CreateLogStream", "logs:PutLogEvents", "logs:CreateLogGroup",
    "logs:DescribeLogStreams", "s3:GetObject", "s3:PutObject", "s3:ListBucket", "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
)
CLARIFY_TEMPORARY = "sm-clarify-autopilot-explainability"  # a name the service picks: any name must do

# The amazon provider's SageMakerTrigger, as the backends hand it to the operators to defer on:
# (module, job_type); the trigger polls the Describe call of its waiter in the triggerer.
PROVIDER_TRIGGERS = [
    ("plugins/mlops/backends/aws/training.py", "training"),
    ("plugins/mlops/backends/aws/training.py", "tuning"),
    ("plugins/mlops/backends/aws/transform.py", "transform"),
    ("plugins/mlops/backends/aws/hosting.py", "endpoint"),
]
# Calls a multi-account deploy makes (tests/aws/test_iam_accounts.py checks their policies), not the
# Airflow role's policy here: with the Airflow role, but granted by data-science-orchestration-
# cross-account.json; in a stage's account, with that stage's deployment role; and one that needs
# no permission at all.
CROSS_ACCOUNT_CALLS = {
    ("sagemaker", "GetModelPackageGroupPolicy"): "data-science-orchestration-cross-account.json",
    ("sagemaker", "PutModelPackageGroupPolicy"): "data-science-orchestration-cross-account.json",
    ("sts", "AssumeRole"): "data-science-orchestration-cross-account.json",
    ("iam", "SimulatePrincipalPolicy"): "stage-deployment-role.json (the stage role simulates itself)",
    ("sts", "GetCallerIdentity"): "none: GetCallerIdentity needs no permission (STS API reference)",
}
# Tasks read and write the object store through ObjectStoragePath, on mlops.core.s3_filesystem's s3fs
# (no HEAD of a key, no bucket probe: see its docstring). These are the S3 calls it makes for what
# the code does with those paths.
DATA_PLANE = {
    "GetObject": "open('rb'), read_bytes(), read_text(), ranged Parquet reads",
    "PutObject": "write_bytes(), write_text(), open('wb') of a small file",
    "CreateMultipartUpload": "open('wb') of a file larger than one s3fs block (5 MiB)",
    "UploadPart": "each block of a multipart write",
    "CompleteMultipartUpload": "the end of a multipart write",
    "AbortMultipartUpload": "a multipart write that fails is aborted, leaving no parts",
    "ListObjectsV2": "iterdir(), glob(), rglob(); exists(), is_file(), stat() and open() list the key's prefix",
    "DeleteObject": "unlink() and the delete of a move (temporary files, the landing file after its move)",
    "DeleteObjects": "rm() of several keys",
    "CopyObject": "rename() / copy() (s3_ingest moves landing files to the raw partition)",
}
# The Cassandra driver reads the system tables on connect and for schema metadata.
KEYSPACES_SYSTEM_TABLES = [("system", "local"), ("system", "peers"), ("system_schema", "tables")]


# ------------------------------------------------------------------------------ names the code makes
@functools.cache
def settings():
    """The AWS settings of this test: its bucket and prefix, region, role and name prefix."""
    from mlops.core.settings import Settings

    return Settings(backend="aws", home=ROOT, data_uri=f"s3://{BUCKET}/{PREFIX}", aws_conn_id="aws_default",
                    runtime_port=8765, aws_region=REGION,
                    sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", name_prefix=NAME_PREFIX)


@functools.cache
def ports():
    """The AWS backend's ports with the test's name prefix (no client is made: names only)."""
    from mlops.backends import aws

    return aws.build(settings())


@functools.cache
def names() -> dict[tuple[str, str | None], list[str]]:
    """``(resource type, module or None) -> names`` the code creates, from its own naming functions
    and the ports' mapping of logical names to AWS names."""
    from mlops.backends.aws.training import TRAINING_NAME_MAX, TUNING_NAME_MAX, attempt_name, job_name_for
    from mlops.backends.aws.transform import attempt_names
    from mlops.core.naming import resource_name, run_name

    backend = ports()
    tuning = job_name_for(NAME_PREFIX, run_name("train_model", RUN_ID, "tune"), TUNING_NAME_MAX)
    refit = job_name_for(NAME_PREFIX, run_name("train_model", RUN_ID, "refit"), TRAINING_NAME_MAX)
    hosting = [backend.hosting.name(run_name(dag, RUN_ID, step)) for dag, step in (
        ("deploy_model", "staging-config"), ("deploy_model", "prod-config"), ("rollback_model", "prod-config"))]
    group = backend.registry.group_name(GROUP)
    transform = backend.transform.job_name(run_name("autopilot_batch_predict", RUN_ID, "transform"))
    return {
        ("training-job", None): [refit, attempt_name(refit, 2), f"{tuning}-001-0a1b2c3d"],  # + a tuning trial
        ("hyper-parameter-tuning-job", None): [tuning, attempt_name(tuning, 2)],
        ("automl-job", None): [backend.automl.job_name(resource_name("automl", RUN_ID, max_len=32))],
        ("model", "plugins/mlops/backends/aws/hosting.py"): hosting,
        ("model", "plugins/mlops/backends/aws/automl.py"): [
            backend.automl.model_name(run_name("autopilot_batch_predict", RUN_ID, "model"))],
        ("endpoint-config", None): hosting,
        ("endpoint", None): [backend.hosting.name(endpoint) for endpoint in ENDPOINTS],
        ("transform-job", None): attempt_names(transform, 2),
        ("model-package-group", None): [group],
        ("model-package", None): [f"{group}/1", f"{group}/12"],
        ("data-quality-job-definition", None): [backend.monitoring.definition_name(PROD_ENDPOINT, monitor_baseline())],
        ("monitoring-schedule", None): [backend.monitoring.schedule_name(PROD_ENDPOINT)],
    }


def monitor_baseline():
    """A registration baseline of the prod version (the data-quality definition's name digests it)."""
    from mlops.backends.base import MonitoringBaseline

    base = f"s3://{BUCKET}/{PREFIX}/training/churn/run/baseline"
    return MonitoringBaseline(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{NAME_PREFIX}-{GROUP}/1",
                              f"{base}/statistics.json", f"{base}/constraints.json")


def names_of(kind: str, path: str | None) -> list[str]:
    table = names()
    if (kind, path) in table:
        return table[kind, path]
    if (kind, None) in table:
        return table[kind, None]
    return sorted({name for (k, _), found in table.items() if k == kind for name in found})


def sagemaker_arn(kind: str, name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name}"


@functools.cache
def alarm_names(path: str | None = None) -> list[str]:
    """The alarms the module ``path`` makes: the data-quality schedule's violation alarms (one per
    feature of the churn baseline) for the Model Monitor port, the rollback alarms otherwise."""
    if path == MONITOR_MODULE:
        features = [*_pipelines()["churn"]["schema"]["categorical"], *_pipelines()["churn"]["schema"]["numeric"]]
        return [f"{ports().monitoring.alarm_prefix(PROD_ENDPOINT)}{index:02d}" for index in range(len(features))]
    from mlops.deploy.endpoint_options import rollback_alarm_requests

    prod = _pipelines()["churn"]["endpoint"]["prod"]
    return [ports().hosting.alarm_name(request["AlarmName"])
            for request in rollback_alarm_requests(PROD_ENDPOINT, prod)]


# ------------------------------------------------------------------------------ what the code sends
@functools.cache
def _module(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text())


def request_text(path: str, function: str) -> str:
    """The source of ``function`` and of its class's ``*request`` methods it calls (where the
    create calls' request dicts are built)."""
    parts = function.split(".")
    scope: list[ast.AST] = [_module(path)]
    for part in parts:  # an inherited method (a waiter trigger's run) stops at its class
        found = next((node for node in ast.iter_child_nodes(scope[-1])
                      if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.name == part), None)
        if found is None:
            break
        scope.append(found)
    body = ast.unparse(scope[-1])
    if len(scope) > 2 and isinstance(scope[-2], ast.ClassDef) and not isinstance(scope[-1], ast.ClassDef):
        called = set(re.findall(r"self\.(\w*request)\(", body))
        body += "".join(ast.unparse(node) for node in ast.walk(scope[-2])
                        if isinstance(node, ast.FunctionDef) and node.name in called)
        # a base class's request builder (the training jobs share one)
        for base in scope[-2].bases:
            for node in ast.walk(_module(path)):
                if isinstance(node, ast.ClassDef) and node.name == ast.unparse(base):
                    body += "".join(ast.unparse(fn) for fn in node.body
                                    if isinstance(fn, ast.FunctionDef) and fn.name in called)
    return body


@functools.cache
def _input_members(service: str, operation: str) -> frozenset[str]:
    """Every member name in the operation's input shape, nested ones too."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    found: set[str] = set()

    def walk(shape, depth: int) -> None:
        if shape is None or depth > 4:
            return
        if shape.type_name == "structure":
            for name, member in shape.members.items():
                found.add(name)
                walk(member, depth + 1)
        elif shape.type_name == "list":
            walk(shape.member, depth + 1)

    walk(model.input_shape, 0)
    return frozenset(found)


def passes_role(service: str, operation: str, text: str) -> bool:
    members = _input_members(service, operation) if service.startswith("sagemaker") else frozenset()
    return any(m.endswith("RoleArn") for m in members) and re.search(r"RoleArn[\"']?\s*[:=]", text) is not None


def passes_tags(service: str, operation: str, text: str) -> bool:
    members = _input_members(service, operation) if service.startswith("sagemaker") else frozenset()
    return "Tags" in members and re.search(r"[\"']Tags[\"']\s*:|\bTags\s*=", text) is not None


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    path: str | None  # the module making it (None: s3fs's data plane)
    why: str
    params: dict = field(default_factory=dict, compare=False, hash=False)


@functools.cache
def golden_calls() -> tuple[Call, ...]:
    """The recorded requests made in the data-science account (the Airflow role's); a stage
    account's are its deployment role's (tests/aws/test_iam_accounts.py)."""
    calls = []
    for file in sorted(GOLDEN_DIR.glob("*.json")):
        for entry in json.loads(file.read_text()):
            if entry.get("account") not in (ACCOUNT, None):
                continue
            site = entry.get("site")  # "path::Function", or null for s3fs's IO thread
            calls.append(Call(entry["service"], entry["operation"], site.split("::")[0] if site else None,
                              f"golden {file.name}", entry.get("params") or {}))
    return tuple(calls)


def provider_trigger_calls() -> list[Call]:
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    calls = []
    for path, job_type in PROVIDER_TRIGGERS:
        service, operation = aws_calls.waiter_operations()[SageMakerTrigger._get_job_type_waiter(job_type)]
        calls.append(Call(service, operation, path, f"SageMakerTrigger(job_type={job_type!r})"))
    return calls


@functools.cache
def all_calls() -> tuple[Call, ...]:
    calls = [Call(s.service, s.operation, s.path, f"{s.path}:{s.function}") for s in aws_calls.call_sites()]
    calls += provider_trigger_calls()
    calls += [Call("s3", operation, None, f"ObjectStoragePath: {why}") for operation, why in DATA_PLANE.items()]
    calls += golden_calls()
    return tuple(calls)


@functools.cache
def implied_flags() -> dict[tuple[str, str, str], tuple[bool, bool]]:
    """``(path, service, operation) -> (passes a role, passes tags)`` for every call site."""
    flags: dict[tuple[str, str, str], tuple[bool, bool]] = {}
    for site in aws_calls.call_sites():
        text = request_text(site.path, site.function)
        role = passes_role(site.service, site.operation, text)
        tags = passes_tags(site.service, site.operation, text)
        old = flags.get((site.path, site.service, site.operation), (False, False))
        flags[site.path, site.service, site.operation] = (old[0] or role, old[1] or tags)
    return flags


# ------------------------------------------------------------------------------ requirements
@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    why: str = ""
    any_name: bool = False  # the service names the resource: only account and region scope it

    @property
    def ctx(self) -> dict[str, str]:
        return dict(self.context)


def object_arn(key: str, bucket: str = BUCKET) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def needs_of(call: Call) -> list[Need]:
    """The IAM requirements of one call; an operation this test cannot classify raises."""
    why = f"{call.service}:{call.operation} at {call.why}"
    if call.service == "s3":
        if call.operation not in S3_ACTIONS:
            raise KeyError(f"S3 operation {call.operation} ({call.why}) is not in S3_ACTIONS: add its IAM action")
        found = []
        for action in S3_ACTIONS[call.operation]:
            if action in S3_BUCKET_ACTIONS:
                found.append(Need(action, f"arn:aws:s3:::{BUCKET}", (("s3:prefix", f"{PREFIX}/registry/"),), why))
            else:
                found.append(Need(action, object_arn(f"{PREFIX}/registry/deployments/prod/record.json"), (), why))
        return found
    if call.service == "cloudwatch":
        if call.operation not in CLOUDWATCH_RESOURCES:
            raise KeyError(f"CloudWatch operation {call.operation} ({call.why}) is not in CLOUDWATCH_RESOURCES")
        return [Need(f"cloudwatch:{call.operation}", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}", (), why)
                for name in alarm_names(call.path)]
    if call.service in ("sagemaker", "sagemaker-runtime"):
        if call.operation not in SAGEMAKER_RESOURCES:
            raise KeyError(f"SageMaker operation {call.operation} ({call.why}) is not in SAGEMAKER_RESOURCES")
        kinds = SAGEMAKER_RESOURCES[call.operation]
        action = f"sagemaker:{call.operation}"
        if kinds == ("*",):
            return [Need(action, "*", (), why)]
        if kinds[0] in SERVICE_NAMED:
            return [Need(action, sagemaker_arn(kinds[0], SERVICE_NAMED[kinds[0]]), (), why, any_name=True)]
        found = [Need(action, sagemaker_arn(kind, name), (), why) for kind in kinds for name in names_of(kind, call.path)]
        role, tags = implied_flags().get((call.path, call.service, call.operation), (False, False))
        role = role or any(key.endswith("RoleArn") for key in _flat_keys(call.params))
        tags = tags or "Tags" in call.params
        if role:
            found.append(Need("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}",
                              (("iam:PassedToService", ROLE_SERVICE),), f"{why} passes the execution role"))
        if tags:
            found += [Need("sagemaker:AddTags", sagemaker_arn(kinds[0], name), (), f"{why} passes Tags")
                      for name in names_of(kinds[0], call.path)]
        return found
    raise KeyError(f"service {call.service} ({call.why}) has no IAM mapping in this test")


def _flat_keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _flat_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _flat_keys(v)}
    return set()


def keyspaces_needs() -> list[Need]:
    base = f"arn:aws:cassandra:{REGION}:{ACCOUNT}:/keyspace"
    reads = sorted({config["source"]["keyspaces"]["table"] for config in _pipelines().values()
                    if "keyspaces" in config.get("source", {})})
    writes = sorted({config["segmentation"]["results_table"] for config in _pipelines().values()
                     if "results_table" in config.get("segmentation", {})} | {"predictions"})
    return ([Need("cassandra:Select", f"{base}/{KEYSPACE}/table/{t}", (), "keyspaces_ingest SELECT") for t in reads]
            + [Need("cassandra:Select", f"{base}/{ks}/table/{t}", (), "driver metadata") for ks, t in KEYSPACES_SYSTEM_TABLES]
            + [Need("cassandra:Modify", f"{base}/{KEYSPACE}/table/{t}", (), "INSERT of results") for t in writes])


@functools.cache
def airflow_needs() -> tuple[Need, ...]:
    found: list[Need] = []
    for call in all_calls():
        if (call.service, call.operation) not in CROSS_ACCOUNT_CALLS:
            found += needs_of(call)
    return tuple(dict.fromkeys(found + keyspaces_needs()))


@functools.cache
def sagemaker_role_needs() -> tuple[Need, ...]:
    """What SageMaker does with the execution role for the jobs and endpoints the code creates."""
    from mlops.backends.aws.model_monitor import DATA_METRICS_NAMESPACE, analyzer_image
    from mlops.backends.aws.sklearn_image import sklearn_image_uri
    from mlops.deploy.endpoint_options import data_capture_config

    capture = data_capture_config(settings(), PROD_ENDPOINT, _pipelines()["churn"]["endpoint"]["prod"])
    capture_key = capture["DestinationS3Uri"].removeprefix(f"s3://{BUCKET}/") + "/AllTraffic/2024/05/01/00/x.jsonl"
    image = sklearn_image_uri(REGION, "inference")
    analyzer = analyzer_image(REGION)
    report_key = (f"{PREFIX}/monitoring/model-monitor/{ports().hosting.name(PROD_ENDPOINT)}/"
                  f"{ports().monitoring.schedule_name(PROD_ENDPOINT)}/2024/05/01/00/constraint_violations.json")
    registry_account, repository = image.split(".")[0], image.split("/", 1)[1].split(":")[0]
    reads = [capture_key, f"{PREFIX}/training/churn/run/baseline/statistics.json",  # Model Monitor's job
             f"{PREFIX}/code/0123abcd/sourcedir.tar.gz", f"{PREFIX}/training/churn/run/train.parquet",
             f"{PREFIX}/training/churn/run/model.tar.gz", f"{PREFIX}/autopilot/churn/run/transform/input.csv"]
    writes = [f"{PREFIX}/training/churn/run/output/model.tar.gz", f"{PREFIX}/training/churn/run/checkpoints/x",
              f"{PREFIX}/autopilot/churn/run/automl/output.json", f"{PREFIX}/autopilot/churn/run/transform/output/x.out",
              capture_key, report_key]
    repositories = [(registry_account, repository, "scikit-learn training and serving image"),
                    ("683313688378", "sagemaker-sklearn-automl", "Autopilot feature transformers"),
                    ("683313688378", "sagemaker-xgboost", "Autopilot HYPERPARAMETER_TUNING candidates"),
                    ("763104351884", "autogluon-training", "Autopilot ENSEMBLING candidates' training jobs"),
                    ("763104351884", "autogluon-inference", "Autopilot ENSEMBLING candidates"),
                    ("205585389593", "sagemaker-clarify-processing", "Autopilot explainability (SageMaker Clarify)"),
                    (analyzer.split(".")[0], analyzer.split("/", 1)[1], "Model Monitor's data-quality analyzer")]
    log_groups = ["/aws/sagemaker/TrainingJobs", "/aws/sagemaker/TransformJobs", "/aws/sagemaker/ProcessingJobs",
                  f"/aws/sagemaker/Endpoints/{ports().hosting.name(PROD_ENDPOINT)}"]
    found = [Need("s3:GetObject", object_arn(key), (), "job inputs, code, model artifacts") for key in reads]
    found += [Need("s3:PutObject", object_arn(key), (), "job outputs, checkpoints, data capture") for key in writes]
    found += [Need("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", (("s3:prefix", f"{PREFIX}/training/churn/run/"),),
                   "S3Prefix channels and data sources")]
    found += [Need("ecr:GetAuthorizationToken", "*", (), "image pulls")]
    found += [Need(action, f"arn:aws:ecr:{REGION}:{account}:repository/{repo}", (), why)
              for account, repo, why in repositories
              for action in ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage")]
    found += [Need(action, f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:x", (), "container logs")
              for group in log_groups
              for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")]
    found += [Need("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", namespace),), "job and endpoint metrics")
              for namespace in ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/Endpoints", DATA_METRICS_NAMESPACE)]
    found += [Need("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", (("iam:PassedToService", ROLE_SERVICE),),
                   "Autopilot passes this role to the jobs it launches and Clarify to its temporary model")]
    found += [Need(action, sagemaker_arn(kind, CLARIFY_TEMPORARY), (), "Autopilot explainability's temporary endpoint",
                   any_name=True)
              for action in AUTOPILOT_ROLE_MINIMUM if action.startswith("sagemaker:")
              for kind in SAGEMAKER_RESOURCES[action.removeprefix("sagemaker:")]]
    return tuple(found)


@functools.cache
def kms_needs() -> tuple[Need, ...]:
    """What S3 asks KMS for on the roles' behalf when the data bucket uses SSE-KMS with the project's key."""
    via_s3 = ("kms:ViaService", f"s3.{REGION}.amazonaws.com")
    contexts = [("kms:EncryptionContext:aws:s3:arn", object_arn(f"{PREFIX}/raw/churn/ds=2024-05-01/part-0.parquet")),
                ("kms:EncryptionContext:aws:s3:arn", f"arn:aws:s3:::{BUCKET}")]  # the latter with S3 Bucket Keys
    return tuple(Need(action, KMS_KEY, (via_s3, context), why) for context in contexts for action, why in (
        ("kms:GenerateDataKey", "writing an SSE-KMS object (PutObject, multipart uploads, copies)"),
        ("kms:Decrypt", "reading one (GetObject, copies) and completing a multipart upload")))


NEEDS = {AIRFLOW_POLICY: airflow_needs, SAGEMAKER_POLICY: sagemaker_role_needs, KMS_POLICY: kms_needs}


def rendered(name: str) -> dict:
    return iam.render(name, VALUES)


def outsiders(need: Need) -> list[tuple[str, dict[str, str]]]:
    """The same request on resources the project does not own (each must be denied)."""
    resource, ctx = need.resource, need.ctx
    if resource == "*":
        return [(resource, {**ctx, key: "Other/Namespace"}) for key in ctx]
    found = []
    if resource.startswith("arn:aws:s3:::"):
        bucket, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
        found.append((f"arn:aws:s3:::other-{bucket}" + (f"/{key}" if key else ""), ctx))
        if key:
            found.append((object_arn("elsewhere/" + key.removeprefix(PREFIX + "/")), ctx))
        if "s3:prefix" in ctx:
            found.append((resource, {**ctx, "s3:prefix": "elsewhere/"}))
        return found
    if resource.startswith("arn:aws:iam::"):
        return [(resource.replace(ROLE_NAME, "other-role"), ctx), (resource.replace(ACCOUNT, OTHER_ACCOUNT), ctx),
                (resource, {**ctx, "iam:PassedToService": "ec2.amazonaws.com"})]
    if ":ecr:" in resource:
        return [(resource.replace(f":{REGION}:", f":{OTHER_REGION}:"), ctx),
                (resource.replace("repository/", "repository/other-"), ctx)]
    found.append((resource.replace(f":{ACCOUNT}:", f":{OTHER_ACCOUNT}:"), ctx))
    found.append((resource.replace(f":{REGION}:", f":{OTHER_REGION}:"), ctx))
    if ":kms:" in resource:
        found += [(resource.replace("key/", "key/other-"), ctx),
                  (resource, {**ctx, "kms:ViaService": f"ec2.{REGION}.amazonaws.com"}),
                  (resource, {**ctx, "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::other-{BUCKET}"}),
                  (resource, {**ctx, "kms:EncryptionContext:aws:s3:arn": object_arn("elsewhere/x")})]
    elif ":sagemaker:" in resource and need.any_name:
        pass  # named by the service (Autopilot's Clarify, Model Monitor): account and region are the scope
    elif ":sagemaker:" in resource:
        kind, _, name = resource.split(":", 5)[5].partition("/")
        found.append((sagemaker_arn(kind, "zz" + name), ctx))
    elif ":alarm:" in resource:
        found.append((resource.replace(":alarm:", ":alarm:zz"), ctx))
    elif ":cassandra:" in resource:
        found.append((resource.replace("/keyspace/", "/keyspace/zz"), ctx))
    elif ":log-group:" in resource:
        found.append((resource.replace("log-group:/aws/sagemaker/", "log-group:/aws/other/"), ctx))
    return found


# ================================================================================ tests
@pytest.mark.parametrize("name", POLICIES)
def test_policy_is_valid_json_with_version_and_sids(name):
    policy = json.loads((iam.IAM_DIR / name).read_text())
    assert policy["Version"] == "2012-10-17"
    sids = [statement.get("Sid") for statement in iam.statements(policy)]
    assert all(sids) and len(set(sids)) == len(sids), f"every statement needs a unique Sid: {sids}"
    assert all(statement["Effect"] == "Allow" for statement in iam.statements(policy))


@pytest.mark.parametrize("name", POLICIES)
def test_every_placeholder_is_documented_and_filled(name):
    assert iam.placeholders(name) == PLACEHOLDERS[name]
    text = json.dumps(rendered(name))
    assert "${" not in text and "$" not in text.replace("$$", "")
    readme = (iam.IAM_DIR / "README.md").read_text()
    assert all(f"${{{placeholder}}}" in readme for placeholder in PLACEHOLDERS[name])


@pytest.mark.parametrize("name", POLICIES)
def test_no_wildcard_actions(name):
    for statement in iam.statements(rendered(name)):
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in iam.as_list(statement["Action"]):
            assert "*" not in action and "?" not in action, f"{statement['Sid']}: wildcard action {action}"


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_star_resource_only_for_actions_without_resource_level_permissions(name):
    for statement in iam.statements(rendered(name)):
        if "*" in iam.as_list(statement["Resource"]):
            assert iam.as_list(statement["Resource"]) == ["*"], statement["Sid"]
            assert set(iam.as_list(statement["Action"])) <= set(STAR_RESOURCE_ACTIONS), statement["Sid"]
            assert "NoResourceLevelPermissions" in statement["Sid"], statement["Sid"]


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_granted_action_names_are_real(name):
    import botocore.session

    session = botocore.session.get_session()
    operations = {service: set(session.get_service_model(service).operation_names)
                  for service in ("sagemaker", "sagemaker-runtime", "cloudwatch", "logs", "ecr", "kms")}
    s3_actions = {action for actions in S3_ACTIONS.values() for action in actions}
    for action in iam.granted_actions(rendered(name)):
        prefix, _, operation = action.partition(":")
        if action in IAM_ONLY_ACTIONS:
            continue
        if prefix == "s3":
            assert action in s3_actions, action
        elif prefix == "sagemaker":
            assert operation in operations["sagemaker"] | operations["sagemaker-runtime"], action
        else:
            assert prefix in operations and operation in operations[prefix], action


def test_every_call_the_code_makes_is_classified():
    """An AWS call this test cannot map to IAM (new service, new S3 operation) fails here."""
    unknown = []
    for call in all_calls():
        if (call.service, call.operation) in CROSS_ACCOUNT_CALLS:
            continue
        try:
            needs_of(call)
        except KeyError as err:
            unknown.append(str(err))
    assert not unknown, "\n".join(unknown)


def test_operation_names_written_as_strings_are_calls_the_test_knows():
    """A call made through ``getattr(client, "<operation>")`` is invisible to the call-site scan:
    every operation name written as a string literal in the source must be a known call."""
    known = {(call.service, call.operation) for call in all_calls()}
    ops = aws_calls.operations()
    for folder in aws_calls.SOURCE_DIRS:
        for file in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ops:
                    candidates = set(ops[node.value])
                    assert candidates & known, f"{file.relative_to(ROOT)}: {node.value!r} is a call the test misses"


def test_keyspaces_tasks_issue_only_select_and_insert():
    """cassandra:Select and cassandra:Modify are all the Airflow tasks need (DDL is the loader CLI's)."""
    assert "SELECT" in (ROOT / "plugins/mlops/operators/keyspaces.py").read_text()
    assert "INSERT INTO" in (ROOT / "plugins/mlops/hooks/keyspaces.py").read_text()
    users = [file.relative_to(ROOT).as_posix() for folder in ("plugins/mlops", "dags", "tools")
             for file in (ROOT / folder).rglob("*.py") if re.search(r"\bhook\.execute\(", file.read_text())]
    assert users == ["tools/keyspaces_load.py"], users


def test_role_and_tag_implications_match_the_code():
    flags = implied_flags()
    assert {op for (_, _, op), (role, _) in flags.items() if role} == {
        "CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateAutoMLJobV2", "CreateModel"}
    assert {(Path(path).stem, op) for (path, _, op), (_, tags) in flags.items() if tags} == {
        ("training", "CreateTrainingJob"), ("training", "CreateHyperParameterTuningJob"),
        ("hosting", "CreateModel"), ("hosting", "CreateEndpointConfig"), ("hosting", "CreateEndpoint")}


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_policy_allows_everything_the_code_needs(name):
    policy = rendered(name)
    denied = [f"{need.action} on {need.resource} {need.ctx or ''} ({need.why})" for need in NEEDS[name]()
              if not iam.allowed(policy, need.action, need.resource, need.ctx)]
    assert not denied, "\n".join(denied)


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_policy_denies_the_same_calls_outside_the_project(name):
    policy = rendered(name)
    leaks = [f"{need.action} on {resource} {ctx}" for need in NEEDS[name]()
             for resource, ctx in outsiders(need) if iam.allowed(policy, need.action, resource, ctx)]
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_policy_grants_nothing_the_code_does_not_use(name):
    needs = NEEDS[name]()
    unused = [f"{statement['Sid']}: {action} on {resource}" for statement, action, resource in iam.grants(rendered(name))
              if not any(iam.matches(action, need.action, ignore_case=True) and iam.matches(resource, need.resource)
                         for need in needs)]
    assert not unused, "\n".join(unused)


def test_golden_requests_are_allowed():
    """Recorded requests (tests/aws/golden/*.json, when present) are covered like the call sites."""
    policy = rendered(AIRFLOW_POLICY)
    for call in golden_calls():
        if (call.service, call.operation) in CROSS_ACCOUNT_CALLS:
            continue
        for need in needs_of(call):
            assert iam.allowed(policy, need.action, need.resource, need.ctx), need


def test_trust_policy_lets_only_sagemaker_of_this_account_assume_the_role():
    (statement,) = iam.statements(rendered(TRUST_POLICY))
    assert statement["Principal"] == {"Service": ROLE_SERVICE}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_policy_fits_the_managed_policy_size_limit(name):
    assert len(json.dumps(rendered(name), separators=(",", ":"))) <= 6144


def test_the_sagemaker_role_grants_awss_documented_autopilot_minimum():
    """Every action AWS documents for the role passed to CreateAutoMLJobV2 is granted, on the
    project's resources (the Clarify ones on any name in this account and region)."""
    policy = rendered(SAGEMAKER_POLICY)
    needed = {need.action for need in sagemaker_role_needs()}
    assert set(AUTOPILOT_ROLE_MINIMUM) <= needed
    assert all(iam.allowed(policy, need.action, need.resource, need.ctx) for need in sagemaker_role_needs()
               if need.action in AUTOPILOT_ROLE_MINIMUM)


def test_the_sse_kms_policy_lets_s3_use_only_the_projects_key_for_the_data_bucket():
    policy = rendered(KMS_POLICY)
    (statement,) = iam.statements(policy)
    assert statement["Resource"] == KMS_KEY
    assert not iam.allowed(policy, "kms:Decrypt", KMS_KEY, {})  # not outside S3's requests
    assert not iam.allowed(policy, "kms:Encrypt", KMS_KEY, dict(kms_needs()[0].context))
