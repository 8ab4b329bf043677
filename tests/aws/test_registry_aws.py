"""The SageMaker Model Registry behind the Registry port: request shapes through moto.

Verified how: moto's SageMaker (model package groups and packages, list sort and pagination,
update_model_package) and moto's S3 (metrics, metadata and histories), the real boto3 clients.
The port is given logical group names; SageMaker's carry the settings' name prefix.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from moto_fixtures import (  # noqa: F401  (importing a fixture registers it)
    AWS_GROUP,
    BUCKET,
    GROUP,
    IMAGE,
    METADATA_VALUE,
    SERVING_SOURCE,
    cloudwatch_fixture,
    metadata,
    moto_sagemaker_fixture,
    put_artifact,
    read_s3_json,
    read_s3_tar_names,
    register,
    registry_fixture,
    sagemaker_calls_fixture,
)

from mlops.backends.base import (
    APPROVED,
    PENDING,
    REJECTED,
    Deployment,
    ModelPackageGroupNotFound,
    ModelPackageNotFound,
)
from mlops.deploy.flow import version_in_stage_at

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def deployment(arn: str, at: datetime, outcome: str = "succeeded", stage: str = "prod") -> Deployment:
    return Deployment(arn=arn, stage=stage, endpoint_name=f"churn-{stage}", endpoint_config=f"cfg-{at:%H%M%S}",
                      outcome=outcome, deployed_at=at.isoformat(), detail={"by": "deploy_model"})


# ---------------------------------------------------------------- groups and registration
def test_ensure_group_creates_the_group_once(registry, moto_sagemaker, sagemaker_calls):
    registry.ensure_group(GROUP)
    registry.ensure_group("retail-segments", "RFM segments")

    assert sagemaker_calls.named("CreateModelPackageGroup") == [
        {"ModelPackageGroupName": "mlops-retail-segments", "ModelPackageGroupDescription": "RFM segments"}
    ]
    assert moto_sagemaker.describe_model_package_group(
        ModelPackageGroupName=AWS_GROUP)["ModelPackageGroupName"] == AWS_GROUP


def test_a_group_name_that_has_the_prefix_already_is_not_prefixed_again(registry, s3, sagemaker_calls):
    version = register(registry, s3)

    registry.ensure_group(version.group)
    again = register(registry, s3, 1, group=version.group)

    assert (version.group, again.group, again.version) == (AWS_GROUP, AWS_GROUP, 2)
    assert [v.arn for v in registry.list_versions(version.group)] == [v.arn for v in registry.list_versions(GROUP)]
    assert not sagemaker_calls.named("CreateModelPackageGroup")


def test_a_group_name_too_long_is_cut_to_63_characters_with_a_hash(registry, s3, moto_sagemaker):
    group = "churn-classifier-for-the-retail-banking-customers-of-region-7"

    registry.ensure_group(group)
    version = register(registry, s3, group=group)

    assert len(version.group) == 63
    assert re.fullmatch(r"mlops-churn-classifier-for-the-retail-[a-z0-9-]+-[0-9a-f]{8}", version.group)
    assert version.group == registry.group_name(group) != registry.group_name(group[:-1] + "8")
    assert moto_sagemaker.describe_model_package_group(ModelPackageGroupName=version.group)
    assert registry.latest_approved(group) is None and len(registry.list_versions(group)) == 1


def test_register_creates_a_pending_package_with_the_serving_container(registry, s3, moto_sagemaker):
    version = register(registry, s3)

    package = moto_sagemaker.describe_model_package(ModelPackageName=version.arn)
    assert package["ModelApprovalStatus"] == PENDING == version.status
    assert (package["ModelPackageGroupName"], package["ModelPackageVersion"]) == (AWS_GROUP, 1)
    assert (version.group, version.arn) == (AWS_GROUP, package["ModelPackageArn"])
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == version.model_uri
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert read_s3_tar_names(s3, container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]) == SERVING_SOURCE
    assert package["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "application/json"]


def test_register_stores_metrics_as_model_metrics_with_their_digest(registry, s3, moto_sagemaker):
    import hashlib

    version = register(registry, s3)

    statistics = moto_sagemaker.describe_model_package(ModelPackageName=version.arn)["ModelMetrics"][
        "ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert read_s3_json(s3, statistics["S3Uri"]) == {"roc_auc": 0.9, "accuracy": 0.88}
    bucket, _, key = statistics["S3Uri"].removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert statistics["ContentDigest"] == f"sha256:{hashlib.sha256(body).hexdigest()}"


def test_register_writes_lineage_as_customer_metadata_sagemaker_accepts(registry, s3, moto_sagemaker):
    version = register(registry, s3)

    properties = moto_sagemaker.describe_model_package(ModelPackageName=version.arn)["CustomerMetadataProperties"]
    lineage = metadata(0)
    assert properties["sha256"] == version.sha256
    for key in ("dataset_digest", "validation_id", "code_version", "dag_id", "report_uri", "golden_uri"):
        assert properties[key] == lineage[key]
    assert properties["run_id"] == "manual__2026-11-21T06:00:00+00:00"
    assert (properties["hp.learning_rate"], properties["hp.max_iter"]) == ("0.1", "100")
    assert all(METADATA_VALUE.fullmatch(value) for value in properties.values()), properties
    assert len(properties) <= 50


def test_get_reads_back_every_field(registry, s3):
    version = register(registry, s3)

    assert registry.get(version.arn) == version
    assert version.metrics == {"roc_auc": 0.9, "accuracy": 0.88}
    assert version.metadata == metadata(0)  # nested values (hyperparameters, fold scores) included
    assert version.model_uri.endswith("/churn-classifier-0/model.tar.gz")
    assert datetime.fromisoformat(version.created_at).utcoffset() == timedelta(0)
    assert version.approver is None and version.approval_reason is None


def test_without_an_identity_the_client_token_makes_only_a_retry_idempotent(registry, s3, sagemaker_calls):
    uri, sha = put_artifact(s3)
    no_identity = [{k: v for k, v in metadata(n).items() if k != "dataset_digest"} for n in range(2)]
    for _ in range(2):
        registry.register(GROUP, uri, sha, {"roc_auc": 0.9}, no_identity[0])
    registry.register(GROUP, uri, sha, {"roc_auc": 0.9}, no_identity[1])

    tokens = [params["ClientToken"] for params in sagemaker_calls.named("CreateModelPackage")]
    assert tokens[0] == tokens[1] != tokens[2]
    assert all(len(token) <= 36 for token in tokens)


# ---------------------------------------------------------------- one package per identity
def run_metadata(run: int, **lineage) -> dict:
    """A train_model run's metadata: its own run id, validation and report; ``lineage`` changed."""
    return {**metadata(0), "run_id": f"scheduled__2026-11-2{run}T06:00:00+00:00",
            "validation_id": f"validation-run-{run}", "report_uri": f"s3://{BUCKET}/mlops/reports/{run}.html",
            **lineage}


