"""SageMaker's limits, checked before any call on both backends (``mlops.backends.limits``).

The limits the checks enforce are read from botocore's sagemaker service model: the tests read
the same model and probe each limit at its edge, so a check that drifted from the model (or a
model that changed) fails here. Documented limits the model lacks are tested against the values
SageMaker's documentation states.
"""

from __future__ import annotations

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from mlops.backends.base import EndpointSpec
from mlops.backends.limits import (
    LimitError,
    check_automl_job,
    check_automl_rows,
    check_deployment_config,
    check_endpoint_spec,
    check_name,
    check_shape,
    check_transform,
    check_tuning,
    serverless_config,
    strict_requests,
)
from mlops.core.config import available_pipelines, load_pipeline
from mlops.core.settings import Settings
from mlops.deploy.endpoint_options import instance_count, prod_endpoint_options

MODEL = botocore.session.get_session().get_service_model("sagemaker")


def limit(shape: str, member: str, key: str):
    return MODEL.shape_for(shape).members[member].metadata[key]


def settings(tmp_path, backend: str = "local") -> Settings:
    data_uri = "s3://bucket/mlops" if backend == "aws" else (tmp_path / "data").as_uri()
    return Settings(backend=backend, home=tmp_path, data_uri=data_uri, aws_conn_id="aws_default", runtime_port=8765)


# ---------------------------------------------------------------- from botocore's model
@pytest.mark.parametrize("member", ["MemorySizeInMB", "MaxConcurrency", "ProvisionedConcurrency"])
def test_serverless_ranges_are_the_models_at_both_edges(member):
    low = limit("ProductionVariantServerlessConfig", member, "min")
    high = limit("ProductionVariantServerlessConfig", member, "max")
    base = {"MemorySizeInMB": 2048, "MaxConcurrency": 200, "ProvisionedConcurrency": 1}

    for value in (low, high):
        check_shape("ProductionVariantServerlessConfig", {**base, member: value}, "serverless")
    for value in (low - 1, high + 1):
        with pytest.raises(LimitError, match=rf"serverless.{member}={value} must be between {low} and {high} "
                                             r"\(SageMaker's Serverless"):
            check_shape("ProductionVariantServerlessConfig", {**base, member: value}, "serverless")


@pytest.mark.parametrize("shape", ["EndpointName", "EndpointConfigName", "ModelName", "TrainingJobName",
                                   "TransformJobName", "AutoMLJobName", "HyperParameterTuningJobName"])
def test_names_are_held_to_the_models_length_and_pattern(shape):
    longest = MODEL.shape_for(shape).metadata["max"]

    assert check_name("name", "a" * longest, shape) == "a" * longest
    with pytest.raises(LimitError, match=rf"has {longest + 1} characters; the limit is \d+ to {longest}"):
        check_name("name", "a" * (longest + 1), shape)
    for bad in ("churn_model", "-churn", "churn-", "churn.model"):
        with pytest.raises(LimitError, match=rf"name='{bad}' does not match the pattern"):
            check_name("name", bad, shape)


def test_botocore_alone_lets_an_oversized_value_through_and_the_strict_client_stops_it():
    request = {"EndpointConfigName": "cfg", "ProductionVariants": [{
        "VariantName": "AllTraffic", "ModelName": "m",
        "ServerlessConfig": {"MemorySizeInMB": 8192, "MaxConcurrency": 5}}]}
    shape = MODEL.operation_model("CreateEndpointConfig").input_shape
    assert not ParamValidator().validate(request, shape).has_errors()  # botocore enforces min, not max

    client = strict_requests(boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x",
                                          aws_secret_access_key="x"))  # noqa: S106 - a Stubber answers
    with Stubber(client), pytest.raises(
            LimitError, match=r"CreateEndpointConfig.ProductionVariants\[0\].ServerlessConfig.MemorySizeInMB=8192 "
                              r"must be between 1024 and 6144"):
        client.create_endpoint_config(**request)


