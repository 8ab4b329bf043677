"""SageMaker's limits, checked before any call, on both backends.

One layer for both backends: the AWS ports check every request here before they send it, and
the local twins check the same settings before they start work, so a setting SageMaker would
reject fails the same way on this machine, with a :class:`LimitError` naming the setting, its
value and the limit.

Where the limits come from:

* **botocore's ``sagemaker`` service model** (:func:`check_shape`, :func:`check_request`): every
  ``min``/``max`` (value, length or item count), ``pattern`` and ``enum`` of the shapes a value
  travels in. botocore itself only enforces types, required members and ``min`` before sending;
  the service enforces the rest, so this walk is what makes them fail here first. A few
  patterns use Java's Unicode classes (``\\p{L}``), which Python's ``re`` cannot compile; those
  (tag keys and values, customer metadata) are left to the service.
* **SageMaker's documentation**, for rules the model does not carry; each function says which
  page states them (serverless memory steps, canary and linear step sizes, the blue/green
  timeout, Autopilot's 500 training rows, the transform payload).
* **This project's rules**, where SageMaker accepts a setting that cannot work (an Autopilot job
  budget too short to produce a candidate, an all-at-once update without a baking period); they
  are marked as ours, with the reason.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

# ---------------------------------------------------------------- documented limits
# ProductionVariantServerlessConfig.MemorySizeInMB (botocore documentation of the member): "Valid
# values are in 1 GB increments: 1024 MB, 2048 MB, 3072 MB, 4096 MB, 5120 MB, or 6144 MB."
SERVERLESS_MEMORY_STEP_MB = 1024
# TrafficRoutingConfig (API reference): "CanarySize ... must be less than or equal to 50% of the
# variant's total instance count"; "LinearStepSize ... must be 10-50% of the variant's total
# instance count".
CANARY_MAX_PERCENT = 50
LINEAR_PERCENT_RANGE = (10, 50)
# CreateAutoMLJob InputDataConfig (botocore documentation of the member; CreateAutoMLJobV2 is its
# backward-compatible successor): "A minimum of 500 rows is required for the training dataset."
AUTOML_MIN_ROWS = 500
# CreateTransformJob MaxPayloadInMB (API reference): "The value of MaxPayloadInMB cannot be
# greater than 100 MB", nor MaxConcurrentTransforms * MaxPayloadInMB.
TRANSFORM_MAX_PAYLOAD_MB = 100
# This project's rule, not SageMaker's (it accepts 1 s): a tabular Autopilot job first analyses
# the data, then trains; a budget shorter than this ends the job at MaxAutoMLJobRuntimeReached
# before any candidate is scored, so the DAG would wait for a job that cannot give it a model.
# One hour is the budget SageMaker's own Autopilot examples use.
AUTOML_MIN_JOB_RUNTIME_S = 3600

SAGEMAKER_NAME = "EndpointName"  # [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}: every resource name's rule


class LimitError(ValueError):
    """A setting is outside a limit SageMaker documents (or that this project sets, said so)."""


# ---------------------------------------------------------------- botocore's model
@functools.cache
def service_model():
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


@functools.cache
def _pattern(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(pattern)
    except re.error:  # Java's \p{...} classes: left to the service (see the module docstring)
        return None


def _fail(setting: str, value: Any, shape, limit: str) -> LimitError:
    return LimitError(f"{setting}={value!r} {limit} (SageMaker's {shape.name}, botocore's sagemaker model)")


def _check_value(setting: str, value: Any, shape) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if value is None:
        return
    if kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind in ("integer", "long") and not float(value).is_integer()):
            raise _fail(setting, value, shape, f"is not {'an integer' if kind in ('integer', 'long') else 'a number'}")
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if low is not None and high is not None else (
                f"at least {low}" if low is not None else f"at most {high}")
            raise _fail(setting, value, shape, f"must be {bounds}")
    elif kind == "string":
        if not isinstance(value, str):
            raise _fail(setting, value, shape, "is not a string")
        if "enum" in meta and value not in meta["enum"]:
            choices = meta["enum"]
            listed = ", ".join(choices) if len(choices) <= 12 else ", ".join(choices[:12]) + ", ..."
            raise _fail(setting, value, shape, f"is not one of {listed}")
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise _fail(setting, value, shape, f"has {len(value)} characters; the limit is {low} to {high}")
        compiled = _pattern(meta["pattern"]) if "pattern" in meta else None
        if compiled is not None and not compiled.fullmatch(value):
            raise _fail(setting, value, shape, f"does not match the pattern {meta['pattern']}")
    elif kind in ("list", "map"):
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise _fail(setting, value, shape, f"has {len(value)} entries; the limit is {low} to {high}")


def _walk(setting: str, value: Any, shape) -> None:
    _check_value(setting, value, shape)
    if value is None:
        return
    if shape.type_name == "structure":
        if not isinstance(value, Mapping):
            raise _fail(setting, value, shape, "is not a mapping")
        unknown = sorted(set(value) - set(shape.members))
        if unknown:
            raise LimitError(f"{setting}: {', '.join(unknown)} not in SageMaker's {shape.name} "
                             f"(members: {', '.join(shape.members)})")
        missing = [name for name in shape.required_members if value.get(name) is None]
        if missing:
            raise LimitError(f"{setting}: SageMaker's {shape.name} requires {', '.join(missing)}")
        for name, member in value.items():
            _walk(f"{setting}.{name}", member, shape.members[name])
    elif shape.type_name == "list":
        for index, item in enumerate(value):
            _walk(f"{setting}[{index}]", item, shape.member)
    elif shape.type_name == "map":
        for key, item in value.items():
            _walk(f"{setting}[{key!r}]", item, shape.value)


def check_shape(shape_name: str, value: Any, setting: str) -> Any:
    """Check ``value`` against SageMaker's shape ``shape_name`` and every shape inside it: each
    member's ``min``/``max``, ``pattern`` and ``enum``, required members, no unknown member.
    Returns ``value``; raises :class:`LimitError` naming ``setting`` (a dotted path into it)."""
    _walk(setting, value, service_model().shape_for(shape_name))
    return value


def check_request(operation: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check a request of ``operation`` (e.g. ``CreateEndpointConfig``) as SageMaker would, before
    it is sent: botocore's own validation (types, required members) then :func:`check_shape`."""
    from botocore.validate import ParamValidator

    shape = service_model().operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise LimitError(f"{operation}: {report.generate_report()}")
    _walk(operation, params, shape)
    return params


