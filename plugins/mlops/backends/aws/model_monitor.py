"""The DataQualityMonitor port on SageMaker Model Monitor: the prod endpoint's data-quality schedule.

Built from the same registration baseline :mod:`mlops.ml.monitoring` checks against, so the
managed schedule on AWS and the local twin read one baseline and give one result format:

* :func:`data_quality_job_definition_request`: ``CreateDataQualityJobDefinition`` — the endpoint's
  capture as input, the baseline's ``statistics.json`` / ``constraints.json``, reports under
  ``monitoring/model-monitor/<endpoint>/``;
* :func:`monitoring_schedule_request`: ``CreateMonitoringSchedule`` — hourly, on that definition;
* :func:`violation_alarm_requests`: ``PutMetricAlarm`` on each feature's
  ``feature_baseline_drift_<name>`` metric (namespace ``aws/sagemaker/Endpoints/data-metrics``,
  emitted because the constraints enable ``emit_metrics``) over the comparison threshold.

:class:`SageMakerDataQualityMonitor` sends them, idempotently:

* ``ensure_schedule`` describes the schedule and the definition first. A job definition cannot be
  changed (SageMaker has no ``UpdateDataQualityJobDefinition``), so its name carries a digest of
  the baseline's URIs: the same baseline finds its definition and the schedule on it (nothing is
  sent but the describes and the alarms' idempotent ``PutMetricAlarm``); a new prod version's
  baseline creates its definition, points the one schedule at it (``UpdateMonitoringSchedule``)
  and deletes the old definition. Alarms of features the new baseline lacks are deleted.
* ``report`` lists the schedule's executions scheduled in ``(since, until + 1 h)`` — an hourly
  execution at ``T`` analyses the capture of ``[T - 1 h, T)``, so these are the ones that read
  the window — takes the newest that completed (``Completed`` or ``CompletedWithViolations``)
  and reads its ``statistics.json`` and ``constraint_violations.json`` from where SageMaker says
  it wrote them: ``DescribeProcessingJob`` of the execution's ``ProcessingJobArn``, its
  ``ProcessingOutputConfig.Outputs[].S3Output.S3Uri`` (as the SageMaker SDK's
  ``MonitoringExecution.from_processing_arn`` reads it; no report layout is assumed), into the
  local check's result format (:func:`mlops.ml.monitoring.model_monitor_result`). Model quality
  is added as the own check computes it (:func:`mlops.ml.monitoring.capture_model_quality`: the
  run's window of S3 capture joined with the ground truth on the inference id, against the
  approval thresholds): Model Monitor's data-quality job has no labels, and no managed
  model-quality schedule is needed for it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops.backends.aws.clients import AwsClients, or_none
from mlops.backends.base import (
    DataQualityMonitor,
    MonitoringBaseline,
    MonitoringCheck,
    MonitoringReportNotFound,
    MonitoringSchedule,
    MonitoringScheduleError,
)
from mlops.core.naming import prefixed

if TYPE_CHECKING:
    from mlops.core.settings import Settings

log = logging.getLogger(__name__)

DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
HOURLY = "cron(0 * ? * * *)"
CAPTURE_LOCAL_PATH = "/opt/ml/processing/input/endpoint"
REPORT_LOCAL_PATH = "/opt/ml/processing/output"
NAME_MAX = 63  # MonitoringScheduleName, JobDefinitionName, EndpointName
DONE = ("Completed", "CompletedWithViolations")
REPORTS = "monitoring/model-monitor"  # under MLOPS_DATA_URI; where an execution wrote is its processing job's output


@functools.cache
def analyzer_image(region: str, image_uri: str | None = None) -> str:
    """The Model Monitor analyzer image of ``region`` (or ``image_uri`` when given), from the
    SageMaker SDK's ``image_uris.retrieve("model-monitor", region)``.

    :raises ValueError: naming the region and how many regions the SDK knows.
    """
    if image_uri:
        return image_uri
    from mlops.backends.aws.sklearn_image import _image_uris

    image_uris = _image_uris()
    try:
        return image_uris.retrieve("model-monitor", region=region)
    except ValueError:
        known = sorted(image_uris.config_for_framework("model-monitor")["versions"][""]["registries"])
        raise ValueError(f"no Model Monitor analyzer image known for region {region!r} (the SageMaker SDK lists "
                         f"{len(known)} regions, e.g. {', '.join(known[:3])})") from None


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


class SageMakerDataQualityMonitor(AwsClients, DataQualityMonitor):
    """The prod endpoint's Model Monitor data-quality schedule (see the module docstring).

    :param settings: region, execution role (the definition's ``RoleArn``), data root (reports
        under ``monitoring/model-monitor/``), name prefix, AWS connection.
    :param sagemaker_client: boto3 ``sagemaker`` client (default: from the AWS connection).
    :param cloudwatch_client: boto3 ``cloudwatch`` client, for the violation alarms.
    :param instance_type: the monitoring job's instance.
    :param image_uri: the analyzer image (default: the SDK's for the region).
    """

    def __init__(self, settings: Settings, sagemaker_client=None, cloudwatch_client=None,
                 instance_type: str = "ml.m5.large", image_uri: str | None = None):
        if not settings.sagemaker_role_arn:
            raise ValueError("Model Monitor needs the execution role ARN (MLOPS_SAGEMAKER_ROLE)")
        self.settings = settings
        self.instance_type = instance_type
        self.image_uri = image_uri
        self._use_clients(sagemaker=sagemaker_client, cloudwatch=cloudwatch_client)

    # ------------------------------------------------------------ names
    def name(self, name: str) -> str:
        return prefixed(self.settings.name_prefix, name, NAME_MAX)

    def schedule_name(self, endpoint_name: str) -> str:
        """``<prefix>-<endpoint>-data-quality`` (one schedule per endpoint)."""
        return self.name(f"{self._logical(endpoint_name)}-data-quality")

    def definition_name(self, endpoint_name: str, baseline: MonitoringBaseline) -> str:
        """``<prefix>-<endpoint>-dq-<8 hex of the baseline's URIs>``: one definition per baseline."""
        digest = hashlib.sha256(f"{baseline.statistics_uri}\n{baseline.constraints_uri}".encode()).hexdigest()[:8]
        return self.name(f"{self._logical(endpoint_name)}-dq-{digest}")

    def alarm_prefix(self, endpoint_name: str) -> str:
        """What the schedule's violation alarms' names start with (:func:`violation_alarm_requests`)."""
        return f"{self.schedule_name(endpoint_name)}-drift-"

    def output_uri(self) -> str:
        """Where the executions write: ``<data root>/monitoring/model-monitor``."""
        return f"{self.settings.data_uri.rstrip('/')}/{REPORTS}"

    def _logical(self, endpoint_name: str) -> str:
        head = f"{self.settings.name_prefix}-"
        return endpoint_name[len(head):] if endpoint_name.startswith(head) else endpoint_name

    # ------------------------------------------------------------ the port
    def ensure_schedule(self, endpoint_name: str, baseline: MonitoringBaseline) -> MonitoringSchedule:
        from botocore.exceptions import ClientError

        endpoint = self.name(endpoint_name)
        schedule = self.schedule_name(endpoint_name)
        definition = self.definition_name(endpoint_name, baseline)
        output = self.output_uri()
        request = data_quality_job_definition_request(
            definition, endpoint, baseline.statistics_uri, baseline.constraints_uri, output,
            self.settings.sagemaker_role_arn, self.settings.aws_region, self.instance_type,
            image_uri=analyzer_image(self.settings.aws_region, self.image_uri))
        described = or_none(lambda: self.sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule))
        try:
            if or_none(lambda: self.sagemaker.describe_data_quality_job_definition(JobDefinitionName=definition)) is None:
                self.sagemaker.create_data_quality_job_definition(**request)
            config = monitoring_schedule_request(schedule, definition)
            if described is None:
                self.sagemaker.create_monitoring_schedule(**config)
                change, status = "created", "Pending"
            else:
                current = described.get("MonitoringScheduleConfig", {}).get("MonitoringJobDefinitionName")
                status = described.get("MonitoringScheduleStatus", "")
                if current == definition:
                    change = "unchanged"
                    if status == "Failed":
                        raise MonitoringScheduleError(
                            f"monitoring schedule {schedule} of {endpoint} failed: "
                            f"{described.get('FailureReason') or 'no reason given'}")
                else:
                    self.sagemaker.update_monitoring_schedule(
                        MonitoringScheduleName=schedule, MonitoringScheduleConfig=config["MonitoringScheduleConfig"])
                    change, status = "replaced", "Pending"
                    if current:
                        self._delete_definition(current)
        except ClientError as err:
            raise MonitoringScheduleError(f"monitoring schedule {schedule} of {endpoint} on {definition}: "
                                          f"{err.response.get('Error', {}).get('Message') or err}") from err
        alarms = self._ensure_alarms(endpoint_name, endpoint, schedule, baseline)
        log.info("monitoring schedule %s of %s on %s: %s", schedule, endpoint, definition, change)
        return MonitoringSchedule(name=schedule, job_definition_name=definition, endpoint_name=endpoint,
                                  baseline=baseline.to_dict(), change=change, status=status, alarm_names=alarms,
                                  output_uri=output, cron=HOURLY)

    def report(self, schedule: MonitoringSchedule, check: MonitoringCheck) -> dict[str, Any]:
        from mlops.core.storage import read_json, to_path
        from mlops.ml.monitoring import _utc, capture_model_quality, merge_model_quality, model_monitor_result

        since, until = _utc(check.since), _utc(check.until)
        # epoch seconds: the same instant as a datetime, and a request that reads the same in a golden file
        answer = self.sagemaker.list_monitoring_executions(
            MonitoringScheduleName=schedule.name, ScheduledTimeAfter=int(since.timestamp()),
            ScheduledTimeBefore=int((until + timedelta(hours=1)).timestamp()),
            SortBy="ScheduledTime", SortOrder="Descending", MaxResults=24)
        executions = answer.get("MonitoringExecutionSummaries", [])
        done = [e for e in executions if e.get("MonitoringExecutionStatus") in DONE]
        if not done:
            seen = "; ".join(f"{e.get('MonitoringExecutionStatus')} at {_when(e['ScheduledTime'])}"
                             + (f" ({e['FailureReason'][:200]})" if e.get("FailureReason") else "")
                             for e in executions[:3]) or "no execution scheduled yet"
            raise MonitoringReportNotFound(f"monitoring schedule {schedule.name}: no completed execution read the "
                                           f"window {since.isoformat()} .. {until.isoformat()} ({seen})")
        latest = done[0]
        scheduled = _utc(latest["ScheduledTime"])
        folder = self.report_folder(schedule, latest, scheduled)
        statistics_uri, violations_uri = f"{folder}/statistics.json", f"{folder}/constraint_violations.json"
        if not to_path(statistics_uri).exists():
            raise MonitoringReportNotFound(f"monitoring schedule {schedule.name}: the execution of "
                                           f"{scheduled.isoformat()} completed but wrote no {statistics_uri}")
        if to_path(violations_uri).exists():
            violations = read_json(violations_uri)
        elif latest["MonitoringExecutionStatus"] == "Completed":
            violations = {"violations": []}
        else:
            raise MonitoringReportNotFound(f"monitoring schedule {schedule.name}: the execution of "
                                           f"{scheduled.isoformat()} found violations but wrote no {violations_uri}")
        result = model_monitor_result(read_json(schedule.baseline["statistics_uri"]), read_json(statistics_uri),
                                      violations, check.settings)
        window = {"since": (scheduled - timedelta(hours=1)).isoformat(), "until": scheduled.isoformat()}
        result["window"] = window
        # Model Monitor's data-quality job has no labels: model quality is the own check's, on the
        # run's window of S3 capture and ground truth (no managed model-quality schedule)
        merge_model_quality(result, capture_model_quality(
            check.capture_prefix, check.ground_truth_prefix, check.since, check.until, check.positive_label,
            check.thresholds or {}, chunk_rows=int(check.settings.get("chunk_rows", 50_000))))
        result["execution"] = {"schedule": schedule.name, "job_definition_name": schedule.job_definition_name,
                               "status": latest["MonitoringExecutionStatus"], "window": window,
                               "processing_job_arn": latest.get("ProcessingJobArn"), "by": "sagemaker-model-monitor",
                               "statistics_uri": statistics_uri, "violations_uri": violations_uri}
        return result

    # ------------------------------------------------------------ helpers
    def report_folder(self, schedule: MonitoringSchedule, execution: dict[str, Any], scheduled: datetime) -> str:
        """Where ``execution`` wrote its reports, as SageMaker says: its processing job's output
        (``DescribeProcessingJob``: the ``S3Output`` of the definition's monitoring output, found
        by its local path, else the first, as the SageMaker SDK's
        ``MonitoringExecution.from_processing_arn(...).output.destination`` does).

        :raises MonitoringReportNotFound: the execution names no processing job, or the job no output.
        :raises MonitoringScheduleError: SageMaker refused to describe the job (e.g. the role lacks
            ``sagemaker:DescribeProcessingJob``): an error, never taken for "no report yet".
        """
        from botocore.exceptions import ClientError

        arn = execution.get("ProcessingJobArn")
        if not arn or "processing-job/" not in arn:
            raise MonitoringReportNotFound(f"monitoring schedule {schedule.name}: the execution of "
                                           f"{scheduled.isoformat()} names no processing job ({arn!r})")
        job = arn.split("processing-job/", 1)[1]
        try:
            described = self.sagemaker.describe_processing_job(ProcessingJobName=job)
        except ClientError as err:
            error = err.response.get("Error", {})
            raise MonitoringScheduleError(
                f"monitoring schedule {schedule.name}: sagemaker:DescribeProcessingJob of {job} (the execution of "
                f"{scheduled.isoformat()}) was refused: {error.get('Code', '')} "
                f"{(error.get('Message') or str(err))[:300]}") from err
        outputs = [o for o in described.get("ProcessingOutputConfig", {}).get("Outputs", []) if o.get("S3Output")]
        chosen = [o for o in outputs if o["S3Output"].get("LocalPath") == REPORT_LOCAL_PATH] or outputs
        if not chosen:
            raise MonitoringReportNotFound(f"monitoring schedule {schedule.name}: processing job {job} of the "
                                           f"execution of {scheduled.isoformat()} has no S3 output")
        return chosen[0]["S3Output"]["S3Uri"].rstrip("/")

    def _delete_definition(self, name: str) -> None:
        """Delete a definition no schedule runs any more; SageMaker refusing (still settling) is
        logged, not raised: the schedule already runs the new one."""
        from botocore.exceptions import ClientError

        try:
            or_none(lambda: self.sagemaker.delete_data_quality_job_definition(JobDefinitionName=name))
        except ClientError as err:
            log.warning("data-quality job definition %s was not deleted: %s", name, err)

    def _alarms(self, endpoint_name: str) -> list[str]:
        pages = self.aws_client("cloudwatch").get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=self.alarm_prefix(endpoint_name), AlarmTypes=["MetricAlarm"])
        return [alarm["AlarmName"] for page in pages for alarm in page.get("MetricAlarms", [])]

    def _ensure_alarms(self, endpoint_name: str, endpoint: str, schedule: str,
                       baseline: MonitoringBaseline) -> list[str]:
        """One alarm per feature of the baseline; alarms of features it no longer has are deleted."""
        from mlops.core.storage import read_json

        constraints = read_json(baseline.constraints_uri)
        features = [feature["name"] for feature in constraints.get("features", [])]
        requests = violation_alarm_requests(endpoint, schedule, constraints, features)
        cloudwatch = self.aws_client("cloudwatch")
        for request in requests:
            cloudwatch.put_metric_alarm(**request)
        wanted = [request["AlarmName"] for request in requests]
        stale = sorted(set(self._alarms(endpoint_name)) - set(wanted))
        if stale:
            cloudwatch.delete_alarms(AlarmNames=stale)
        return wanted


def _when(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
