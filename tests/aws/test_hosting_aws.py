"""SageMaker hosting behind the Hosting port: request shapes through moto, and botocore's
Stubber for what moto lacks (``UpdateEndpoint``, endpoints that are not InService at once).

Verified how: moto's SageMaker creates models, endpoint configs and endpoints and deletes them;
moto's S3 holds the artifacts (digests are really streamed) and moto's CloudWatch the alarms.
The update, blue/green rollback, busy and failed cases run on a real SageMaker client whose
answers a Stubber gives and whose requests it validates against the service model.

The specs carry logical names (``churn-staging``, ``staging-cfg-1``); SageMaker sees them with
the settings' name prefix (``mlops-churn-staging``), and so do the results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto_fixtures import (  # noqa: F401  (importing a fixture registers it)
    GROUP,
    IMAGE,
    REGION,
    SERVING_SOURCE,
    cloudwatch_fixture,
    described_endpoint,
    hosting_fixture,
    moto_sagemaker_fixture,
    put_artifact,
    read_s3_tar_names,
    register,
    registry_fixture,
    sagemaker_calls_fixture,
)

from mlops.backends.aws.hosting import SageMakerHosting
from mlops.backends.aws.serving_container import serving_archive
from mlops.backends.base import EndpointNotFound, EndpointSpec
from mlops.backends.limits import LimitError
from mlops.core.storage import DigestMismatch
from mlops.deploy.endpoint_options import prod_endpoint_options, rollback_alarm_requests
from mlops.deploy.flow import SilentRollback, deploy_version, version_in_stage_at

PROD = {"instance_type": "ml.m5.large", "initial_instance_count": 4,
        "traffic_shifting": {"type": "linear", "step_percent": 25, "wait_interval_s": 120}}
NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
PROD_ALARMS = ["mlops-churn-prod-invocation-5xx-errors", "mlops-churn-prod-model-latency-p95"]


@dataclass(frozen=True)
class ProdSpec(EndpointSpec):
    """EndpointSpec with the prod fields the port is to gain (model package, data capture, blue/green)."""

    model_package_arn: str | None = None
    data_capture_config: dict[str, Any] | None = None
    deployment_config: dict[str, Any] | None = None


def staging_spec(s3, name: str = "churn-staging", config: str = "staging-cfg-1") -> EndpointSpec:
    uri, sha = put_artifact(s3)
    return EndpointSpec(name, config, uri, sha, serverless={"MemorySizeInMB": 2048, "MaxConcurrency": 5})


def prod_spec(settings, s3, config: str = "prod-cfg-2", package_arn: str | None = None) -> ProdSpec:
    uri, sha = put_artifact(s3)
    return ProdSpec("churn-prod", config, uri, sha, instance_type="ml.m5.large", initial_instance_count=4,
                    model_package_arn=package_arn, **prod_endpoint_options(settings, "churn-prod", PROD))


# ---------------------------------------------------------------- moto: create, describe, delete
def test_staging_is_a_serverless_endpoint_running_the_serving_code(hosting, s3, moto_sagemaker):
    spec = staging_spec(s3)

    endpoint = hosting.deploy(spec)

    assert (endpoint.name, endpoint.config_name, endpoint.status) == (
        "mlops-churn-staging", "mlops-staging-cfg-1", "InService")
    assert endpoint.url == f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/mlops-churn-staging/invocations"
    assert endpoint.runtime_endpoint_url == f"https://runtime.sagemaker.{REGION}.amazonaws.com"
    variant = moto_sagemaker.describe_endpoint_config(EndpointConfigName="mlops-staging-cfg-1")["ProductionVariants"][0]
    assert variant["ModelName"] == "mlops-staging-cfg-1"
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant
    container = moto_sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    assert (container["Image"], container["ModelDataUrl"]) == (IMAGE, spec.model_uri)
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert read_s3_tar_names(s3, container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]) == SERVING_SOURCE


def test_staging_takes_provisioned_concurrency_when_the_config_sets_it(hosting, s3, moto_sagemaker):
    spec = replace(staging_spec(s3, config="staging-cfg-pc"),
                   serverless={"MemorySizeInMB": 3072, "MaxConcurrency": 10, "ProvisionedConcurrency": 2})

    hosting.deploy(spec)

    variant = moto_sagemaker.describe_endpoint_config(EndpointConfigName="mlops-staging-cfg-pc")["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 10, "ProvisionedConcurrency": 2}


def test_a_spec_sagemaker_would_reject_fails_before_any_request(stubbed, s3):
    hosting, _ = stubbed  # nothing queued: any SageMaker request fails the test
    spec = replace(staging_spec(s3), serverless={"MemorySizeInMB": 2048, "MaxConcurrency": 5,
                                                 "ProvisionedConcurrency": 6})

    with pytest.raises(LimitError, match="ProvisionedConcurrency=6 exceeds MaxConcurrency=5"):
        hosting.deploy(spec)


def test_prod_takes_the_packages_container_instances_and_data_capture(hosting, registry, settings, s3,
                                                                      moto_sagemaker, cloudwatch):
    version = registry.approve(register(registry, s3).arn, "dana", "good", {})
    spec = replace(prod_spec(settings, s3, package_arn=version.arn), model_uri=version.model_uri,
                   sha256=version.sha256, environment={"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability"})
    hosting.ensure_rollback_alarms(rollback_alarm_requests("churn-prod", PROD))

    hosting.deploy(spec)

    config = moto_sagemaker.describe_endpoint_config(EndpointConfigName="mlops-prod-cfg-2")
    variant = config["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 4)
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == \
        "s3://mlops-test-bucket/mlops/monitoring/data-capture/churn-prod"
    package = moto_sagemaker.describe_model_package(ModelPackageName=version.arn)
    container = moto_sagemaker.describe_model(ModelName="mlops-prod-cfg-2")["PrimaryContainer"]
    expected_env = package["InferenceSpecification"]["Containers"][0]["Environment"]
    assert container["Image"] == package["InferenceSpecification"]["Containers"][0]["Image"]
    assert container["Environment"] == {**expected_env, "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability"}


def test_a_version_that_is_not_approved_is_refused_before_any_model_is_created(hosting, registry, settings, s3,
                                                                                sagemaker_calls):
    version = register(registry, s3)
    spec = replace(prod_spec(settings, s3, package_arn=version.arn), model_uri=version.model_uri,
                   sha256=version.sha256)

    registered = len(sagemaker_calls.sent)
    with pytest.raises(ValueError, match="is PendingManualApproval; only Approved versions are deployed"):
        hosting.deploy(spec)

    assert not [name for name, _ in sagemaker_calls.sent[registered:] if name.startswith("Create")]


def test_a_tampered_artifact_is_refused_before_anything_is_created(hosting, s3, sagemaker_calls):
    spec = staging_spec(s3)
    put_artifact(s3, content=b"someone else's model")

    with pytest.raises(DigestMismatch, match="does not match"):
        hosting.deploy(spec)

    assert not [name for name, _ in sagemaker_calls.sent if name.startswith("Create")]


def test_a_retry_reuses_the_model_config_and_endpoint_of_its_first_attempt(hosting, s3, sagemaker_calls):
    spec = staging_spec(s3)
    hosting.deploy(spec)

    again = hosting.deploy(spec)

    assert again.config_name == "mlops-staging-cfg-1"
    for operation in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
        assert len(sagemaker_calls.named(operation)) == 1, operation
    assert not sagemaker_calls.named("UpdateEndpoint")


def test_submit_hands_back_the_providers_endpoint_trigger(hosting, s3, settings):
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.sdk.module_loading import import_string

    handle = hosting.submit(staging_spec(s3))

    assert (handle.kind, handle.name, handle.done) == ("endpoint", "mlops-churn-staging", False)
    trigger = import_string(handle.trigger["classpath"])(**handle.trigger["kwargs"])
    assert isinstance(trigger, SageMakerTrigger)
    classpath, kwargs = trigger.serialize()
    assert (kwargs["job_name"], kwargs["job_type"]) == ("mlops-churn-staging", "endpoint")
    assert kwargs["aws_conn_id"] == settings.aws_conn_id and kwargs["region_name"] == REGION
    assert hosting.collect(hosting.wait(handle))["config_name"] == "mlops-staging-cfg-1"


def test_delete_removes_endpoint_config_and_model_and_a_missing_endpoint_is_fine(hosting, s3, moto_sagemaker):
    hosting.deploy(staging_spec(s3))

    hosting.delete("churn-staging")
    hosting.delete("churn-staging")

    with pytest.raises(EndpointNotFound):
        hosting.describe("churn-staging")
    assert moto_sagemaker.list_endpoints()["Endpoints"] == []
    assert moto_sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert moto_sagemaker.list_models()["Models"] == []


def test_a_name_that_has_the_prefix_already_is_not_prefixed_again(hosting, s3, moto_sagemaker):
    first = hosting.deploy(staging_spec(s3))

    again = hosting.deploy(staging_spec(s3, name=first.name, config=first.config_name))

    assert (again.name, again.config_name) == ("mlops-churn-staging", "mlops-staging-cfg-1")
    assert hosting.describe(first.name) == hosting.describe("churn-staging")
    assert [e["EndpointName"] for e in moto_sagemaker.list_endpoints()["Endpoints"]] == ["mlops-churn-staging"]
    hosting.delete(first.name)
    assert moto_sagemaker.list_endpoints()["Endpoints"] == []


def test_a_name_too_long_for_sagemaker_is_cut_to_63_characters_with_a_hash(hosting, s3, moto_sagemaker):
    config = "deploy-model-staging-config-scheduled-2026-11-21t06-00-00-00-00-0123abcd"

    endpoint = hosting.deploy(staging_spec(s3, config=config))

    assert len(endpoint.config_name) == 63
    assert re.fullmatch(r"mlops-deploy-model-staging-config-[a-z0-9-]+-[0-9a-f]{8}", endpoint.config_name)
    assert endpoint.config_name == hosting.named(staging_spec(s3, config=config)).config_name  # stable
    assert hosting.named(staging_spec(s3, config=config[:-1] + "e")).config_name != endpoint.config_name
    assert moto_sagemaker.describe_model(ModelName=endpoint.config_name)["ModelName"] == endpoint.config_name


def test_serving_archive_is_deterministic():
    assert serving_archive() == serving_archive()


def test_rollback_alarms_are_created_idempotently_with_the_prefix_on_the_sagemaker_endpoint(hosting, cloudwatch):
    requests = rollback_alarm_requests("churn-prod", PROD)
    assert hosting.ensure_rollback_alarms(requests) == PROD_ALARMS
    hosting.ensure_rollback_alarms(requests)

    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert sorted(alarms) == PROD_ALARMS
    assert alarms["mlops-churn-prod-invocation-5xx-errors"]["MetricName"] == "Invocation5XXErrors"
    assert alarms["mlops-churn-prod-model-latency-p95"]["ExtendedStatistic"] == "p95"
    assert alarms["mlops-churn-prod-model-latency-p95"]["Threshold"] == 500_000.0  # µs
    for alarm in alarms.values():
        assert {"Name": "EndpointName", "Value": "mlops-churn-prod"} in alarm["Dimensions"]


def test_named_maps_the_endpoint_config_and_rollback_alarms_once(hosting, settings, s3):
    spec = prod_spec(settings, s3)

    named = hosting.named(spec)

    assert (named.endpoint_name, named.config_name) == ("mlops-churn-prod", "mlops-prod-cfg-2")
    assert named.deployment_config["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": a} for a in PROD_ALARMS]
    assert named.deployment_config["BlueGreenUpdatePolicy"] == spec.deployment_config["BlueGreenUpdatePolicy"]
    assert hosting.named(named) == named


# ---------------------------------------------------------------- Stubber: updates
@pytest.fixture
def stubbed(settings, s3, cloudwatch):
    """``(hosting, stubber)`` on a real SageMaker client answered by a Stubber."""
    client = boto3.client("sagemaker", region_name=REGION)
    hosting = SageMakerHosting(settings, sagemaker_client=client, s3_client=s3, cloudwatch_client=cloudwatch,
                               waiter_delay=0, waiter_max_attempts=3)
    with Stubber(client) as stubber:
        yield hosting, stubber
        stubber.assert_no_pending_responses()


def existing_model_and_config(stubber, config: str) -> None:
    stubber.add_response("describe_model", {"ModelName": config, "CreationTime": NOW,
                                            "ModelArn": f"arn:aws:sagemaker:{REGION}:123456789012:model/{config}"},
                         {"ModelName": config})
    stubber.add_response("describe_endpoint_config", {
        "EndpointConfigName": config, "CreationTime": NOW,
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": config}],
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/{config}",
    }, {"EndpointConfigName": config})


def test_prod_update_is_blue_green_with_traffic_shifting_and_alarm_rollback(stubbed, settings, s3, cloudwatch):
    hosting, stubber = stubbed
    spec = prod_spec(settings, s3)
    hosting.ensure_rollback_alarms(rollback_alarm_requests("churn-prod", PROD))
    existing_model_and_config(stubber, "mlops-prod-cfg-2")
    stubber.add_response("describe_endpoint", described_endpoint("mlops-churn-prod", "mlops-prod-cfg-1"),
                         {"EndpointName": "mlops-churn-prod"})
    stubber.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x"}, {
        "EndpointName": "mlops-churn-prod", "EndpointConfigName": "mlops-prod-cfg-2",
        "RetainAllVariantProperties": False,
        "DeploymentConfig": {**spec.deployment_config,
                             "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in PROD_ALARMS]}},
    })
    stubber.add_response("describe_endpoint", described_endpoint("mlops-churn-prod", "mlops-prod-cfg-2", "Updating"))
    stubber.add_response("describe_endpoint", described_endpoint("mlops-churn-prod", "mlops-prod-cfg-2"))
    stubber.add_response("describe_endpoint", described_endpoint("mlops-churn-prod", "mlops-prod-cfg-2"))

    endpoint = hosting.deploy(spec)

    assert (endpoint.name, endpoint.config_name, endpoint.status) == ("mlops-churn-prod", "mlops-prod-cfg-2",
                                                                      "InService")
    policy = spec.deployment_config["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR", "WaitIntervalInSeconds": 120, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}


def test_a_silent_rollback_fails_the_deploy_and_is_recorded(stubbed, settings, s3, cloudwatch, registry):
    hosting, stubber = stubbed
    version = register(registry, s3)
    spec = replace(prod_spec(settings, s3), model_uri=version.model_uri, sha256=version.sha256)
    hosting.ensure_rollback_alarms(rollback_alarm_requests("churn-prod", PROD))
    existing_model_and_config(stubber, "mlops-prod-cfg-2")
    stubber.add_response("describe_endpoint", described_endpoint("mlops-churn-prod", "mlops-prod-cfg-1"))
    stubber.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x"},
                         {"EndpointName": "mlops-churn-prod", "EndpointConfigName": "mlops-prod-cfg-2",
                          "RetainAllVariantProperties": False, "DeploymentConfig": ANY})
    rolled_back = described_endpoint("mlops-churn-prod", "mlops-prod-cfg-1",
                                     FailureReason="Alarm mlops-churn-prod-invocation-5xx-errors went into ALARM")
    stubber.add_response("describe_endpoint", rolled_back)  # the waiter: InService again ...
    stubber.add_response("describe_endpoint", rolled_back)  # ... on the old config

    with pytest.raises(SilentRollback, match="mlops-prod-cfg-1, not the intended mlops-prod-cfg-2"):
        deploy_version(registry, hosting, version.to_dict(), spec, "prod")

    attempt = registry.deployments("prod")[0]
    assert (attempt.outcome, attempt.endpoint_name, attempt.endpoint_config, attempt.arn) == (
        "rolled_back", "mlops-churn-prod", "mlops-prod-cfg-2", version.arn)
    assert version_in_stage_at(registry, "prod", datetime.now(UTC)) is None


def test_a_missing_rollback_alarm_stops_the_update_before_it_starts(stubbed, settings, s3):
    hosting, stubber = stubbed
    existing_model_and_config(stubber, "mlops-prod-cfg-2")

    with pytest.raises(ValueError, match="mlops-churn-prod-invocation-5xx-errors"):
        hosting.submit(prod_spec(settings, s3))


def test_an_endpoint_busy_with_another_update_is_not_updated(stubbed, s3):
    hosting, stubber = stubbed
    existing_model_and_config(stubber, "mlops-staging-cfg-2")
    stubber.add_response("describe_endpoint", described_endpoint("mlops-churn-staging", "mlops-staging-cfg-1",
                                                                 "Updating"))

    with pytest.raises(RuntimeError, match="Updating"):
        hosting.submit(staging_spec(s3, config="staging-cfg-2"))


def test_a_retry_during_its_own_update_re_attaches(stubbed, s3):
    hosting, stubber = stubbed
    existing_model_and_config(stubber, "mlops-staging-cfg-2")
    stubber.add_response("describe_endpoint", described_endpoint(
        "mlops-churn-staging", "mlops-staging-cfg-1", "Updating",
        PendingDeploymentSummary={"EndpointConfigName": "mlops-staging-cfg-2", "StartTime": NOW}))

    handle = hosting.submit(staging_spec(s3, config="staging-cfg-2"))

    assert not handle.done  # no second update_endpoint: the Stubber would have refused it


def test_a_failed_endpoint_is_deleted_and_created_again(stubbed, s3):
    hosting, stubber = stubbed
    existing_model_and_config(stubber, "mlops-staging-cfg-2")
    stubber.add_response("describe_endpoint", described_endpoint("mlops-churn-staging", "mlops-staging-cfg-1", "Failed",
                                                                 FailureReason="image pull failed"))
    stubber.add_response("delete_endpoint", {}, {"EndpointName": "mlops-churn-staging"})
    stubber.add_client_error("describe_endpoint", "ValidationException",
                             "Could not find endpoint mlops-churn-staging.")  # endpoint_deleted waiter: gone
    stubber.add_response("create_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x"},
                         {"EndpointName": "mlops-churn-staging", "EndpointConfigName": "mlops-staging-cfg-2",
                          "Tags": ANY})

    handle = hosting.submit(staging_spec(s3, config="staging-cfg-2"))

    assert (handle.name, handle.done) == ("mlops-churn-staging", False)  # the Stubber saw delete, then create


def test_an_endpoint_that_fails_to_come_up_raises_sagemakers_reason(stubbed):
    from mlops.backends.base import JobHandle

    hosting, stubber = stubbed
    stubber.add_response("describe_endpoint", described_endpoint(
        "mlops-churn-staging", "mlops-staging-cfg-2", "Failed",
        FailureReason="The primary container did not pass the ping"))

    with pytest.raises(RuntimeError, match="did not pass the ping"):
        hosting.wait(JobHandle(kind="endpoint", name="mlops-churn-staging", done=False))