def _check_params(params: Mapping[str, Any], model, **_: Any) -> None:
    _walk(model.name, params, model.input_shape)


def strict_requests(client):
    """``client`` (a boto3 ``sagemaker`` client) checking every request with :func:`check_shape`
    before botocore builds it (its ``provide-client-params`` event); other clients are returned
    as they are. Registered once per client."""
    if client.meta.service_model.service_name == "sagemaker":
        client.meta.events.register("provide-client-params.sagemaker", _check_params,
                                    unique_id="mlops-limits-strict-requests")
    return client


def check_name(setting: str, name: str, shape: str = SAGEMAKER_NAME) -> str:
    """A resource name under SageMaker's rule for ``shape`` (``EndpointName``, ``ModelName``,
    ``AutoMLJobName`` (32 characters), ``TrainingJobName``...)."""
    return check_shape(shape, name, setting)


# ---------------------------------------------------------------- hosting
def serverless_config(memory_size_mb: Any, max_concurrency: Any, provisioned_concurrency: Any = None,
                      setting: str = "endpoint.staging") -> dict[str, int]:
    """The ``ServerlessConfig`` of a variant, checked: memory 1024-6144 MB in 1024 MB steps,
    concurrency 1-200 (the model), provisioned concurrency at most the maximum (documented on
    ``ProvisionedConcurrency``: "Should be less than or equal to MaxConcurrency")."""
    config = {"MemorySizeInMB": memory_size_mb, "MaxConcurrency": max_concurrency}
    if provisioned_concurrency is not None:
        config["ProvisionedConcurrency"] = provisioned_concurrency
    check_shape("ProductionVariantServerlessConfig", config, setting)
    if memory_size_mb % SERVERLESS_MEMORY_STEP_MB:
        raise LimitError(f"{setting}.MemorySizeInMB={memory_size_mb} is not a multiple of "
                         f"{SERVERLESS_MEMORY_STEP_MB} (SageMaker serverless memory: 1024, 2048, ... 6144 MB)")
    if provisioned_concurrency is not None and provisioned_concurrency > max_concurrency:
        raise LimitError(f"{setting}.ProvisionedConcurrency={provisioned_concurrency} exceeds MaxConcurrency="
                         f"{max_concurrency} (SageMaker: provisioned concurrency at most the maximum)")
    return {key: int(value) for key, value in config.items()}