def test_the_strict_client_names_an_enum_value_sagemaker_does_not_know():
    client = strict_requests(boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x",
                                          aws_secret_access_key="x"))  # noqa: S106 - a Stubber answers
    with Stubber(client), pytest.raises(LimitError, match=r"InstanceType='ml.m5.huge' is not one of ml.t2.medium"):
        client.create_endpoint_config(EndpointConfigName="cfg", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.huge", "InitialInstanceCount": 1}])


def test_an_unknown_member_is_named_with_the_shapes_members():
    with pytest.raises(LimitError, match=r"serverless: MemorySize not in SageMaker's ProductionVariantServerlessConfig"):
        check_shape("ProductionVariantServerlessConfig", {"MemorySize": 2048, "MaxConcurrency": 5}, "serverless")


# ---------------------------------------------------------------- documented where the model is silent
@pytest.mark.parametrize("memory", [1024, 2048, 3072, 4096, 5120, 6144])
def test_serverless_memory_in_1024_mb_steps_passes(memory):
    assert serverless_config(memory, 5) == {"MemorySizeInMB": memory, "MaxConcurrency": 5}


@pytest.mark.parametrize("args, message", [
    ((1536, 5), r"endpoint.staging.MemorySizeInMB=1536 is not a multiple of 1024"),
    ((2048, 0), r"endpoint.staging.MaxConcurrency=0 must be between 1 and 200"),
    ((2048, 201), r"endpoint.staging.MaxConcurrency=201 must be between 1 and 200"),
    ((2048, 5, 6), r"ProvisionedConcurrency=6 exceeds MaxConcurrency=5"),
    (("2048", 5), r"MemorySizeInMB='2048' is not an integer"),
])
def test_a_serverless_config_sagemaker_rejects_is_named(args, message):
    with pytest.raises(LimitError, match=message):
        serverless_config(*args)


def blue_green(kind: str, size: dict | None = None, wait: int = 300, termination: int = 600,
               timeout: int = 3600, alarms: bool = True) -> dict:
    routing = {"Type": kind, "WaitIntervalInSeconds": wait}
    if size:
        routing["CanarySize" if kind == "CANARY" else "LinearStepSize"] = size
    config = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": termination,
                                        "MaximumExecutionTimeoutInSeconds": timeout}}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": "p-5xx"}]}
    return config


@pytest.mark.parametrize("config, instances", [
    (blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 50}), 2),
    (blue_green("CANARY", {"Type": "INSTANCE_COUNT", "Value": 1}), 2),
    (blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 10}), 10),
    (blue_green("LINEAR", {"Type": "CAPACITY_PERCENT", "Value": 25}), 4),
    (blue_green("LINEAR", {"Type": "INSTANCE_COUNT", "Value": 1}, wait=60), 10),
    (blue_green("ALL_AT_ONCE", wait=600), 1),
])
def test_a_fleet_that_can_take_the_shift_passes(config, instances):
    assert check_deployment_config(config, instances) == config