def register_run(registry, s3, run: int, **lineage):
    uri, sha = put_artifact(s3, f"run-{run}", f"model of run {run}".encode())
    return registry.register(GROUP, uri, sha, {"roc_auc": 0.9 + run / 1000}, run_metadata(run, **lineage))


IDENTITY_CHANGES = [
    {"dataset_digest": "e" * 64},
    {"code_version": "fedcba987654"},
    {"hyperparameters": {"learning_rate": 0.05, "max_iter": 100, "max_leaf_nodes": 31}},
]


def test_the_client_token_is_one_per_identity_and_valid_for_create_model_package(registry):
    import botocore.session

    from mlops.backends.base import RegistrationIdentity

    def token(run: int, **lineage) -> str:
        return registry.client_token(AWS_GROUP, RegistrationIdentity.from_metadata(run_metadata(run, **lineage)))

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(
        "CreateModelPackage").input_shape.members["ClientToken"]
    tokens = [token(1), token(2)] + [token(3, **change) for change in IDENTITY_CHANGES]

    assert tokens[0] == tokens[1]  # two runs, one identity
    assert len(set(tokens[1:])) == len(tokens) - 1  # any identity field changed: another token
    for value in tokens:
        assert shape.metadata["min"] <= len(value) <= shape.metadata["max"]
        assert re.fullmatch(shape.metadata["pattern"], value)