def _step_instances(setting: str, size: Mapping[str, Any], instances: int, low: int, high: int,
                    what: str) -> int:
    """Instances in one step of ``size`` (``CapacitySize``) on a fleet of ``instances``; it must be
    ``low``-``high`` % of the fleet and a whole number of at least one instance."""
    value = size["Value"]
    if size["Type"] == "INSTANCE_COUNT":
        count, percent = value, 100 * value / instances
    else:
        count, percent = value * instances / 100, value
    if not low <= percent <= high:
        limit = f"at most {high}%" if low == 0 else f"{low}-{high}%"
        raise LimitError(
            f"{setting}={size['Value']} {size['Type']} is {percent:g}% of {instances} instance(s): SageMaker's "
            f"{what} must be {limit} of the variant's instances (TrafficRoutingConfig); deploy more instances "
            "or use all_at_once with a baking period")
    if count < 1 or not float(count).is_integer():
        raise LimitError(
            f"{setting}={size['Value']} {size['Type']} is {count:g} of {instances} instance(s): a {what} step "
            "must be a whole number of instances, at least one; deploy more instances or use all_at_once "
            "with a baking period")
    return int(count)


def check_deployment_config(config: Mapping[str, Any], instances: int,
                            setting: str = "endpoint.prod.traffic_shifting") -> Mapping[str, Any]:
    """An ``UpdateEndpoint`` ``DeploymentConfig`` for a variant of ``instances`` instances.

    The model's ranges (wait interval and baking period 0-3600 s, timeout 600-28800 s, 1-10
    alarms) and the documented rules: a canary of at most 50% and a linear step of 10-50% of the
    instances (``TrafficRoutingConfig``), each a whole number of instances (at least one: a fleet
    of one instance cannot be split), the timeout "larger than the total waiting time"
    (``BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds``). This project's rule: an
    all-at-once shift with rollback alarms needs a baking period (``WaitIntervalInSeconds``),
    the only time its alarms can roll it back.
    """
    check_shape("DeploymentConfig", config, setting)
    policy = config.get("BlueGreenUpdatePolicy")
    if not policy:
        return config
    routing = policy["TrafficRoutingConfiguration"]
    kind, wait = routing["Type"], routing["WaitIntervalInSeconds"]
    sizes = {"CANARY": "CanarySize", "LINEAR": "LinearStepSize"}
    for other_kind, key in sizes.items():
        if key in routing and kind != other_kind:
            raise LimitError(f"{setting}: {key} applies to {other_kind} traffic shifting, not {kind}")
    if kind in sizes and sizes[kind] not in routing:
        raise LimitError(f"{setting}: {kind} traffic shifting needs {sizes[kind]}")
    waits = 1
    if kind == "CANARY":
        _step_instances(f"{setting}.step_percent", routing["CanarySize"], instances, 0, CANARY_MAX_PERCENT, "canary")
    elif kind == "LINEAR":
        step = _step_instances(f"{setting}.step_percent", routing["LinearStepSize"], instances,
                               *LINEAR_PERCENT_RANGE, "linear step")
        waits = math.ceil(instances / step)  # a baking wait after every step, counted conservatively
    elif wait < 1 and config.get("AutoRollbackConfiguration"):
        raise LimitError(f"{setting}.wait_interval_s={wait}: an all_at_once shift needs a baking period (at least "
                         "1 s) for its rollback alarms to act in (this project's rule)")
    total = waits * wait + policy.get("TerminationWaitInSeconds", 0)
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    if timeout is not None and timeout <= total:
        raise LimitError(f"{setting}.max_execution_timeout_s={timeout} is not larger than the {total} s the update "
                         "waits (wait intervals and the termination wait; BlueGreenUpdatePolicy)")
    return config


