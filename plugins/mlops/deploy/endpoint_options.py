"""The prod endpoint's options from the pipeline config's ``endpoint.prod`` section, as SageMaker
takes them: the ``DataCaptureConfig`` (requests and responses sampled to the object store), the
blue/green ``DeploymentConfig`` (canary, linear or all-at-once traffic shifting, rolled back on
CloudWatch alarms) and the ``PutMetricAlarm`` requests of those alarms. Each is checked against
SageMaker's limits (:mod:`mlops.backends.limits`) before any call; both backends take them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.backends.limits import check_data_capture, check_deployment_config, check_shape

if TYPE_CHECKING:
    from mlops.core.settings import Settings

TRAFFIC_TYPES = {"canary": "CANARY", "linear": "LINEAR", "all_at_once": "ALL_AT_ONCE"}
CAPTURE_CONTENT_TYPES = {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}
# A fleet of one instance cannot be split into a canary or linear steps: the default shifts all
# at once and bakes (WaitIntervalInSeconds) while the alarms watch the new fleet.
DEFAULT_PROD = {
    "data_capture": {"sampling_percentage": 20, "destination": "monitoring/data-capture"},
    "traffic_shifting": {"type": "all_at_once", "step_percent": None, "wait_interval_s": 600,
                         "termination_wait_s": 600, "max_execution_timeout_s": 3600},
    "rollback_alarms": {"invocation_5xx_errors": 1, "model_latency_p95_ms": 500},
}


def _section(prod: dict[str, Any], key: str) -> dict[str, Any]:
    value = prod.get(key, DEFAULT_PROD[key])
    if not isinstance(value, dict):
        raise ValueError(f"endpoint.prod.{key} must be a mapping, got {type(value).__name__}")
    return {**DEFAULT_PROD[key], **value}


def data_capture_config(settings: Settings, endpoint_name: str, prod: dict[str, Any]) -> dict[str, Any]:
    """SageMaker ``DataCaptureConfig``: requests and responses sampled to the object store.

    ``endpoint.prod.data_capture``: ``sampling_percentage`` (0-100), ``destination`` (a folder
    under ``MLOPS_DATA_URI``, or a full ``s3://`` URI); ``enabled: false`` turns it off.
    """
    capture = _section(prod, "data_capture")
    percentage = int(capture["sampling_percentage"])
    if not 0 <= percentage <= 100:
        raise ValueError(f"endpoint.prod.data_capture.sampling_percentage={percentage} is not 0-100")
    destination = str(capture["destination"])
    if "://" not in destination:
        destination = f"{settings.data_uri.rstrip('/')}/{destination.strip('/')}"
    config = {
        "EnableCapture": bool(capture.get("enabled", True)),
        "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": f"{destination.rstrip('/')}/{endpoint_name}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": CAPTURE_CONTENT_TYPES,
    }
    check_data_capture(config, "endpoint.prod.data_capture")
    return config


def alarm_names(endpoint_name: str, prod: dict[str, Any]) -> list[str]:
    """Names of the CloudWatch alarms that roll a prod update back (see :func:`rollback_alarm_requests`)."""
    return [request["AlarmName"] for request in rollback_alarm_requests(endpoint_name, prod)]


def rollback_alarm_requests(endpoint_name: str, prod: dict[str, Any],
                            variant: str = "AllTraffic") -> list[dict[str, Any]]:
    """``PutMetricAlarm`` requests of the alarms that guard a blue/green update.

    ``endpoint.prod.rollback_alarms``: ``invocation_5xx_errors`` (errors per minute that trip
    the alarm) and ``model_latency_p95_ms``; a value of ``null`` drops that alarm. The alarms
    watch the endpoint's variant, so during the update they see the new fleet's traffic.
    """
    thresholds = _section(prod, "rollback_alarms")
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
    common = {"Namespace": "AWS/SageMaker", "Dimensions": dimensions, "Period": 60, "EvaluationPeriods": 2,
              "DatapointsToAlarm": 2, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
              "TreatMissingData": "notBreaching", "ActionsEnabled": False}
    requests = []
    if thresholds.get("invocation_5xx_errors") is not None:
        requests.append({
            **common, "AlarmName": f"{endpoint_name}-invocation-5xx-errors",
            "AlarmDescription": f"Rolls back a blue/green update of {endpoint_name}: 5xx errors.",
            "MetricName": "Invocation5XXErrors", "Statistic": "Sum",
            "Threshold": float(thresholds["invocation_5xx_errors"]),
        })
    if thresholds.get("model_latency_p95_ms") is not None:
        requests.append({
            **common, "AlarmName": f"{endpoint_name}-model-latency-p95",
            "AlarmDescription": f"Rolls back a blue/green update of {endpoint_name}: p95 model latency.",
            "MetricName": "ModelLatency", "ExtendedStatistic": "p95",
            "Threshold": float(thresholds["model_latency_p95_ms"]) * 1000.0,  # ModelLatency is in µs
        })
    return requests


def blue_green_deployment_config(endpoint_name: str, prod: dict[str, Any]) -> dict[str, Any]:
    """SageMaker ``DeploymentConfig`` for ``UpdateEndpoint``: blue/green with traffic shifting.

    ``endpoint.prod.traffic_shifting``: ``type`` (``canary``, ``linear``, ``all_at_once``),
    ``step_percent`` (canary size or linear step, percent of the fleet's instances),
    ``wait_interval_s`` (the baking period after a step), ``termination_wait_s`` (before the
    old fleet goes), ``max_execution_timeout_s``. Any rollback alarm in alarm state during the
    shift or a baking period sends all traffic back to the old fleet.

    Checked against the fleet it will split (``endpoint.prod.initial_instance_count``) before any
    call (:func:`mlops.backends.limits.check_deployment_config`): a canary of at most half the instances, a
    linear step of 10-50%, each a whole number of instances, so one instance takes only
    ``all_at_once`` (with a baking period). Raises :class:`~mlops.backends.limits.LimitError` naming the
    setting and the limit.
    """
    shifting = _section(prod, "traffic_shifting")
    kind = str(shifting["type"]).lower()
    if kind not in TRAFFIC_TYPES:
        raise ValueError(f"endpoint.prod.traffic_shifting.type={kind!r} is not one of {', '.join(TRAFFIC_TYPES)}")
    routing: dict[str, Any] = {"Type": TRAFFIC_TYPES[kind], "WaitIntervalInSeconds": shifting["wait_interval_s"]}
    if kind != "all_at_once":
        step = shifting["step_percent"]
        if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step <= 100:
            raise ValueError(f"endpoint.prod.traffic_shifting.step_percent={step} is not a whole percentage 1-100")
        routing["CanarySize" if kind == "canary" else "LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": step}
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": shifting["termination_wait_s"],
        "MaximumExecutionTimeoutInSeconds": shifting["max_execution_timeout_s"],
    }}
    names = alarm_names(endpoint_name, prod)
    if names:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in names]}
    return dict(check_deployment_config(config, instance_count(prod)))


def instance_count(prod: dict[str, Any]) -> int:
    """``endpoint.prod.initial_instance_count`` (default 1), checked as SageMaker's
    ``InitialInstanceCount`` (at least 1)."""
    return check_shape("InitialTaskCount", prod.get("initial_instance_count", 1),
                       "endpoint.prod.initial_instance_count")


def prod_endpoint_options(settings: Settings, endpoint_name: str, prod: dict[str, Any]) -> dict[str, Any]:
    """The prod extras of an :class:`~mlops.backends.base.EndpointSpec`:
    ``{"data_capture_config": {...}, "deployment_config": {...}}``."""
    return {
        "data_capture_config": data_capture_config(settings, endpoint_name, prod),
        "deployment_config": blue_green_deployment_config(endpoint_name, prod),
    }
