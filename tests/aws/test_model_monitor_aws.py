"""The DataQualityMonitor port on SageMaker Model Monitor: the analyzer image, the job definition
on moto, the violation alarms on moto's CloudWatch, and the errors a run can meet.

What checks what: the analyzer accounts are compared with the SageMaker SDK's own
``image_uri_config/model-monitor.json`` (read as a file, not through the code under test); moto 5.2
implements data-quality job definitions and CloudWatch alarms, so those run on moto. moto has no
monitoring schedules or executions: the error cases below are answered by botocore's Stubber, whose
answers replay this project's reading of the SageMaker API reference (their shapes are checked
against botocore's model, their meaning is our assumption). The create / no-op / replace
sequence is the golden ``monitor_model`` scenario (tests/aws/golden_scenarios.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto_fixtures import BUCKET, REGION  # the settings fixture's data root (conftest.BUCKET)

from mlops.backends.aws.clients import or_none
from mlops.backends.aws.model_monitor import (
    SageMakerDataQualityMonitor,
    analyzer_image,
    data_quality_job_definition_request,
)
from mlops.backends.base import (
    MonitoringBaseline,
    MonitoringCheck,
    MonitoringReportNotFound,
    MonitoringSchedule,
    MonitoringScheduleError,
)
from mlops.ml.monitoring import baseline_constraints, baseline_statistics, monitoring_settings
from testkit.monitoring import CATEGORICAL, FEATURES, churn_like_frame

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def sdk_model_monitor_registries() -> dict[str, str]:
    """``region -> account`` from the installed SageMaker SDK's model-monitor image config file."""
    import sagemaker.core

    path = Path(sagemaker.core.__file__).parent / "image_uri_config" / "model-monitor.json"
    config = json.loads(path.read_text())
    (version,) = config["versions"].values()
    assert version["repository"] == "sagemaker-model-monitor-analyzer"
    return version["registries"]


def test_the_analyzer_image_is_the_sdks_for_every_region_it_lists():
    registries = sdk_model_monitor_registries()
    assert len(registries) >= 25 and registries["us-east-1"] == "156813124566"
    wrong = {region: analyzer_image(region) for region, account in registries.items()
             if not analyzer_image(region).startswith(f"{account}.dkr.ecr.{region}.")  # the partition's domain
             or not analyzer_image(region).endswith("/sagemaker-model-monitor-analyzer")}
    assert wrong == {}


def test_an_unlisted_region_is_refused_naming_it_and_a_given_image_is_used_as_is():
    with pytest.raises(ValueError, match="no Model Monitor analyzer image known for region 'xx-north-9'"):
        analyzer_image("xx-north-9")
    assert analyzer_image("xx-north-9", "1.dkr.ecr.xx-north-9.amazonaws.com/mine:1") == \
        "1.dkr.ecr.xx-north-9.amazonaws.com/mine:1"


# ---------------------------------------------------------------- moto: job definitions and alarms
def baseline_in_s3(s3, name: str, features: list[str] = FEATURES) -> MonitoringBaseline:
    statistics = baseline_statistics(churn_like_frame(500, seed=1), features, CATEGORICAL)
    base = f"mlops/training/churn/{name}/baseline"
    s3.put_object(Bucket=BUCKET, Key=f"{base}/statistics.json", Body=json.dumps(statistics))
    s3.put_object(Bucket=BUCKET, Key=f"{base}/constraints.json", Body=json.dumps(baseline_constraints(statistics)))
    return MonitoringBaseline(f"arn:aws:sagemaker:{REGION}:123456789012:model-package/mlops-churn/1",
                              f"s3://{BUCKET}/{base}/statistics.json", f"s3://{BUCKET}/{base}/constraints.json")


@pytest.fixture
def moto_reads(monkeypatch):
    """ObjectStoragePath reads served from moto's S3 backend (s3fs cannot reach in-process moto)."""
    from golden_scenarios import _moto_object_path

    monkeypatch.setattr("mlops.core.storage.to_path", _moto_object_path)