@pytest.mark.parametrize("config, instances, message", [
    (blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 10}), 1, r"is 0.1 of 1 instance\(s\)"),
    (blue_green("CANARY", {"Type": "INSTANCE_COUNT", "Value": 1}), 1, r"is 100% of 1 instance\(s\): SageMaker's canary "
                                                                       r"must be at most 50%"),
    (blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 25}), 2, r"is 0.5 of 2 instance\(s\)"),
    (blue_green("LINEAR", {"Type": "CAPACITY_PERCENT", "Value": 5}), 20, r"linear step must be 10-50%"),
    (blue_green("LINEAR", {"Type": "INSTANCE_COUNT", "Value": 3}), 4, r"is 75% of 4"),
    (blue_green("CANARY"), 2, r"CANARY traffic shifting needs CanarySize"),
    (blue_green("ALL_AT_ONCE", {"Type": "CAPACITY_PERCENT", "Value": 50}), 2, r"LinearStepSize applies to LINEAR"),
    (blue_green("ALL_AT_ONCE", wait=0), 1, r"needs a baking period"),
    (blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 50}, wait=3000, termination=600, timeout=3600), 2,
     r"max_execution_timeout_s=3600 is not larger than the 3600 s"),
    (blue_green("LINEAR", {"Type": "CAPACITY_PERCENT", "Value": 10}, wait=300, termination=0, timeout=3000), 10,
     r"max_execution_timeout_s=3000 is not larger than the 3000 s"),
    (blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 50}, timeout=30000), 2,
     r"MaximumExecutionTimeoutInSeconds=30000 must be between 600 and 28800"),
])
def test_a_shift_the_fleet_cannot_take_is_refused_naming_the_setting_and_the_limit(config, instances, message):
    with pytest.raises(LimitError, match=message):
        check_deployment_config(config, instances)


def test_an_all_at_once_shift_without_alarms_needs_no_baking_period():
    config = blue_green("ALL_AT_ONCE", wait=0, alarms=False)
    assert check_deployment_config(config, 1) == config


@pytest.mark.parametrize("kwargs, message", [
    ({"time_budget_s": 30}, r"autopilot.time_budget_s=30 is under 3600 s"),
    ({"time_budget_s": 0}, r"MaxAutoMLJobRuntimeInSeconds=0 must be at least 1"),
    ({"max_runtime_per_candidate_s": 7200}, r"MaxAutoMLJobRuntimeInSeconds must be at least "
                                            r"MaxRuntimePerTrainingJobInSeconds"),
    ({"mode": "FAST"}, r"autopilot.mode='FAST' is not one of AUTO, ENSEMBLING, HYPERPARAMETER_TUNING"),
    ({"job_name": "a" * 33}, r"has 33 characters; the limit is 1 to 32"),
])
def test_an_autopilot_job_that_cannot_succeed_is_refused(kwargs, message):
    job = {"job_name": "churn-automl", "max_candidates": 5, "time_budget_s": 3600, **kwargs}
    with pytest.raises(LimitError, match=message):
        check_automl_job(**job)


def test_autopilot_needs_500_training_rows():
    assert check_automl_rows(500) == 500
    with pytest.raises(LimitError, match="has 499 rows; SageMaker Autopilot needs at least 500"):
        check_automl_rows(499)


def test_a_transform_payload_over_100_mb_is_refused():
    check_transform("score-1", "model-1", 100, None)
    check_transform("score-1", "model-1", 6, 16)
    with pytest.raises(LimitError, match="max_payload_mb=101 is not 1-100"):
        check_transform("score-1", "model-1", 101, None)
    with pytest.raises(LimitError, match=r"max_concurrent_transforms \(17\) x max_payload_mb \(6\) exceeds"):
        check_transform("score-1", "model-1", 6, 17)


def test_a_tuning_job_over_30_ranges_of_a_kind_is_refused():
    space = {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(31)}
    check_tuning(8, 2, dict(list(space.items())[:30]))
    with pytest.raises(LimitError, match=r"training.search_space \(float parameters\).* has 31 entries; the limit "
                                         r"is 0 to 30"):
        check_tuning(8, 2, space)
    with pytest.raises(LimitError, match=r"MaxNumberOfTrainingJobs=0 must be at least 1"):
        check_tuning(0, 1, {})


# ---------------------------------------------------------------- both backends use it
def test_the_local_twin_refuses_a_spec_sagemaker_would_reject_before_starting_the_runtime(tmp_path):
    from mlops.backends.local.hosting import LocalHosting

    local = settings(tmp_path)
    spec = EndpointSpec("churn-staging", "staging-cfg-1", "file:///nowhere/model.tar.gz", "0" * 64,
                        serverless={"MemorySizeInMB": 1000, "MaxConcurrency": 5})

    with pytest.raises(LimitError, match="serverless.MemorySizeInMB=1000 must be between 1024 and 6144"):
        LocalHosting(local).deploy(spec)
    assert not local.runtime_dir.exists()  # nothing was started