def check_endpoint_spec(spec) -> None:
    """Every SageMaker limit on an :class:`~mlops.backends.base.EndpointSpec` (its names as the
    backend uses them): names, the serverless or instance variant, data capture, deployment config."""
    check_name("endpoint_name", spec.endpoint_name, "EndpointName")
    check_name("config_name", spec.config_name, "EndpointConfigName")
    check_name("config_name (model name)", spec.config_name, "ModelName")
    if spec.serverless:
        serverless_config(spec.serverless.get("MemorySizeInMB"), spec.serverless.get("MaxConcurrency"),
                          spec.serverless.get("ProvisionedConcurrency"), setting="serverless")
        if getattr(spec, "deployment_config", None):
            raise LimitError("deployment_config: blue/green deployment guardrails are not available for "
                             "serverless endpoints (SageMaker serverless inference)")
    else:
        instances = spec.initial_instance_count
        check_shape("ProductionVariant", {"VariantName": "AllTraffic", "InstanceType": spec.instance_type,
                                          "InitialInstanceCount": instances}, "endpoint.prod")
        if getattr(spec, "deployment_config", None):
            check_deployment_config(spec.deployment_config, instances, "deployment_config")
    if getattr(spec, "data_capture_config", None):
        check_data_capture(spec.data_capture_config, "data_capture_config")


def check_data_capture(config: Mapping[str, Any], setting: str = "data_capture_config") -> Mapping[str, Any]:
    """A ``DataCaptureConfig``. A ``file://`` destination (the local object store, the twin of an
    S3 bucket) is checked as the ``s3://`` URI it stands for."""
    destination = str(config.get("DestinationS3Uri", ""))
    if destination.startswith("file://"):
        config = {**config, "DestinationS3Uri": "s3://" + destination.removeprefix("file://").lstrip("/")}
    check_shape("DataCaptureConfig", config, setting)
    return config


# ---------------------------------------------------------------- Autopilot
def check_automl_job(job_name: str, max_candidates: Any, time_budget_s: Any,
                     max_runtime_per_candidate_s: Any = None, mode: str | None = None,
                     objective: str | None = None, setting: str = "autopilot") -> None:
    """A tabular AutoML V2 job's settings: the name (``AutoMLJobName``, 32 characters), the
    completion criteria (the model: candidates 1-750, runtimes at least 1 s; the API reference:
    the job's budget at least the per-candidate one), the mode and objective enums, and this
    project's floor on the job budget (:data:`AUTOML_MIN_JOB_RUNTIME_S`)."""
    check_name(f"{setting}.job_name", job_name, "AutoMLJobName")
    criteria = {"MaxCandidates": max_candidates, "MaxAutoMLJobRuntimeInSeconds": time_budget_s}
    if max_runtime_per_candidate_s is not None:
        criteria["MaxRuntimePerTrainingJobInSeconds"] = max_runtime_per_candidate_s
    check_shape("AutoMLJobCompletionCriteria", criteria, f"{setting}.completion_criteria")
    if mode is not None:
        check_shape("AutoMLMode", mode, f"{setting}.mode")
    if objective is not None:
        check_shape("AutoMLMetricEnum", objective, f"{setting}.objective")
    if max_runtime_per_candidate_s is not None and time_budget_s < max_runtime_per_candidate_s:
        raise LimitError(f"{setting}.time_budget_s={time_budget_s} is shorter than max_runtime_per_candidate_s="
                         f"{max_runtime_per_candidate_s}: MaxAutoMLJobRuntimeInSeconds must be at least "
                         "MaxRuntimePerTrainingJobInSeconds")
    if time_budget_s < AUTOML_MIN_JOB_RUNTIME_S:
        raise LimitError(
            f"{setting}.time_budget_s={time_budget_s} is under {AUTOML_MIN_JOB_RUNTIME_S} s: an Autopilot job "
            "this short ends before any candidate is trained (this project's floor; SageMaker accepts it and "
            "fails later). The local twin's search has its own budget, autopilot.local_time_budget_s")