def test_moto_takes_the_job_definition_and_gives_back_its_baseline_endpoint_and_role(aws, s3, settings):
    client = boto3.client("sagemaker", region_name=REGION)
    monitor = SageMakerDataQualityMonitor(settings, sagemaker_client=client)
    baseline = baseline_in_s3(s3, "run-1")
    name = monitor.definition_name("churn-classifier-prod", baseline)
    client.create_data_quality_job_definition(**data_quality_job_definition_request(
        name, monitor.name("churn-classifier-prod"), baseline.statistics_uri, baseline.constraints_uri,
        monitor.output_uri(), settings.sagemaker_role_arn, REGION))
    described = client.describe_data_quality_job_definition(JobDefinitionName=name)
    assert described["DataQualityBaselineConfig"]["StatisticsResource"]["S3Uri"] == baseline.statistics_uri
    assert described["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == "mlops-churn-classifier-prod"
    assert described["RoleArn"] == settings.sagemaker_role_arn
    client.delete_data_quality_job_definition(JobDefinitionName=name)
    # what the port takes for "not there" (describe before create) is what the service answers
    assert or_none(lambda: client.describe_data_quality_job_definition(JobDefinitionName=name)) is None


def test_the_names_are_stable_per_baseline_and_never_prefixed_twice(settings):
    monitor = SageMakerDataQualityMonitor(settings, sagemaker_client=None, cloudwatch_client=None)
    one = MonitoringBaseline("arn", "s3://b/1/statistics.json", "s3://b/1/constraints.json")
    two = MonitoringBaseline("arn", "s3://b/2/statistics.json", "s3://b/2/constraints.json")
    assert monitor.schedule_name("churn-classifier-prod") == monitor.schedule_name("mlops-churn-classifier-prod") \
        == "mlops-churn-classifier-prod-data-quality"
    assert monitor.definition_name("churn-classifier-prod", one) == monitor.definition_name("churn-classifier-prod", one)
    assert monitor.definition_name("churn-classifier-prod", one) != monitor.definition_name("churn-classifier-prod", two)


def test_violation_alarms_are_one_per_feature_and_a_smaller_baseline_deletes_the_rest(aws, s3, settings, moto_reads):
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    monitor = SageMakerDataQualityMonitor(settings, cloudwatch_client=cloudwatch)
    endpoint, schedule = monitor.name("churn-classifier-prod"), monitor.schedule_name("churn-classifier-prod")

    def alarms() -> dict[str, str]:
        found = cloudwatch.describe_alarms(AlarmNamePrefix=monitor.alarm_prefix("churn-classifier-prod"))
        return {a["AlarmName"]: a["MetricName"] for a in found["MetricAlarms"]}

    full = baseline_in_s3(s3, "run-1")
    first = monitor._ensure_alarms("churn-classifier-prod", endpoint, schedule, full)
    assert monitor._ensure_alarms("churn-classifier-prod", endpoint, schedule, full) == first
    assert sorted(alarms().values()) == sorted(f"feature_baseline_drift_{f}" for f in FEATURES)
    smaller = baseline_in_s3(s3, "run-2", ["plan", "charges"])
    monitor._ensure_alarms("churn-classifier-prod", endpoint, schedule, smaller)
    assert sorted(alarms().values()) == ["feature_baseline_drift_charges", "feature_baseline_drift_plan"]


# ---------------------------------------------------------------- Stubber: what moto cannot play
@pytest.fixture
def stubbed(aws, settings):
    client = boto3.client("sagemaker", region_name=REGION)
    with Stubber(client) as stubber:
        yield SageMakerDataQualityMonitor(settings, sagemaker_client=client,
                                          cloudwatch_client=boto3.client("cloudwatch", region_name=REGION)), stubber
        stubber.assert_no_pending_responses()


def schedule_of(monitor: SageMakerDataQualityMonitor) -> MonitoringSchedule:
    return MonitoringSchedule(name=monitor.schedule_name("churn-classifier-prod"), job_definition_name="d",
                              endpoint_name=monitor.name("churn-classifier-prod"),
                              baseline={"statistics_uri": f"s3://{BUCKET}/s.json"}, change="unchanged",
                              status="Scheduled", output_uri=monitor.output_uri())


def check(since: datetime = T0) -> MonitoringCheck:
    return MonitoringCheck(since=since.isoformat(), until=(since + timedelta(hours=1)).isoformat(),
                           capture_prefix="s3://b/c", ground_truth_prefix="s3://b/g", settings=monitoring_settings(None))


def test_a_failed_schedule_is_an_error_naming_it_and_its_reason(stubbed, s3):
    monitor, stubber = stubbed
    baseline = baseline_in_s3(s3, "run-1")
    name = monitor.schedule_name("churn-classifier-prod")
    definition = monitor.definition_name("churn-classifier-prod", baseline)
    stubber.add_response("describe_monitoring_schedule", {
        "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:123456789012:monitoring-schedule/{name}",
        "MonitoringScheduleName": name, "MonitoringScheduleStatus": "Failed", "CreationTime": T0,
        "LastModifiedTime": T0, "FailureReason": "the role cannot read the baseline",
        "MonitoringScheduleConfig": {"MonitoringJobDefinitionName": definition, "MonitoringType": "DataQuality"}})
    stubber.add_response("describe_data_quality_job_definition", {
        "JobDefinitionArn": "arn:aws:sagemaker:us-east-1:123456789012:data-quality-job-definition/x",
        "JobDefinitionName": definition, "CreationTime": T0,
        "DataQualityAppSpecification": {"ImageUri": analyzer_image(REGION)},
        "DataQualityJobInput": {"EndpointInput": {"EndpointName": "e", "LocalPath": "/opt/ml/processing/input"}},
        "DataQualityJobOutputConfig": {"MonitoringOutputs": [{"S3Output": {"S3Uri": "s3://b/o",
                                                                           "LocalPath": "/opt/ml/processing/output"}}]},
        "JobResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 20}},
        "RoleArn": "arn:aws:iam::123456789012:role/mlops-sagemaker"})
    with pytest.raises(MonitoringScheduleError, match=f"{name} of mlops-churn-classifier-prod failed: the role cannot"):
        monitor.ensure_schedule("churn-classifier-prod", baseline)


def test_a_refused_create_is_an_error_naming_the_schedule_and_the_services_reason(stubbed, s3):
    monitor, stubber = stubbed
    baseline = baseline_in_s3(s3, "run-1")
    stubber.add_client_error("describe_monitoring_schedule", "ResourceNotFound", "not found")
    stubber.add_client_error("describe_data_quality_job_definition", "ResourceNotFound", "not found")
    stubber.add_client_error("create_data_quality_job_definition", "ResourceLimitExceeded",
                             "The account-level service limit 'Number of monitoring job definitions' is 100")
    with pytest.raises(MonitoringScheduleError, match="mlops-churn-classifier-prod-data-quality .*limit"):
        monitor.ensure_schedule("churn-classifier-prod", baseline)


def test_without_a_completed_execution_the_report_is_not_found_and_says_what_ran(stubbed):
    monitor, stubber = stubbed
    summary = {"MonitoringScheduleName": "s", "CreationTime": T0, "LastModifiedTime": T0}
    stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [
        {**summary, "ScheduledTime": T0 + timedelta(hours=1), "MonitoringExecutionStatus": "InProgress"},
        {**summary, "ScheduledTime": T0, "MonitoringExecutionStatus": "Failed",
         "FailureReason": "Job inputs had no data"}]}, {
        "MonitoringScheduleName": "mlops-churn-classifier-prod-data-quality", "SortBy": "ScheduledTime",
        "SortOrder": "Descending", "MaxResults": 24, "ScheduledTimeAfter": int(T0.timestamp()),
        "ScheduledTimeBefore": int((T0 + timedelta(hours=2)).timestamp())})
    with pytest.raises(MonitoringReportNotFound, match=r"InProgress at .*07:00.*Failed at .*06:00.*no data"):
        monitor.report(schedule_of(monitor), check())