def test_a_second_run_with_the_same_identity_gets_the_package_back_without_creating_one(
        registry, s3, sagemaker_calls):
    from mlops.backends.base import RegistrationIdentity

    first = register_run(registry, s3, 1)
    registry.approve(first.arn, "dana", "good", {})

    again = register_run(registry, s3, 2)

    assert (again.arn, again.reused, again.status, again.approver) == (first.arn, True, APPROVED, "dana")
    assert first.reused is False
    [create] = sagemaker_calls.named("CreateModelPackage")
    assert create["ClientToken"] == registry.client_token(
        AWS_GROUP, RegistrationIdentity.from_metadata(run_metadata(1)))
    assert [v.arn for v in registry.list_versions(GROUP)] == [first.arn]


@pytest.mark.parametrize("change", IDENTITY_CHANGES)
def test_a_different_digest_code_version_or_hyperparameters_creates_a_package(registry, s3, sagemaker_calls,
                                                                               change):
    first = register_run(registry, s3, 1)
    other = register_run(registry, s3, 2, **change)

    assert (other.version, other.reused) == (2, False) and other.arn != first.arn
    assert len({c["ClientToken"] for c in sagemaker_calls.named("CreateModelPackage")}) == 2


def test_without_a_dataset_digest_every_registration_creates_a_package(registry, s3):
    versions = [register_run(registry, s3, run, dataset_digest=None) for run in range(3)]
    assert [(v.version, v.reused) for v in versions] == [(1, False), (2, False), (3, False)]