def check_automl_rows(rows: int, setting: str = "autopilot training data") -> int:
    """At least :data:`AUTOML_MIN_ROWS` labelled training rows (SageMaker's documented minimum)."""
    if rows < AUTOML_MIN_ROWS:
        raise LimitError(f"{setting} has {rows} rows; SageMaker Autopilot needs at least {AUTOML_MIN_ROWS} "
                         "rows in its training dataset (CreateAutoMLJob InputDataConfig)")
    return rows


# ---------------------------------------------------------------- batch transform
def check_transform(job_name: str, model_name: str, max_payload_mb: int, max_concurrent_transforms: int | None,
                    setting: str = "transform") -> None:
    """A transform job's names (63 characters) and payload: ``MaxPayloadInMB`` at most 100 and,
    with ``MaxConcurrentTransforms``, their product at most 100 (CreateTransformJob, API reference)."""
    check_name(f"{setting}.job_name", job_name, "TransformJobName")
    check_name(f"{setting}.model_name", model_name, "ModelName")
    check_transform_payload(max_payload_mb, max_concurrent_transforms, setting)


def check_transform_payload(max_payload_mb: int, max_concurrent_transforms: int | None,
                            setting: str = "transform") -> None:
    """``MaxPayloadInMB`` 1-100 and ``MaxConcurrentTransforms * MaxPayloadInMB`` at most 100."""
    check_shape("MaxPayloadInMB", max_payload_mb, f"{setting}.max_payload_mb")
    if not 0 < max_payload_mb <= TRANSFORM_MAX_PAYLOAD_MB:
        raise LimitError(f"{setting}.max_payload_mb={max_payload_mb} is not 1-{TRANSFORM_MAX_PAYLOAD_MB} "
                         "(CreateTransformJob MaxPayloadInMB)")
    if max_concurrent_transforms:
        check_shape("MaxConcurrentTransforms", max_concurrent_transforms, f"{setting}.max_concurrent_transforms")
        if max_concurrent_transforms * max_payload_mb > TRANSFORM_MAX_PAYLOAD_MB:
            raise LimitError(f"{setting}: max_concurrent_transforms ({max_concurrent_transforms}) x max_payload_mb "
                             f"({max_payload_mb}) exceeds SageMaker's {TRANSFORM_MAX_PAYLOAD_MB} MB")


# ---------------------------------------------------------------- training and tuning
def check_tuning(n_trials: Any, max_parallel: Any, search_space: Mapping[str, Mapping[str, Any]],
                 setting: str = "training") -> None:
    """A tuning job's budget (``ResourceLimits``: at least one trial, at least one at a time) and
    search space (``ParameterRanges``: at most 30 ranges of each kind), as the model says."""
    check_shape("ResourceLimits", {"MaxNumberOfTrainingJobs": n_trials, "MaxParallelTrainingJobs": max_parallel},
                f"{setting}.n_trials")
    kinds = {"float": "ContinuousParameterRanges", "int": "IntegerParameterRanges",
             "categorical": "CategoricalParameterRanges"}
    ranges = service_model().shape_for("ParameterRanges").members
    for kind, member in kinds.items():
        names = [name for name, spec in search_space.items() if spec.get("type") == kind]
        _check_value(f"{setting}.search_space ({kind} parameters)", names, ranges[member])