def test_a_prod_endpoint_in_another_account_gets_its_schedule_there(settings):
    """The schedule names the endpoint, so it is made in the endpoint's account, with the stage's
    connection, region and execution role; a stage in the project's own account uses the backend's."""

    from mlops.backends import aws
    from mlops.backends.base import StageTarget

    backend = aws.build(settings)
    own = StageTarget("prod", "123456789012", REGION, registry_account="123456789012")
    assert backend.monitoring_for(own, managed=True) is backend.monitoring
    assert backend.monitoring_for(None, managed=True) is backend.monitoring
    role = "arn:aws:iam::345678901234:role/mlops-prod-sagemaker"
    other = StageTarget("prod", "345678901234", "eu-west-1", aws_conn_id="aws_prod", execution_role_arn=role,
                        registry_account="123456789012")
    monitor = backend.monitoring_for(other.to_dict(), managed=True)
    assert (monitor.settings.aws_conn_id, monitor.settings.aws_region, monitor.settings.sagemaker_role_arn) == \
        ("aws_prod", "eu-west-1", role)
    assert analyzer_image("eu-west-1").startswith("468650794304.")


def test_the_default_check_on_aws_is_monitor_models_own_on_the_s3_capture_in_any_account(settings):
    """``monitoring.aws.data_quality: own_check`` (the default; Model Monitor takes no new
    customers): the check reads the capture in the data bucket with the project's connection,
    whatever account prod is in, and records its schedule under the data root."""
    from mlops.backends import aws
    from mlops.backends.base import StageTarget
    from mlops.ml.capture_monitor import CaptureDataQualityMonitor

    assert monitoring_settings(None)["aws"]["data_quality"] == "own_check"
    backend = aws.build(settings)
    other = StageTarget("prod", "345678901234", "eu-west-1", aws_conn_id="aws_prod", registry_account="123456789012")
    for target in (None, other):
        monitor = backend.monitoring_for(target)
        assert isinstance(monitor, CaptureDataQualityMonitor) and monitor is backend.own_monitoring
    assert backend.own_monitoring.record_uri == f"s3://{BUCKET}/mlops/monitoring/own-check/schedules.json"