@pytest.mark.parametrize("change, message", [
    ({"endpoint_name": "churn_prod"}, "endpoint_name='churn_prod' does not match the pattern"),
    ({"config_name": "c" * 64}, "config_name='c+' has 64 characters"),
    ({"initial_instance_count": 0}, r"InitialInstanceCount=0 must be at least 1"),
    ({"instance_type": "m5.large"}, r"InstanceType='m5.large' is not one of"),
    ({"initial_instance_count": 1, "deployment_config": blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 50})},
     r"is 0.5 of 1 instance\(s\)"),
])
def test_an_endpoint_spec_is_checked_whole(change, message):
    spec = EndpointSpec("churn-prod", "prod-cfg-1", "s3://b/model.tar.gz", "0" * 64, instance_type="ml.m5.large",
                        initial_instance_count=2,
                        deployment_config=blue_green("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 50}),
                        data_capture_config={"InitialSamplingPercentage": 20, "DestinationS3Uri": "s3://b/capture",
                                             "CaptureOptions": [{"CaptureMode": "Input"}]})
    check_endpoint_spec(spec)
    from dataclasses import replace

    with pytest.raises(LimitError, match=message):
        check_endpoint_spec(replace(spec, **change))


def test_serverless_endpoints_take_no_blue_green_config():
    spec = EndpointSpec("churn-staging", "cfg", "s3://b/m.tar.gz", "0" * 64,
                        serverless={"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                        deployment_config=blue_green("ALL_AT_ONCE", wait=600))
    with pytest.raises(LimitError, match="not available for serverless endpoints"):
        check_endpoint_spec(spec)


# ---------------------------------------------------------------- the shipped configs pass
@pytest.mark.parametrize("name", available_pipelines())
@pytest.mark.parametrize("backend", ["local", "aws"])
def test_every_shipped_pipeline_config_passes_sagemakers_limits(name, backend, tmp_path):
    config = load_pipeline(name)
    endpoint, autopilot = config.raw.get("endpoint"), config.raw.get("autopilot")
    if endpoint:
        staging, prod = endpoint["staging"], endpoint["prod"]
        serverless = serverless_config(staging["memory_size_mb"], staging["max_concurrency"],
                                       staging.get("provisioned_concurrency"))
        options = prod_endpoint_options(settings(tmp_path, backend), f"{name}-prod", prod)
        check_endpoint_spec(EndpointSpec(f"{name}-prod", f"{name}-prod-cfg", "s3://b/m.tar.gz", "0" * 64,
                                         instance_type=prod["instance_type"],
                                         initial_instance_count=instance_count(prod), **options))
        check_endpoint_spec(EndpointSpec(f"{name}-staging", f"{name}-staging-cfg", "s3://b/m.tar.gz", "0" * 64,
                                         serverless=serverless))
    if autopilot:
        check_automl_job("automl-run-1", autopilot["max_candidates"], autopilot["time_budget_s"],
                         objective=autopilot["objective"])
        assert 1 <= autopilot["local_time_budget_s"] <= autopilot["time_budget_s"]
    if not (endpoint or autopilot):
        pytest.skip(f"{name} deploys no endpoint and runs no Autopilot job")


def test_the_shipped_churn_prod_deploys_a_canary_on_a_fleet_that_can_take_it(tmp_path):
    prod = load_pipeline("churn").section("endpoint")["prod"]
    routing = prod_endpoint_options(settings(tmp_path), "churn-prod", prod)["deployment_config"][
        "BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]

    assert routing["Type"] == "CANARY"
    assert routing["CanarySize"]["Value"] * prod["initial_instance_count"] / 100 == 1  # one whole instance
