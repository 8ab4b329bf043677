"""The pipeline config's schema: every section and key of ``include/pipelines/<name>.yaml``, typed.

:func:`mlops.core.config.load_pipeline` checks a file against :class:`PipelineSpec` before
anything reads it: a key the schema does not know is refused, naming it (a typo such as
``max_concurency`` would otherwise be ignored and its default used), and so is a value of the
wrong type or out of range. Values are checked strictly: ``"5"`` is not a number, ``yes`` is
not a count. Sections stay optional where every pipeline does not need them (``training`` is for
supervised pipelines, ``segmentation`` for clustering); the code that reads a section applies
its defaults.

Limits that SageMaker itself sets (serverless memory sizes, name patterns, traffic-shifting
steps) are checked against botocore's service model by :mod:`mlops.backends.limits`, not
duplicated here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROBLEM_TYPES = ("binary", "multiclass", "regression", "clustering")
NOTIFICATION_EVENTS = ("task_failed", "approval_waiting", "approval_decision", "prod_deployed", "rollback",
                       "silent_rollback", "drift_detected")

ACCOUNT = re.compile(r"\d{12}")
REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
SNS_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
THRESHOLD_KEY = re.compile(r"(min|max)_\w+")

Count = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Names = list[str]
Scalar = str | int | float | bool | None


class Section(BaseModel):
    """A mapping of the config: known keys only, values of their own type (no coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---------------------------------------------------------------- source, schema, validation
class KeyspacesSource(Section):
    keyspace: str
    table: str
    partition_key: str
    segments: Count = 4
    columns: dict[str, str] | None = None  # CQL column -> schema column
    casts: dict[str, str] | None = None  # schema column -> Arrow type name


class Source(Section):
    landing_prefix: str | None = None
    file_pattern: str | None = None
    keyspaces: KeyspacesSource | None = None


class Schema(Section):
    columns: Names | None = None
    id_column: str | None = None
    target: str | None = None
    positive_label: Scalar = None
    categorical: Names | None = None
    numeric: Names | None = None
    datetime_columns: Names | None = None
    text_columns: Names | None = None


class Drift(Section):
    psi_max: NonNegative | None = None
    psi_max_per_column: dict[str, NonNegative] | None = None
    bins: Annotated[int, Field(ge=2)] | None = None
    columns: Names | None = None


class RowCount(Section):
    max_drop: Fraction | None = None


class Leakage(Section):
    max_abs_correlation: Fraction | None = None


class Validation(Section):
    suite: str | None = None
    min_rows: NonNegativeInt | None = None
    extra_columns: Literal["fail", "warn"] | None = None
    drift: Drift | None = None
    row_count: RowCount | None = None
    leakage: Leakage | None = None


# ---------------------------------------------------------------- training, registry, approval
class SearchParameter(Section):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool | None = None
    step: float | None = None
    choices: list[Scalar] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> SearchParameter:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty list of choices")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        return self


class Training(Section):
    estimator: str
    objective: str
    k_folds: Annotated[int, Field(ge=2)]
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)]
    seed: int
    n_trials: Count
    search_space: dict[str, SearchParameter]
    baseline: float | None = None


class Registry(Section):
    group: str


# approval.prod settings that are not thresholds: the shadow replay's sample (mlops.monitor.shadow_replay)
SHADOW_KEYS = frozenset({"shadow_records", "shadow_window_hours"})


def _thresholds(value: dict[str, float] | None) -> dict[str, float] | None:
    bad = [key for key in value or {} if not THRESHOLD_KEY.fullmatch(key) and key not in SHADOW_KEYS]
    if bad:
        raise ValueError(f"threshold keys are min_<metric> or max_<metric>, got {', '.join(map(repr, bad[:5]))}")
    return value


class Approval(Section):
    mode: Literal["manual", "policy"] = "manual"
    model: dict[str, float] | None = None  # policy thresholds: min_<metric> / max_<metric>
    prod: dict[str, float] | None = None

    _check_thresholds = field_validator("model", "prod")(_thresholds)