class ClientTokens:
    """What SageMaker does with ``CreateModelPackage``'s ``ClientToken`` and moto does not:
    a token seen before is answered with the first request's package, or, with ``refuse``,
    refused (as SageMaker may for a token reused with other parameters)."""

    def __init__(self, client, refuse: bool = False):
        self.packages: dict[str, str] = {}
        self.refuse = refuse
        client.meta.events.register("before-call.sagemaker.CreateModelPackage", self._before)
        client.meta.events.register("after-call.sagemaker.CreateModelPackage", self._after)

    def _before(self, params, context, **_):
        import json
        from types import SimpleNamespace

        token = context["client_token"] = json.loads(params["body"])["ClientToken"]
        if token not in self.packages:
            return None
        if self.refuse:
            return SimpleNamespace(status_code=400, headers={}), {
                "Error": {"Code": "ValidationException", "Message": "ClientToken reused with other parameters"},
                "ResponseMetadata": {"HTTPStatusCode": 400}}
        return SimpleNamespace(status_code=200, headers={}), {
            "ModelPackageArn": self.packages[token], "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _after(self, http_response, parsed, context, **_):
        if http_response.status_code < 300:
            self.packages.setdefault(context["client_token"], parsed["ModelPackageArn"])


def listed_too_late(monkeypatch, registry, looks: int = 1) -> None:
    """The other run's package is not found by the first ``looks`` look-ups: both runs looked
    before either created (the race the ClientToken closes)."""
    real = registry._registered
    calls = iter(range(10**6))
    monkeypatch.setattr(registry, "_registered",
                        lambda group, identity: None if next(calls) < looks else real(group, identity))


def test_two_runs_at_once_end_with_one_package_through_the_client_token(registry, s3, moto_sagemaker,
                                                                          monkeypatch):
    ClientTokens(moto_sagemaker)
    first = register_run(registry, s3, 1)
    listed_too_late(monkeypatch, registry)

    second = register_run(registry, s3, 2)

    assert (second.arn, second.reused) == (first.arn, True)
    assert second.metadata["run_id"] == run_metadata(1)["run_id"]
    assert [v.arn for v in registry.list_versions(GROUP)] == [first.arn]


def test_a_retry_answered_through_the_client_token_is_not_reported_as_reused(registry, s3, moto_sagemaker,
                                                                             monkeypatch):
    ClientTokens(moto_sagemaker)
    first = register_run(registry, s3, 1)
    listed_too_late(monkeypatch, registry)

    retry = register_run(registry, s3, 1)  # the same run's request again: its own package, not another run's

    assert (retry.arn, retry.reused) == (first.arn, False)


def test_a_refused_client_token_falls_back_to_the_package_of_the_identity(registry, s3, moto_sagemaker,
                                                                          monkeypatch):
    ClientTokens(moto_sagemaker, refuse=True)
    first = register_run(registry, s3, 1)
    listed_too_late(monkeypatch, registry)

    second = register_run(registry, s3, 2)

    assert (second.arn, second.reused) == (first.arn, True)
    assert [v.arn for v in registry.list_versions(GROUP)] == [first.arn]


def test_setting_the_status_a_package_has_records_no_second_decision(registry, s3, sagemaker_calls):
    version = register(registry, s3)
    registry.approve(version.arn, "dana", "good", {})

    again = registry.approve(version.arn, "erin", "also good", {})

    assert (again.approver, again.approval_reason) == ("dana", "good")
    assert len(sagemaker_calls.named("UpdateModelPackage")) == 1
    assert [h["approver"] for h in registry.approval_history(version.arn)] == ["dana"]


def test_register_without_the_group_names_it(registry, s3):
    uri, sha = put_artifact(s3)
    with pytest.raises(ModelPackageGroupNotFound, match="mlops-no-such-group"):
        registry.register("no-such-group", uri, sha, {}, {})


@pytest.mark.parametrize("sha256", ["abc", "z" * 64, None])
def test_register_rejects_a_malformed_sha256(registry, s3, sha256):
    uri, _ = put_artifact(s3)
    with pytest.raises(ValueError, match="sha256"):
        registry.register(GROUP, uri, sha256, {}, {})


def test_register_rejects_a_local_artifact(registry):
    with pytest.raises(ValueError, match="s3://"):
        registry.register(GROUP, "file:///tmp/model.tar.gz", "a" * 64, {}, {})


def test_get_unknown_arn_names_it(registry):
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/99"
    with pytest.raises(ModelPackageNotFound, match="99"):
        registry.get(arn)


# ---------------------------------------------------------------- listing
def test_list_versions_is_newest_first_and_asks_sagemaker_for_that_order(registry, s3, sagemaker_calls):
    versions = [register(registry, s3, n) for n in range(3)]

    listed = registry.list_versions(GROUP)

    assert [v.version for v in listed] == [3, 2, 1]
    assert [v.arn for v in listed] == [v.arn for v in reversed(versions)]
    request = sagemaker_calls.named("ListModelPackages")[-1]
    assert (request["SortBy"], request["SortOrder"]) == ("CreationTime", "Descending")


def test_list_versions_follows_every_page(registry, s3, sagemaker_calls):
    for n in range(5):
        register(registry, s3, n)
    registry.page_size = 2
    listed_before = len(sagemaker_calls.named("ListModelPackages"))  # registration looks for its identity

    assert [v.version for v in registry.list_versions(GROUP)] == [5, 4, 3, 2, 1]
    assert len(sagemaker_calls.named("ListModelPackages")) - listed_before == 3


def test_list_versions_filters_by_status(registry, s3):
    first, second, third = (register(registry, s3, n) for n in range(3))
    registry.approve(first.arn, "dana", "good", {})
    registry.reject(second.arn, "dana", "worse", {})

    assert [v.arn for v in registry.list_versions(GROUP, APPROVED)] == [first.arn]
    assert [v.arn for v in registry.list_versions(GROUP, REJECTED)] == [second.arn]
    assert [v.arn for v in registry.list_versions(GROUP, PENDING)] == [third.arn]
    with pytest.raises(ValueError, match="Approved"):
        registry.list_versions(GROUP, "Deployed")


def test_latest_approved_is_the_newest_version_not_the_oldest(registry, s3, sagemaker_calls):
    old, new, _pending = (register(registry, s3, n) for n in range(3))
    registry.approve(new.arn, "dana", "good", {})
    registry.approve(old.arn, "dana", "approved later, but older", {})

    assert registry.latest_approved(GROUP).arn == new.arn
    request = sagemaker_calls.named("ListModelPackages")[-1]
    assert request["ModelApprovalStatus"] == APPROVED and request["SortOrder"] == "Descending"


def test_latest_approved_is_none_without_approvals(registry, s3):
    register(registry, s3)
    assert registry.latest_approved(GROUP) is None
    assert registry.latest_approved("never-created") is None


# ---------------------------------------------------------------- approvals
def test_approve_updates_the_package_with_an_approval_description(registry, s3, moto_sagemaker, sagemaker_calls):
    version = register(registry, s3)

    approved = registry.approve(version.arn, "Dana Smith", "holdout roc_auc 0.90 >= 0.80", {"roc_auc": 0.9})

    request = sagemaker_calls.named("UpdateModelPackage")[-1]
    assert request["ModelApprovalStatus"] == APPROVED
    assert request["ApprovalDescription"] == "holdout roc_auc 0.90 >= 0.80"
    assert (approved.status, approved.approver, approved.approval_reason) == (
        APPROVED, "Dana Smith", "holdout roc_auc 0.90 >= 0.80")
    package = moto_sagemaker.describe_model_package(ModelPackageName=version.arn)
    assert package["CustomerMetadataProperties"]["sha256"] == version.sha256  # lineage survives the update
    assert approved.metadata == version.metadata and approved.metrics == version.metrics


def test_approval_history_keeps_approver_reason_and_evidence_newest_first(registry, s3):
    version = register(registry, s3)
    registry.approve(version.arn, "policy", "policy: roc_auc=0.9 >= 0.8", {"roc_auc": 0.9, "mode": "policy"})
    registry.reject(version.arn, "dana", "drift found", {"psi": 0.4})

    history = registry.approval_history(version.arn)

    assert [(h["previous_status"], h["status"], h["approver"]) for h in history] == [
        (APPROVED, REJECTED, "dana"), (PENDING, APPROVED, "policy")]
    assert history[1]["evidence"] == {"roc_auc": 0.9, "mode": "policy"}
    assert history[1]["reason"] == "policy: roc_auc=0.9 >= 0.8"
    assert registry.get(version.arn).status == REJECTED


def test_an_approver_name_with_symbols_is_stored_in_allowed_characters(registry, s3, moto_sagemaker):
    version = register(registry, s3)
    registry.approve(version.arn, "dana (on call) <dana@example.com>", "ok", {})

    stored = moto_sagemaker.describe_model_package(ModelPackageName=version.arn)["CustomerMetadataProperties"]
    assert METADATA_VALUE.fullmatch(stored["decided_by"])
    assert registry.approval_history(version.arn)[0]["approver"] == "dana (on call) <dana@example.com>"


def test_a_decision_made_in_studio_is_honoured(registry, s3, moto_sagemaker):
    version = register(registry, s3)
    properties = moto_sagemaker.describe_model_package(ModelPackageName=version.arn)["CustomerMetadataProperties"]
    # What Studio does: it changes the status and description, not this project's metadata.
    moto_sagemaker.update_model_package(ModelPackageArn=version.arn, ModelApprovalStatus=APPROVED,
                                        ApprovalDescription="looks good in Studio",
                                        CustomerMetadataProperties=properties)

    seen = registry.get(version.arn)

    assert (seen.status, seen.approval_reason) == (APPROVED, "looks good in Studio")
    # Studio's user, from LastModifiedBy (moto's stand-in profile name)
    assert seen.approver == moto_sagemaker.describe_model_package(
        ModelPackageName=version.arn)["LastModifiedBy"]["UserProfileName"] == "fake-user-profile-name"
    assert registry.latest_approved(GROUP).arn == version.arn


def test_an_external_decision_is_added_to_the_history_without_updating_the_package(
        registry, s3, moto_sagemaker, sagemaker_calls):
    version = register(registry, s3)
    moto_sagemaker.update_model_package(ModelPackageArn=version.arn, ModelApprovalStatus=APPROVED)
    updates = len(sagemaker_calls.named("UpdateModelPackage"))

    registry.record_external_decision(version.arn, APPROVED, "studio-user", "looks good", {"source": "studio"})

    assert len(sagemaker_calls.named("UpdateModelPackage")) == updates
    entry = registry.approval_history(version.arn)[0]
    assert (entry["status"], entry["approver"], entry["evidence"]["external"]) == (APPROVED, "studio-user", True)


def test_set_status_on_an_unknown_arn_names_it(registry):
    with pytest.raises(ModelPackageNotFound):
        registry.approve(f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/7", "d", "r", {})


def test_set_status_needs_json_evidence_and_changes_nothing_without_it(registry, s3):
    version = register(registry, s3)
    with pytest.raises(ValueError, match="evidence"):
        registry.approve(version.arn, "dana", "ok", {"when": object()})
    assert registry.get(version.arn).status == PENDING


# ---------------------------------------------------------------- deployment history
def test_deployments_are_newest_first_and_filter_by_stage(registry, s3):
    version = register(registry, s3)
    registry.record_deployment(deployment(version.arn, T0, stage="staging"))
    registry.record_deployment(deployment(version.arn, T0 + timedelta(hours=2)))
    registry.record_deployment(deployment(version.arn, T0 + timedelta(hours=1), outcome="failed"))

    assert [d.deployed_at for d in registry.deployments("prod")] == [
        (T0 + timedelta(hours=2)).isoformat(), (T0 + timedelta(hours=1)).isoformat()]
    assert [d.stage for d in registry.deployments()] == ["prod", "prod", "staging"]
    assert registry.deployments("prod")[0].detail == {"by": "deploy_model"}


def test_deployment_records_are_json_objects_under_registry_deployments(registry, s3):
    version = register(registry, s3)
    registry.record_deployment(deployment(version.arn, T0))

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlops-test-bucket",
                                                 Prefix="mlops/registry/deployments/prod/")["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("mlops/registry/deployments/prod/20261121T060000000000Z-")
    assert read_s3_json(s3, f"s3://mlops-test-bucket/{keys[0]}")["arn"] == version.arn


def test_version_in_stage_at_answers_which_version_was_in_prod(registry, s3):
    first, second = register(registry, s3, 0), register(registry, s3, 1)
    registry.record_deployment(deployment(first.arn, T0))
    registry.record_deployment(deployment(second.arn, T0 + timedelta(days=1)))
    registry.record_deployment(deployment(first.arn, T0 + timedelta(days=2), outcome="rolled_back"))

    assert version_in_stage_at(registry, "prod", T0 - timedelta(seconds=1)) is None
    assert version_in_stage_at(registry, "prod", T0).arn == first.arn
    assert version_in_stage_at(registry, "prod", T0 + timedelta(days=1, hours=1)).arn == second.arn
    assert version_in_stage_at(registry, "prod", T0 + timedelta(days=3)).arn == second.arn


def test_record_deployment_rejects_unknown_packages_and_outcomes(registry, s3):
    version = register(registry, s3)
    with pytest.raises(ValueError, match="outcome"):
        registry.record_deployment(deployment(version.arn, T0, outcome="maybe"))
    with pytest.raises(ModelPackageNotFound):
        registry.record_deployment(deployment(version.arn.replace("/1", "/9"), T0))
    assert registry.deployments() == []


# ---------------------------------------------------------------- approvals made in SageMaker Studio
def studio_decision(moto_sagemaker, arn: str, status: str, description: str) -> None:
    """What Studio does: status and description change, this project's metadata does not."""
    properties = moto_sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    moto_sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status,
                                        ApprovalDescription=description, CustomerMetadataProperties=properties)


def test_the_approval_waiter_succeeds_on_approved_and_stops_on_rejected(registry, s3, moto_sagemaker):
    from botocore.exceptions import WaiterError

    from mlops.hooks.sagemaker import APPROVAL_WAITER_NAME, ModelPackageRegistryHook

    approved, rejected = register(registry, s3, 0), register(registry, s3, 1)
    studio_decision(moto_sagemaker, approved.arn, APPROVED, "ok")
    studio_decision(moto_sagemaker, rejected.arn, REJECTED, "no")
    waiter = ModelPackageRegistryHook(aws_conn_id=None, region_name="us-east-1").get_waiter(
        APPROVAL_WAITER_NAME, client=moto_sagemaker)

    waiter.wait(ModelPackageName=approved.arn, WaiterConfig={"Delay": 0, "MaxAttempts": 1})
    with pytest.raises(WaiterError, match="terminal failure"):
        waiter.wait(ModelPackageName=rejected.arn, WaiterConfig={"Delay": 0, "MaxAttempts": 1})


def test_the_approval_trigger_serialises_and_reports_a_rejection_with_its_reason():
    from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure

    from mlops.triggers.sagemaker_registry import ModelPackageApprovalTrigger

    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/3"
    trigger = ModelPackageApprovalTrigger(arn, waiter_delay=30, aws_conn_id="aws_default", region_name="us-east-1")
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops.triggers.sagemaker_registry.ModelPackageApprovalTrigger"
    assert ModelPackageApprovalTrigger(**kwargs).serialize() == (classpath, kwargs)

    event = trigger._event_from_exception(WaiterTerminalFailure(
        "rejected", last_response={"ModelApprovalStatus": REJECTED, "ApprovalDescription": "bias in segment B"}))
    assert event.payload == {"status": "rejected", "model_package_arn": arn, "message": "bias in segment B"}


def aws_sensor(registry, monkeypatch, version, **kwargs):
    from mlops.sensors.sagemaker import ModelPackageApprovalSensor

    monkeypatch.setattr(ModelPackageApprovalSensor, "_registry", staticmethod(lambda: registry))
    return ModelPackageApprovalSensor(task_id="wait_for_studio", model_package_arn=version.arn, deferrable=True,
                                      waiter_delay=5, **kwargs)


def test_the_sensor_defers_to_the_approval_trigger_while_pending(registry, s3, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    from mlops.triggers.sagemaker_registry import ModelPackageApprovalTrigger

    version = register(registry, s3)

    with pytest.raises(TaskDeferred) as deferred:
        aws_sensor(registry, monkeypatch, version).execute({})

    trigger = deferred.value.trigger
    assert isinstance(trigger, ModelPackageApprovalTrigger)
    assert (trigger.model_package_arn, trigger.waiter_delay) == (version.arn, 5)
    assert deferred.value.method_name == "execute_complete"


def test_an_approval_made_in_studio_completes_the_sensor_and_is_recorded(registry, s3, moto_sagemaker, monkeypatch):
    version = register(registry, s3)
    studio_decision(moto_sagemaker, version.arn, APPROVED, "reviewed the report in Studio")

    decision = aws_sensor(registry, monkeypatch, version).execute_complete(
        {}, {"status": "success", "model_package_arn": version.arn})

    assert decision == {"arn": version.arn, "status": APPROVED, "approver": "fake-user-profile-name",
                        "reason": "reviewed the report in Studio"}
    entry = registry.approval_history(version.arn)[0]
    assert (entry["status"], entry["approver"], entry["evidence"]["external"]) == (
        APPROVED, "fake-user-profile-name", True)


def test_a_rejection_in_studio_ends_the_run_cleanly(registry, s3, moto_sagemaker, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    version = register(registry, s3)
    studio_decision(moto_sagemaker, version.arn, REJECTED, "calibration is off")

    with pytest.raises(AirflowSkipException, match="calibration is off"):
        aws_sensor(registry, monkeypatch, version).execute_complete(
            {}, {"status": "rejected", "model_package_arn": version.arn, "message": "calibration is off"})
    assert registry.approval_history(version.arn)[0]["status"] == REJECTED