def test_an_unknown_data_quality_choice_is_refused_naming_the_key():
    from mlops.ml.monitoring import MonitoringError

    with pytest.raises(MonitoringError, match=r"monitoring\.aws\.data_quality"):
        monitoring_settings(type("Config", (), {"raw": {"monitoring": {"aws": {"data_quality": "clarify"}}}})())


def completed_execution(monitor: SageMakerDataQualityMonitor, scheduled: datetime, job_arn: str | None) -> dict:
    return {"MonitoringScheduleName": monitor.schedule_name("churn-classifier-prod"), "ScheduledTime": scheduled,
            "CreationTime": T0, "LastModifiedTime": T0, "MonitoringExecutionStatus": "CompletedWithViolations",
            **({"ProcessingJobArn": job_arn} if job_arn else {})}


def test_the_report_is_read_where_the_executions_processing_job_wrote_it_not_at_an_assumed_layout(
        stubbed, s3, moto_reads):
    from testkit.monitoring import described_processing_job

    monitor, stubber = stubbed
    baseline = baseline_in_s3(s3, "run-1")
    scheduled = T0 + timedelta(hours=1)
    # nowhere near <output>/<endpoint>/<schedule>/yyyy/mm/dd/hh: only the processing job says where
    elsewhere = "mlops/somewhere-else/exec-42"
    shifted = baseline_statistics(churn_like_frame(300, seed=9, shift=True), FEATURES, CATEGORICAL)
    s3.put_object(Bucket=BUCKET, Key=f"{elsewhere}/statistics.json", Body=json.dumps(shifted))
    s3.put_object(Bucket=BUCKET, Key=f"{elsewhere}/constraint_violations.json", Body=json.dumps({"violations": [
        {"feature_name": "charges", "constraint_check_type": "baseline_drift_check", "description": "0.7 > 0.1"}]}))
    job = f"arn:aws:sagemaker:{REGION}:123456789012:processing-job/model-monitoring-202611210700-0a1b2c3d"
    stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [
        completed_execution(monitor, scheduled, job)]})
    stubber.add_response("describe_processing_job",
                         described_processing_job(job, f"s3://{BUCKET}/{elsewhere}/", scheduled),
                         {"ProcessingJobName": "model-monitoring-202611210700-0a1b2c3d"})
    schedule = MonitoringSchedule(**{**schedule_of(monitor).to_dict(), "baseline": baseline.to_dict()})
    result = monitor.report(schedule, check())
    assert result["drifted_features"] == ["charges"] and result["rows"] == 300
    assert result["execution"]["statistics_uri"] == f"s3://{BUCKET}/{elsewhere}/statistics.json"


def test_an_execution_without_a_processing_job_is_not_found_naming_the_execution(stubbed):
    monitor, stubber = stubbed
    stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [
        completed_execution(monitor, T0 + timedelta(hours=1), None)]})
    with pytest.raises(MonitoringReportNotFound, match=r"execution of 2026-11-21T07:00:00\+00:00 names no "
                                                       r"processing job"):
        monitor.report(schedule_of(monitor), check())


def test_a_refused_describe_of_the_processing_job_is_an_error_not_a_missing_report(stubbed):
    """A missing ``sagemaker:DescribeProcessingJob`` grant must fail the run, not read as "no
    execution yet" (which is no drift)."""
    monitor, stubber = stubbed
    job = f"arn:aws:sagemaker:{REGION}:123456789012:processing-job/model-monitoring-202611210700-0a1b2c3d"
    stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [
        completed_execution(monitor, T0 + timedelta(hours=1), job)]})
    stubber.add_client_error("describe_processing_job", "AccessDeniedException",
                             "User is not authorized to perform: sagemaker:DescribeProcessingJob")
    with pytest.raises(MonitoringScheduleError, match=r"DescribeProcessingJob of model-monitoring-202611210700-"
                                                      r"0a1b2c3d .* refused: AccessDeniedException User is not"):
        monitor.report(schedule_of(monitor), check())