# ---------------------------------------------------------------- endpoints
class StageTarget(Section):
    """``endpoint.<stage>.target``; see :class:`mlops.core.config.StageTargetConfig`."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True, coerce_numbers_to_str=True)

    aws_conn_id: str | None = None
    account_id: str | None = None
    region: str | None = None
    execution_role_arn: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value in (None, "") else value

    @field_validator("aws_conn_id")
    @classmethod
    def _conn_id(cls, value: str | None) -> str | None:
        return _matching(value, CONN_ID, "an Airflow connection id")

    @field_validator("account_id")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        return _matching(value, ACCOUNT, "12 digits")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return _matching(value, REGION, "an AWS region such as us-east-1")

    @field_validator("execution_role_arn")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        return _matching(value, ROLE_ARN, "an IAM role ARN, arn:aws:iam::<account>:role/<name>")

    @model_validator(mode="after")
    def _same_account(self) -> StageTarget:
        role, account = self.execution_role_arn, self.account_id
        if role and account and ROLE_ARN.fullmatch(role).group(1) != account:
            raise ValueError(f"execution_role_arn {role} is not in the stage's account {account}: SageMaker "
                             "runs a model only with a role of the account that hosts it")
        if account and self.aws_conn_id and not role:
            raise ValueError("a stage with its own connection and account needs execution_role_arn (the "
                             f"SageMaker execution role in account {account})")
        return self


def _matching(value: str | None, pattern: re.Pattern, what: str) -> str | None:
    if value is not None and not pattern.fullmatch(value):
        raise ValueError(f"is not {what}")
    return value


class Staging(Section):
    memory_size_mb: int
    max_concurrency: int
    provisioned_concurrency: int | None = None
    target: StageTarget | None = None


class DataCapture(Section):
    enabled: bool | None = None
    sampling_percentage: Annotated[int, Field(ge=0, le=100)] | None = None
    destination: str | None = None


class TrafficShifting(Section):
    type: Literal["canary", "linear", "all_at_once"] | None = None
    step_percent: int | None = None
    wait_interval_s: NonNegativeInt | None = None
    termination_wait_s: NonNegativeInt | None = None
    max_execution_timeout_s: NonNegativeInt | None = None


class RollbackAlarms(Section):
    invocation_5xx_errors: NonNegative | None = None
    model_latency_p95_ms: NonNegative | None = None


class Prod(Section):
    instance_type: str
    initial_instance_count: Count = 1
    data_capture: DataCapture | None = None
    traffic_shifting: TrafficShifting | None = None
    rollback_alarms: RollbackAlarms | None = None
    target: StageTarget | None = None


class EndpointTest(Section):
    requests: Count
    golden_rows: Count
    tolerance: NonNegative


class Endpoint(Section):
    staging: Staging | None = None
    prod: Prod | None = None
    test: EndpointTest | None = None


# ---------------------------------------------------------------- autopilot, notifications, segmentation
class Autopilot(Section):
    objective: str
    time_budget_s: Count
    local_time_budget_s: Count | None = None
    max_candidates: Count
    response_keys: Names
    batch_chunk_rows: Count | None = None
    min_precision: Fraction | None = None


class Notifications(Section):
    """The ``notifications`` section; see :mod:`mlops.notifications`."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    sns_topic_arn: str | None = None
    webhook_conn_id: str | None = None
    webhook_endpoint: str | None = None
    events: tuple[str, ...] = NOTIFICATION_EVENTS

    @field_validator("sns_topic_arn", "webhook_conn_id", "webhook_endpoint", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return value or None

    @field_validator("sns_topic_arn")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        return _matching(value, SNS_TOPIC_ARN, "an SNS topic ARN")

    @field_validator("webhook_conn_id")
    @classmethod
    def _conn_id(cls, value: str | None) -> str | None:
        return _matching(value, CONN_ID, "an Airflow connection id")

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value or any(e not in NOTIFICATION_EVENTS for e in value):
            raise ValueError(f"must be a non-empty list of {', '.join(NOTIFICATION_EVENTS)}")
        return tuple(value)

    @model_validator(mode="after")
    def _endpoint_needs_connection(self) -> Notifications:
        if self.webhook_endpoint is not None and self.webhook_conn_id is None:
            raise ValueError("webhook_endpoint needs webhook_conn_id (the connection holds the URL)")
        return self


class Segmentation(Section):
    k_min: Annotated[int, Field(ge=2)]
    k_max: Annotated[int, Field(ge=2)]
    seed: int
    results_table: str | None = None

    @model_validator(mode="after")
    def _range(self) -> Segmentation:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min {self.k_min} is above k_max {self.k_max}")
        return self


# ---------------------------------------------------------------- monitoring
class MonitoringDrift(Section):
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.1
    threshold_per_column: dict[str, Annotated[float, Field(gt=0, le=1)]] = {}
    alpha: Literal[0.1, 0.05, 0.025, 0.01, 0.005, 0.001] = 0.01
    bins: Annotated[int, Field(ge=2)] = 10
    min_rows: Count = 100


class MonitoringAws(Section):
    """``monitoring.aws``: which data-quality check the AWS backend runs on the prod endpoint.

    ``own_check`` (the default): ``monitor_model`` reads the endpoint's S3 capture itself and runs
    the local backend's check (mlops.ml.capture_monitor): no managed service, so it works in any
    account. ``model_monitor``: SageMaker Model Monitor's hourly data-quality schedule, whose
    executions' reports ``monitor_model`` reads; AWS's Developer Guide says Model Monitor "is no
    longer open to new customers", so only accounts that already use it can choose it.
    """

    data_quality: Literal["own_check", "model_monitor"] = "own_check"


class Monitoring(Section):
    """``monitoring``: the monitor_model DAG's drift check and what a drift does (mlops.ml.monitoring)."""

    drift: MonitoringDrift = MonitoringDrift()
    aws: MonitoringAws = MonitoringAws()
    on_drift: Literal["off", "retrain", "notify"] = "retrain"
    max_categories: Count = 1000  # categories of a feature tracked, the rest counted as one
    chunk_rows: Count = 50_000  # capture records read at a time (memory stays bounded)


# ---------------------------------------------------------------- the whole file
class PipelineSpec(Section):
    """A pipeline config, checked. The YAML key ``schema`` is the field ``schema_``."""

    name: str
    description: str | None = None
    problem_type: Literal["binary", "multiclass", "regression", "clustering"]
    source: Source
    schema_: Schema = Field(alias="schema")
    validation: Validation
    training: Training | None = None
    registry: Registry | None = None
    approval: Approval | None = None
    endpoint: Endpoint | None = None
    autopilot: Autopilot | None = None
    notifications: Notifications | None = None
    segmentation: Segmentation | None = None
    monitoring: Monitoring | None = None

    @model_validator(mode="after")
    def _target(self) -> PipelineSpec:
        if self.problem_type != "clustering" and self.schema_.target is None:
            raise ValueError(f"schema.target is required for a {self.problem_type} pipeline")
        return self
