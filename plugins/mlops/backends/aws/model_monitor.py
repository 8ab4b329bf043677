"""SageMaker Model Monitor requests for the prod endpoint's data-quality schedule (request shapes only).

Built from the same registration baseline :mod:`mlops.ml.monitoring` checks against, so the
managed schedule on AWS and ``monitor_model``'s own check read one baseline and write one report
format (Model Monitor's ``constraint_violations.json``):

* :func:`data_quality_job_definition_request`: ``CreateDataQualityJobDefinition`` — the endpoint's
  capture as input, the baseline's ``statistics.json`` / ``constraints.json``, reports under
  ``monitoring/model-monitor/<endpoint>/``;
* :func:`monitoring_schedule_request`: ``CreateMonitoringSchedule`` — hourly, on that definition;
* :func:`violation_alarm_requests`: ``PutMetricAlarm`` on each feature's
  ``feature_baseline_drift_<name>`` metric (namespace ``aws/sagemaker/Endpoints/data-metrics``,
  emitted because the constraints enable ``emit_metrics``) over the comparison threshold.

Not yet wired: no port calls these (``monitor_model`` runs the checks itself on the capture in S3
on both backends); see the README's monitoring section.
"""

from __future__ import annotations

from typing import Any

# The Model Monitor analyzer image's registry account per region (SageMaker Developer Guide,
# "Prebuilt container" for Model Monitor); other regions: give ``image_uri``.
ANALYZER_ACCOUNTS = {
    "us-east-1": "156813124566", "us-east-2": "777275614652", "us-west-2": "159807026194",
    "eu-west-1": "468650794304",
}
DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
HOURLY = "cron(0 * ? * * *)"
CAPTURE_LOCAL_PATH = "/opt/ml/processing/input/endpoint"
REPORT_LOCAL_PATH = "/opt/ml/processing/output"


def analyzer_image(region: str, image_uri: str | None = None) -> str:
    """The Model Monitor analyzer image of ``region`` (or ``image_uri`` when given)."""
    if image_uri:
        return image_uri
    try:
        account = ANALYZER_ACCOUNTS[region]
    except KeyError:
        raise ValueError(f"no Model Monitor analyzer image known for region {region!r}: set monitoring.aws.image_uri "
                         f"(known: {', '.join(sorted(ANALYZER_ACCOUNTS))})") from None
    return f"{account}.dkr.ecr.{region}.amazonaws.com/sagemaker-model-monitor-analyzer"


def data_quality_job_definition_request(name: str, endpoint_name: str, statistics_uri: str, constraints_uri: str,
                                        output_uri: str, role_arn: str, region: str,
                                        instance_type: str = "ml.m5.large", max_runtime_s: int = 3600,
                                        image_uri: str | None = None) -> dict[str, Any]:
    """``CreateDataQualityJobDefinition`` for ``endpoint_name`` against the registration baseline."""
    for label, uri in (("statistics", statistics_uri), ("constraints", constraints_uri), ("output", output_uri)):
        if not uri.startswith("s3://"):
            raise ValueError(f"the Model Monitor {label} URI must be s3://, got {uri!r}")
    return {
        "JobDefinitionName": name,
        "DataQualityBaselineConfig": {"ConstraintsResource": {"S3Uri": constraints_uri},
                                      "StatisticsResource": {"S3Uri": statistics_uri}},
        "DataQualityAppSpecification": {"ImageUri": analyzer_image(region, image_uri)},
        "DataQualityJobInput": {"EndpointInput": {"EndpointName": endpoint_name, "LocalPath": CAPTURE_LOCAL_PATH,
                                                  "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}},
        "DataQualityJobOutputConfig": {"MonitoringOutputs": [{"S3Output": {
            "S3Uri": output_uri.rstrip("/"), "LocalPath": REPORT_LOCAL_PATH, "S3UploadMode": "EndOfJob"}}]},
        "JobResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": 20}},
        "RoleArn": role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
    }


def monitoring_schedule_request(name: str, job_definition_name: str, cron: str = HOURLY) -> dict[str, Any]:
    """``CreateMonitoringSchedule``: the data-quality job definition on ``cron`` (hourly)."""
    return {"MonitoringScheduleName": name, "MonitoringScheduleConfig": {
        "ScheduleConfig": {"ScheduleExpression": cron},
        "MonitoringJobDefinitionName": job_definition_name, "MonitoringType": "DataQuality"}}


def violation_alarm_requests(endpoint_name: str, schedule_name: str, constraints: dict[str, Any],
                             features: list[str]) -> list[dict[str, Any]]:
    """``PutMetricAlarm`` per feature: its baseline drift over the constraints' comparison threshold."""
    threshold = float(constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"])
    dimensions = [{"Name": "Endpoint", "Value": endpoint_name}, {"Name": "MonitoringSchedule", "Value": schedule_name}]
    return [{
        "AlarmName": f"{schedule_name}-drift-{index:02d}",
        "AlarmDescription": f"Model Monitor: {feature!r} drifted from the baseline of {endpoint_name}.",
        "Namespace": DATA_METRICS_NAMESPACE, "MetricName": f"feature_baseline_drift_{feature}",
        "Dimensions": dimensions, "Statistic": "Maximum", "Period": 3600, "EvaluationPeriods": 1,
        "Threshold": threshold, "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
        "ActionsEnabled": False,
    } for index, feature in enumerate(features)]
