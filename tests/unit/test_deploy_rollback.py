"""Deploy invariants on the local backend, end to end: the SQLite registry, real artifacts, the
runtime process and the boto3 ``sagemaker-runtime`` client.

* only Approved, untampered versions reach an endpoint, and every attempt is recorded;
* the history answers "which version was in prod at time T";
* rollback re-points prod to the Approved version before the one it serves;
* a silent rollback (InService, but on the old config) fails the deploy.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pytest

from mlops.backends.base import Endpoint, EndpointSpec
from mlops.backends.local.registry import SQLiteRegistry
from mlops.core.settings import Settings
from mlops.core.storage import DigestMismatch, pack_model
from mlops.deploy.endpoint_options import (
    blue_green_deployment_config,
    data_capture_config,
    prod_endpoint_options,
)
from mlops.deploy.flow import SilentRollback, deploy_version, previous_approved, rollback, version_in_stage_at
from mlops.deploy.rules import DeploymentRefused, resolve_deployable
from testkit.runtime import running_runtime

GROUP = "churn-classifier"


# ---------------------------------------------------------------- models that answer differently
def write_model(folder: Path, churn_rate: float) -> Path:
    """A model whose probability of churn is ``churn_rate`` for every customer."""
    from sklearn.dummy import DummyClassifier

    folder.mkdir(parents=True)
    labels = np.array(["no"] * 100, dtype=object)
    labels[: int(churn_rate * 100)] = "yes"
    estimator = DummyClassifier(strategy="prior").fit(np.zeros((100, 1)), labels)
    joblib.dump(estimator, folder / "model.joblib")
    (folder / "model.json").write_text(json.dumps({
        "feature_columns": ["tenure"], "target": "churn", "problem_type": "binary", "classes": ["no", "yes"],
        "framework": "sklearn",
    }))
    return folder


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """One runtime process for the module (starting one takes seconds)."""
    with running_runtime(tmp_path_factory.mktemp("mlops")) as hosting:
        yield hosting


@pytest.fixture
def registry(tmp_path) -> SQLiteRegistry:
    registry = SQLiteRegistry(tmp_path / "registry.sqlite")
    registry.ensure_group(GROUP)
    return registry


def register(registry, tmp_path, churn_rate: float, approve: bool = True):
    folder = write_model(tmp_path / f"model-{churn_rate}", churn_rate)
    uri, sha = pack_model(folder, (tmp_path / f"artifact-{churn_rate}" / "model.tar.gz").as_uri())
    version = registry.register(GROUP, uri, sha, {"roc_auc": 0.9}, {"churn_rate": churn_rate})
    return registry.approve(version.arn, "dana", "good", {"roc_auc": 0.9}) if approve else version


def spec_for(version, endpoint: str, config: str) -> EndpointSpec:
    return EndpointSpec(endpoint, config, version.model_uri, version.sha256, instance_type="ml.m5.large")


def deploy(registry, runtime, version, endpoint: str, config: str):
    package = resolve_deployable(registry, GROUP, version.arn)
    return deploy_version(registry, runtime, package, spec_for(version, endpoint, config), "prod")


def churn_probability(runtime, endpoint: str) -> float:
    answer = runtime.runtime_client().invoke_endpoint(EndpointName=endpoint, ContentType="text/csv",
                                                     Accept="text/csv", Body="12\n")
    return float(answer["Body"].read().decode().strip().split(",")[-1])


# ---------------------------------------------------------------- invariants
def test_an_approved_version_is_served_and_its_deployment_recorded(registry, runtime, tmp_path):
    version = register(registry, tmp_path, 0.3)

    endpoint = deploy(registry, runtime, version, "inv-served", "inv-served-1")

    assert (endpoint.status, endpoint.config_name) == ("InService", "inv-served-1")
    assert churn_probability(runtime, "inv-served") == pytest.approx(0.3)
    record = registry.deployments("prod")[0]
    assert (record.arn, record.outcome, record.endpoint_config) == (version.arn, "succeeded", "inv-served-1")
    assert record.detail["url"] == endpoint.url


@pytest.mark.parametrize("decision", ["pending", "rejected"])
def test_pending_and_rejected_versions_never_reach_an_endpoint(registry, runtime, tmp_path, decision):
    version = register(registry, tmp_path, 0.3, approve=False)
    if decision == "rejected":
        registry.reject(version.arn, "dana", "worse than prod", {})

    with pytest.raises(DeploymentRefused, match="only Approved versions are deployed"):
        deploy(registry, runtime, version, f"inv-{decision}", "never")

    assert registry.deployments() == []


def test_a_tampered_artifact_is_refused_by_the_registry_check_and_by_the_runtime(registry, runtime, tmp_path):
    good, other = register(registry, tmp_path, 0.3), register(registry, tmp_path, 0.6)
    deploy(registry, runtime, good, "inv-tamper", "inv-tamper-1")
    Path(other.model_uri.removeprefix("file://")).write_bytes(b"not the registered model")

    with pytest.raises(DeploymentRefused, match="sha256"):
        resolve_deployable(registry, GROUP, other.arn)
    with pytest.raises(DigestMismatch):  # the runtime checks again, right before loading
        deploy_version(registry, runtime, other.to_dict(), spec_for(other, "inv-tamper", "inv-tamper-2"), "prod")

    assert churn_probability(runtime, "inv-tamper") == pytest.approx(0.3)
    assert [d.outcome for d in registry.deployments("prod")] == ["failed", "succeeded"]


def test_the_history_answers_which_version_was_in_prod_at_time_t(registry, runtime, tmp_path):
    first, second = register(registry, tmp_path, 0.2), register(registry, tmp_path, 0.7)
    before = datetime.now(UTC)
    deploy(registry, runtime, first, "inv-history", "inv-history-1")
    between = datetime.now(UTC)
    deploy(registry, runtime, second, "inv-history", "inv-history-2")

    assert version_in_stage_at(registry, "prod", before) is None
    assert version_in_stage_at(registry, "prod", between).arn == first.arn
    assert version_in_stage_at(registry, "prod").arn == second.arn
    assert version_in_stage_at(registry, "prod", between).arn == first.arn  # the registry agrees


def test_a_silent_rollback_fails_the_deploy_and_leaves_the_history_unchanged(registry, tmp_path):
    version = register(registry, tmp_path, 0.3)

    class BackOnTheOldConfig:
        def named(self, spec):
            return spec

        def deploy(self, spec):
            return Endpoint(name=spec.endpoint_name, config_name="old-config", status="InService",
                            url="http://127.0.0.1/x", runtime_endpoint_url="http://127.0.0.1", region="us-east-1")

    with pytest.raises(SilentRollback, match="old-config, not the intended new-config"):
        deploy_version(registry, BackOnTheOldConfig(), version.to_dict(),
                       spec_for(version, "churn-prod", "new-config"), "prod")

    record = registry.deployments("prod")[0]
    assert (record.outcome, record.endpoint_config) == ("rolled_back", "new-config")
    assert "rolled back" in record.detail["error"]
    assert version_in_stage_at(registry, "prod") is None


# ---------------------------------------------------------------- rollback
def test_rollback_re_points_prod_to_the_previous_approved_version(registry, runtime, tmp_path):
    first, second = register(registry, tmp_path, 0.2), register(registry, tmp_path, 0.7)
    deploy(registry, runtime, first, "rb-prod", "rb-prod-1")
    deploy(registry, runtime, second, "rb-prod", "rb-prod-2")
    assert churn_probability(runtime, "rb-prod") == pytest.approx(0.7)

    endpoint = rollback(registry, runtime, GROUP, "prod", spec_for(second, "rb-prod", "rb-prod-rollback"))

    assert endpoint.config_name == "rb-prod-rollback"
    assert churn_probability(runtime, "rb-prod") == pytest.approx(0.2)
    record = registry.deployments("prod")[0]
    assert (record.arn, record.outcome) == (first.arn, "succeeded")
    assert record.detail["rollback_from"] == second.arn
    assert version_in_stage_at(registry, "prod").arn == first.arn


def test_rollback_skips_versions_that_are_not_approved(registry, runtime, tmp_path):
    oldest = register(registry, tmp_path, 0.1)
    rejected = register(registry, tmp_path, 0.4)
    registry.reject(rejected.arn, "dana", "bias found", {})
    current = register(registry, tmp_path, 0.8)
    deploy(registry, runtime, current, "rb-skip", "rb-skip-1")

    assert previous_approved(registry, GROUP, current.arn).arn == oldest.arn
    rollback(registry, runtime, GROUP, "prod", spec_for(current, "rb-skip", "rb-skip-2"))

    assert churn_probability(runtime, "rb-skip") == pytest.approx(0.1)


def test_rollback_to_a_tampered_artifact_is_refused_and_prod_keeps_serving(registry, runtime, tmp_path):
    first, second = register(registry, tmp_path, 0.2), register(registry, tmp_path, 0.7)
    deploy(registry, runtime, second, "rb-tamper", "rb-tamper-1")
    Path(first.model_uri.removeprefix("file://")).write_bytes(b"changed")

    with pytest.raises(DeploymentRefused, match="sha256"):
        rollback(registry, runtime, GROUP, "prod", spec_for(second, "rb-tamper", "rb-tamper-2"))

    assert churn_probability(runtime, "rb-tamper") == pytest.approx(0.7)


def test_rollback_without_an_older_approved_version_is_refused(registry, runtime, tmp_path):
    only = register(registry, tmp_path, 0.5)
    with pytest.raises(DeploymentRefused, match="nothing to roll back"):
        rollback(registry, runtime, GROUP, "prod", spec_for(only, "rb-none", "rb-none-1"))
    deploy(registry, runtime, only, "rb-none", "rb-none-1")
    with pytest.raises(DeploymentRefused, match="no older Approved version"):
        rollback(registry, runtime, GROUP, "prod", spec_for(only, "rb-none", "rb-none-2"))


# ---------------------------------------------------------------- prod endpoint options
def settings_for(tmp_path) -> Settings:
    return Settings(backend="aws", home=tmp_path, data_uri="s3://bucket/mlops", aws_conn_id="aws_default",
                    runtime_port=8765)


def test_prod_defaults_shift_one_instance_all_at_once_with_a_baking_period_alarms_and_data_capture(tmp_path):
    options = prod_endpoint_options(settings_for(tmp_path), "churn-prod", {"instance_type": "ml.m5.large"})

    policy = options["deployment_config"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}
    assert (policy["TerminationWaitInSeconds"], policy["MaximumExecutionTimeoutInSeconds"]) == (600, 3600)
    assert options["deployment_config"]["AutoRollbackConfiguration"] == {"Alarms": [
        {"AlarmName": "churn-prod-invocation-5xx-errors"}, {"AlarmName": "churn-prod-model-latency-p95"}]}
    capture = options["data_capture_config"]
    assert capture["DestinationS3Uri"] == "s3://bucket/mlops/monitoring/data-capture/churn-prod"
    assert (capture["EnableCapture"], capture["InitialSamplingPercentage"]) == (True, 20)
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]


def test_traffic_shifting_and_alarms_come_from_the_pipeline_config():
    config = blue_green_deployment_config("p", {
        "traffic_shifting": {"type": "all_at_once", "wait_interval_s": 60},
        "rollback_alarms": {"invocation_5xx_errors": 5, "model_latency_p95_ms": None},
    })

    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 60}
    assert config["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "p-invocation-5xx-errors"}]}
    no_alarms = blue_green_deployment_config("p", {"rollback_alarms": {"invocation_5xx_errors": None,
                                                                       "model_latency_p95_ms": None}})
    assert "AutoRollbackConfiguration" not in no_alarms


@pytest.mark.parametrize("prod, message", [
    ({"traffic_shifting": {"type": "rolling"}}, "canary, linear, all_at_once"),
    ({"traffic_shifting": {"type": "linear", "step_percent": 0}}, "step_percent=0"),
    ({"data_capture": {"sampling_percentage": 150}}, "sampling_percentage=150"),
    # the fleet must be able to take the shift (TrafficRoutingConfig)
    ({"initial_instance_count": 1, "traffic_shifting": {"type": "canary", "step_percent": 10}},
     r"step_percent=10 CAPACITY_PERCENT is 0\.1 of 1 instance\(s\): a canary step must be a whole number"),
    ({"initial_instance_count": 4, "traffic_shifting": {"type": "canary", "step_percent": 75}},
     r"75% of 4 instance\(s\): SageMaker's canary must be at most 50%"),
    ({"initial_instance_count": 10, "traffic_shifting": {"type": "linear", "step_percent": 60}},
     r"linear step must be 10-50%"),
    ({"initial_instance_count": 0}, r"initial_instance_count=0 must be at least 1"),
    ({"traffic_shifting": {"type": "all_at_once", "wait_interval_s": 0}}, "needs a baking period"),
    ({"traffic_shifting": {"type": "all_at_once", "wait_interval_s": 4000}},
     r"WaitIntervalInSeconds=4000 must be between 0 and 3600"),
    ({"traffic_shifting": {"max_execution_timeout_s": 1000}}, "max_execution_timeout_s=1000 is not larger than the 1200"),
    ({"traffic_shifting": {"termination_wait_s": "600"}}, "TerminationWaitInSeconds='600' is not an integer"),
])
def test_bad_prod_settings_are_named(tmp_path, prod, message):
    with pytest.raises(ValueError, match=message):
        prod_endpoint_options(settings_for(tmp_path), "p", prod)


def test_data_capture_can_go_to_a_full_uri_or_be_off(tmp_path):
    capture = data_capture_config(settings_for(tmp_path), "p", {
        "data_capture": {"destination": "s3://audit/capture", "enabled": False}})
    assert capture["DestinationS3Uri"] == "s3://audit/capture/p"
    assert capture["EnableCapture"] is False


def test_rollback_keeps_the_spec_but_swaps_in_the_target_artifact(registry, runtime, tmp_path):
    first, second = register(registry, tmp_path, 0.2), register(registry, tmp_path, 0.7)
    deploy(registry, runtime, first, "rb-spec", "rb-spec-1")
    deploy(registry, runtime, second, "rb-spec", "rb-spec-2")
    spec = replace(spec_for(second, "rb-spec", "rb-spec-3"), environment={"SAGEMAKER_INFERENCE_OUTPUT": "probability"})

    rollback(registry, runtime, GROUP, "prod", spec)

    answer = runtime.runtime_client().invoke_endpoint(EndpointName="rb-spec", ContentType="text/csv",
                                                     Accept="text/csv", Body="3\n")
    assert float(answer["Body"].read().decode()) == pytest.approx(0.2)
