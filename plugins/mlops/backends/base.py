"""The ports: one interface per step whose work differs between AWS and this machine.

Each port has an ``aws`` and a ``local`` implementation (``mlops.backends.aws`` and
``mlops.backends.local``); :func:`mlops.backends.get_backend` picks them from
``MLOPS_BACKEND``. Operators only ever talk to these interfaces.

Everything crossing a port is a URI string, a name, or a small dataclass that serialises to
JSON (it travels through XCom): never data frames or models.

Model artifact contract (both backends): a ``model.tar.gz`` holding ``model.joblib`` (a fitted
object with ``predict`` and, for classifiers, ``predict_proba`` and ``classes_``) and
``model.json`` (``feature_columns``, ``target``, ``problem_type``, ``classes``, ``framework``).
``include/serving/inference.py`` loads it the way the SageMaker scikit-learn container does.

Every method an operator, sensor or trigger calls on a port is declared here, with the
exceptions it raises; those exceptions are defined here too, so that callers (and the two
implementations) depend on this module only, never on each other. (It is over 500 lines
for that reason: the whole contract, documented, in the one place operators read.)
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


# ---------------------------------------------------------------- what the ports raise
class EndpointNotFound(LookupError):
    """No endpoint of that name exists (:meth:`Hosting.describe`)."""


class ModelPackageNotFound(KeyError):
    """No model package has this ARN (:meth:`Registry.get`)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


class ModelPackageGroupNotFound(KeyError):
    """The model package group was never created with :meth:`Registry.ensure_group`."""

    def __str__(self) -> str:
        return str(self.args[0])


class Serializable:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return cls(**data)


# ---------------------------------------------------------------- long-running jobs
@dataclass(frozen=True)
class JobHandle(Serializable):
    """A long-running job that a port started, or re-attached to.

    The local twins work synchronously: their handles are ``done`` and carry the ``result``.
    A job still running on AWS carries ``trigger`` — ``{"classpath": ..., "kwargs": {...}}`` of an
    Airflow trigger that waits for it (the amazon provider's where one exists) — so the
    operator can defer; without deferral, the port's :meth:`LongRunningPort.wait` blocks on a
    botocore waiter. Either way :meth:`LongRunningPort.collect` turns the finished job into the
    port's result dict.
    """

    kind: str  # tuning | training | endpoint | automl | transform
    name: str
    done: bool
    result: dict[str, Any] | None = None
    trigger: dict[str, Any] | None = None


# What stops the work a synchronous port started in this process (its worker processes): each
# live worker pool adds its stop here while it runs (mlops.backends.local.workers.WorkerPool).
_STOPPERS: set[Callable[[], None]] = set()


def add_stopper(stop: Callable[[], None]) -> None:
    """Register ``stop`` (called by :meth:`LongRunningPort.stop` while registered)."""
    _STOPPERS.add(stop)


def remove_stopper(stop: Callable[[], None]) -> None:
    _STOPPERS.discard(stop)


class LongRunningPort:
    """``submit`` / ``wait`` / ``collect`` / ``stop`` for ports whose work can outlive a worker slot.

    Defaults fit a synchronous (local) port: ``submit`` is implemented per port by calling its
    blocking method; ``wait`` has nothing to wait for; ``collect`` returns the stored result;
    ``stop`` stops the worker processes the work started in this process.
    """

    def stop(self, handle: JobHandle | None) -> None:
        """Stop the job (an operator's ``on_kill``: the task was killed or timed out).

        ``handle`` is the job as :meth:`submit` returned it, or None when the kill came while
        ``submit`` still ran. The default, a synchronous port's: the work runs inside ``submit``
        in this (dying) process, and what would outlive it are its worker processes, which are
        stopped (each then fails the work with an error saying it was stopped). Never raises.
        """
        for stop in list(_STOPPERS):
            stop()

    def wait(self, handle: JobHandle) -> JobHandle:
        """Block until the job ``handle`` names has ended; return its handle, ``done``.

        :param handle: what the port's ``submit`` returned.
        :raises RuntimeError: the job failed or was stopped (the message carries the job's reason);
            a synchronous port cannot wait for a job that is not done (``NotImplementedError``).
        """
        if not handle.done:
            raise NotImplementedError(f"{type(self).__name__} cannot wait for {handle.kind} {handle.name}")
        return handle

    def collect(self, handle: JobHandle) -> dict[str, Any]:
        """The finished job's result: the port's result dataclass as a dict (XCom-sized).

        :param handle: a ``done`` handle (from ``submit``, ``wait``, or rebuilt after a deferral).
        :raises RuntimeError: the job has no result (it did not complete).
        """
        if handle.result is None:
            raise RuntimeError(f"{handle.kind} {handle.name} has no result to collect")
        return handle.result


# ---------------------------------------------------------------- training and tuning
@dataclass(frozen=True)
class TrainingData(Serializable):
    """What a training job reads: rows, their fold assignment, and how to learn from them.

    :param train_uri: Parquet file (or folder of files) with feature and target columns.
    :param folds_uri: fold manifest JSON (``{"k": 5, "seed": 42, "folds": [0, 3, ...]}``,
        one fold id per row of ``train_uri`` in file order).
    :param target: label column.
    :param feature_columns: columns to learn from, in order; ``categorical`` is the subset to
        one-hot encode.
    :param problem_type: ``binary``, ``multiclass`` or ``regression``.
    :param estimator: key of ``include/training/train.py``'s ``ESTIMATORS``.
    :param objective: scikit-learn scorer name, e.g. ``roc_auc``.
    :param positive_label: label of the positive class for binary problems.
    """

    train_uri: str
    folds_uri: str
    target: str
    feature_columns: list[str]
    categorical: list[str]
    problem_type: str
    estimator: str
    objective: str
    positive_label: str | None = None
    seed: int = 0


SEARCH_TYPES = ("float", "int", "categorical")


def validate_search_space(search_space: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check a config search space (what :meth:`Tuner.submit` takes on both backends); raise
    ``ValueError`` naming the first bad parameter.

    ``{name: {"type": "float"|"int", "low", "high", "log"?, "step"?}}`` or
    ``{name: {"type": "categorical", "choices": [...]}}``.
    """
    if not isinstance(search_space, Mapping) or not search_space:
        raise ValueError("the search space is empty: give at least one hyperparameter to tune")
    checked: dict[str, dict[str, Any]] = {}
    for name, spec in search_space.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"search space parameter {name!r}: expected a mapping, got {spec!r}")
        kind = spec.get("type")
        if kind not in SEARCH_TYPES:
            raise ValueError(
                f"search space parameter {name!r}: unknown type {kind!r}; use {', '.join(SEARCH_TYPES)}"
            )
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, (list, tuple)) or not choices:
                raise ValueError(f"search space parameter {name!r}: categorical needs a list of choices")
            if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                raise ValueError(
                    f"search space parameter {name!r}: choices must be numbers, text, booleans or null"
                )
            checked[name] = {"type": kind, "choices": list(choices)}
            continue
        number = int if kind == "int" else (int, float)
        low, high = spec.get("low"), spec.get("high")
        for bound, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, number):
                raise ValueError(f"search space parameter {name!r}: {bound} must be a {kind}; got {value!r}")
        if low > high:
            raise ValueError(f"search space parameter {name!r}: low {low} is above high {high}")
        if spec.get("log") and low <= 0:
            raise ValueError(f"search space parameter {name!r}: a log scale needs low > 0; got {low}")
        checked[name] = {key: spec[key] for key in ("type", "low", "high", "log", "step") if key in spec}
    return checked


@dataclass(frozen=True)
class CVResult(Serializable):
    """Scores of one hyperparameter set over all k folds."""

    hyperparameters: dict[str, Any]
    fold_scores: list[float]
    mean: float
    std: float


@dataclass(frozen=True)
class TuningResult(Serializable):
    """Outcome of a tuning job: the best trial and where the full history is stored."""

    job_name: str
    objective: str
    best: CVResult
    n_trials: int
    history_uri: str


@dataclass(frozen=True)
class TrainedModel(Serializable):
    """A model artifact written by a training job."""

    job_name: str
    model_uri: str  # .../model.tar.gz
    sha256: str
    hyperparameters: dict[str, Any]


class Tuner(LongRunningPort, abc.ABC):
    """Hyperparameter tuning where every trial is scored by k-fold cross-validation."""

    def submit(self, job_name: str, data: TrainingData, search_space: dict[str, dict[str, Any]],
               n_trials: int, output_uri: str) -> JobHandle:
        """Start the tuning job, or re-attach to the one of that name; see :class:`JobHandle`.

        ``collect`` returns a :class:`TuningResult` dict. The default runs :meth:`tune` here.

        :param job_name: idempotent name (a retry re-attaches or reuses).
        :param data: what each trial trains on.
        :param search_space: see :meth:`tune` (checked by :func:`validate_search_space`).
        :param n_trials: trial budget.
        :param output_uri: folder for the tuning history.
        :raises ValueError: a bad search space or training data description.
        :raises RuntimeError: the job failed or was stopped.
        """
        result = self.tune(job_name, data, search_space, n_trials, output_uri)
        return JobHandle(kind="tuning", name=job_name, done=True, result=result.to_dict())

    @abc.abstractmethod
    def tune(
        self,
        job_name: str,
        data: TrainingData,
        search_space: dict[str, dict[str, Any]],
        n_trials: int,
        output_uri: str,
    ) -> TuningResult:
        """Search ``search_space`` with ``n_trials`` trials, each scored by k-fold CV.

        :param search_space: ``{name: {"type": "float"|"int"|"categorical", "low", "high",
            "log", "choices"}}`` as in the pipeline config.
        :param output_uri: folder for the tuning history.
        """


class Trainer(LongRunningPort, abc.ABC):
    """One training job: fit on all rows with fixed hyperparameters (the refit)."""

    def submit(self, job_name: str, data: TrainingData, hyperparameters: dict[str, Any],
               output_uri: str) -> JobHandle:
        """Start the training job, or re-attach to the one of that name; see :class:`JobHandle`.

        ``collect`` returns a :class:`TrainedModel` dict. The default runs :meth:`fit` here.

        :raises ValueError: bad training data description or hyperparameters.
        :raises RuntimeError: the job failed or was stopped.
        """
        result = self.fit(job_name, data, hyperparameters, output_uri)
        return JobHandle(kind="training", name=job_name, done=True, result=result.to_dict())

    @abc.abstractmethod
    def fit(
        self, job_name: str, data: TrainingData, hyperparameters: dict[str, Any], output_uri: str
    ) -> TrainedModel:
        """Fit on all rows of ``data.train_uri``; write ``model.tar.gz`` under ``output_uri``."""


# ---------------------------------------------------------------- model registry
PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)


def check_status(status: str | None) -> None:
    """Raise ``ValueError`` unless ``status`` is a model package approval status."""
    if status not in APPROVAL_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}")


def require_text(value: Any, name: str) -> str:
    """``value`` if it is a non-empty string; else ``ValueError`` naming the field."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def strict_json(value: Any, name: str) -> str:
    """Strict JSON text of a dict (no NaN), raising ``ValueError`` naming the field otherwise."""
    import json

    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} is not JSON-serialisable: {err}") from None


@dataclass(frozen=True)
class ModelVersion(Serializable):
    """A model package: one version in a model package group."""

    group: str
    version: int
    arn: str
    status: str
    model_uri: str
    sha256: str
    metrics: dict[str, Any]
    metadata: dict[str, Any]  # hyperparameters, dataset digest, validation id, code version, run
    created_at: str
    approver: str | None = None
    approval_reason: str | None = None
    # True only on what Registry.register returned when it found the registration's identity
    # already registered; not part of the version's equality.
    reused: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class RegistrationIdentity:
    """What makes two registrations the same model version: the dataset digest, the code
    version and the hyperparameters (as canonical JSON), within one model package group.

    The metrics, the artifact and its digest, and the DAG run are not part of it: a re-run on
    the same data with the same code and the same hyperparameters trains the same model.
    """

    dataset_digest: str
    code_version: str
    hyperparameters: str  # canonical JSON: sorted keys, no whitespace

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> RegistrationIdentity | None:
        """The identity of a registration's ``metadata``; ``None`` without a dataset digest or
        a code version (such a registration always adds a version). :func:`mlops.core.code_version.code_version`
        always pins the code (a clean commit, or a digest of the code's content); the values older
        versions of it wrote without pinning (``unknown``, ``<commit>-dirty``) count as none.
        Missing hyperparameters count as none (``{}``)."""
        import json

        digest, code_version = metadata.get("dataset_digest"), metadata.get("code_version")
        if digest in (None, "") or code_version in (None, "", "unknown") or str(code_version).endswith("-dirty"):
            return None
        hyperparameters = json.dumps(metadata.get("hyperparameters") or {}, sort_keys=True,
                                     separators=(",", ":"), allow_nan=False)
        return cls(str(digest), str(code_version), hyperparameters)

    def key(self, group: str) -> str:
        """sha256 (64 hex characters) of the identity in ``group``: stable across runs."""
        import hashlib

        text = "\x1f".join((group, self.dataset_digest, self.code_version, self.hyperparameters))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __str__(self) -> str:
        return f"dataset digest {self.dataset_digest}, code version {self.code_version}, same hyperparameters"


SUCCEEDED, FAILED, ROLLED_BACK, REJECTED_DEPLOYMENT = "succeeded", "failed", "rolled_back", "rejected"
DEPLOYMENT_OUTCOMES = (SUCCEEDED, FAILED, ROLLED_BACK, REJECTED_DEPLOYMENT)


@dataclass(frozen=True)
class Deployment(Serializable):
    """One deployment attempt of a model version to a stage."""

    arn: str  # model package
    stage: str  # staging | prod
    endpoint_name: str
    endpoint_config: str
    outcome: str  # one of DEPLOYMENT_OUTCOMES; rejected = a person or the policy said no
    deployed_at: str
    detail: dict[str, Any] = field(default_factory=dict)
    account: str = ""  # the account the stage's endpoint is in ("": the registry's, before accounts were recorded)


class Registry(abc.ABC):
    """Model package groups, their versions and approval statuses, and the deployment history.

    Unknown packages raise :class:`ModelPackageNotFound`, unknown groups
    :class:`ModelPackageGroupNotFound`; a bad argument raises ``ValueError`` naming it.
    """

    @abc.abstractmethod
    def ensure_group(self, group: str, description: str = "") -> None:
        """Create the model package group ``group`` unless it exists (idempotent).

        :raises ValueError: ``group`` is not a valid group name.
        """

    @abc.abstractmethod
    def register(
        self, group: str, model_uri: str, sha256: str, metrics: dict[str, Any],
        metadata: dict[str, Any],
    ) -> ModelVersion:
        """Add a version with status ``PendingManualApproval``, unless one with the same
        identity is registered already.

        The identity is :class:`RegistrationIdentity`: ``metadata["dataset_digest"]``,
        ``metadata["code_version"]`` and ``metadata["hyperparameters"]``. When a version of
        ``group`` has the same identity, that version is returned (with ``reused=True``, its
        status and decision as they are) and nothing is added; concurrent registrations of one
        identity end with one version. Metadata without a dataset digest or a code version
        always adds a version.
        """

    @abc.abstractmethod
    def get(self, arn: str) -> ModelVersion:
        """The model package ``arn``.

        :raises ModelPackageNotFound: unknown ``arn``.
        """

    @abc.abstractmethod
    def list_versions(self, group: str, status: str | None = None) -> list[ModelVersion]:
        """Versions of ``group``, newest first, optionally only those with ``status``.

        :raises ModelPackageGroupNotFound: the group was never created.
        :raises ValueError: ``status`` is not an approval status.
        """

    def latest_approved(self, group: str) -> ModelVersion | None:
        """The newest Approved version of ``group``, or None."""
        versions = self.list_versions(group, status=APPROVED)
        return versions[0] if versions else None

    @abc.abstractmethod
    def set_status(
        self, arn: str, status: str, approver: str, reason: str, evidence: dict[str, Any]
    ) -> ModelVersion:
        """Approve or reject ``arn``, recording who decided, why, and on what evidence.

        Setting the status the version has already (e.g. a concurrent identical decision) is
        not a new decision: nothing is recorded and the version is returned as it is, with the
        approver and reason of the decision that set it.

        :raises ModelPackageNotFound: unknown ``arn``.
        :raises ValueError: ``status`` is not an approval status, or approver/reason are empty.
        """

    def approve(self, arn: str, approver: str, reason: str, evidence: dict[str, Any]) -> ModelVersion:
        """:meth:`set_status` to Approved."""
        return self.set_status(arn, APPROVED, approver, reason, evidence)

    def reject(self, arn: str, approver: str, reason: str, evidence: dict[str, Any]) -> ModelVersion:
        """:meth:`set_status` to Rejected."""
        return self.set_status(arn, REJECTED, approver, reason, evidence)

    @abc.abstractmethod
    def approval_history(self, arn: str) -> list[dict[str, Any]]:
        """Every decision on ``arn``, newest first: ``previous_status``, ``status``, ``approver``,
        ``reason``, ``evidence``, ``decided_at``.

        :raises ModelPackageNotFound: unknown ``arn``.
        """

    @abc.abstractmethod
    def record_external_decision(self, arn: str, status: str, approver: str, reason: str,
                                 evidence: dict[str, Any]) -> None:
        """Add a decision made outside this project (e.g. in SageMaker Studio) to the history,
        without changing the package.

        :raises ModelPackageNotFound: unknown ``arn``.
        """

    def approval_trigger(self, arn: str, waiter_delay: int = 60,
                         waiter_max_attempts: int = 1440) -> dict[str, Any] | None:
        """``{"classpath", "kwargs"}`` of a trigger that waits for a decision on ``arn``, or None
        when the registry can only be polled."""
        return None

    @abc.abstractmethod
    def record_deployment(self, deployment: Deployment) -> None:
        """Append ``deployment`` to the deployment history (records are never rewritten).

        :raises ModelPackageNotFound: ``deployment.arn`` is not a registered package.
        :raises ValueError: ``deployment.outcome`` is not one of :data:`DEPLOYMENT_OUTCOMES`.
        """

    @abc.abstractmethod
    def deployments(self, stage: str | None = None, account: str | None = None) -> list[Deployment]:
        """Deployment history, newest first; only ``stage``'s and ``account``'s when given."""

    @abc.abstractmethod
    def share_group(self, group: str, targets: list[StageTarget]) -> None:
        """Let the stages in other accounts read ``group``'s versions (SageMaker: the model package
        group's resource policy names their deployment roles). Replaces any earlier sharing;
        an empty list shares with nobody."""


# ---------------------------------------------------------------- stages in accounts
@dataclass(frozen=True)
class StageTarget(Serializable):
    """Where a stage's endpoints live, resolved before a deploy (it travels through XCom).

    :param stage: ``staging`` or ``prod``.
    :param account_id: the account the stage's endpoints are in.
    :param region: their region.
    :param aws_conn_id: the Airflow connection that reaches that account (AWS).
    :param execution_role_arn: the SageMaker execution role there.
    :param principal_arn: the role the connection acts as in that account (AWS; the principal
        the registry shares its model package group with); empty locally.
    :param registry_account: the account of the model registry, where deployments are recorded.
    """

    stage: str
    account_id: str
    region: str
    aws_conn_id: str = ""
    execution_role_arn: str = ""
    principal_arn: str = ""
    registry_account: str = ""

    @property
    def cross_account(self) -> bool:
        return self.account_id != self.registry_account


class StageAccessDenied(PermissionError):
    """A stage's account cannot be reached, or its role may not do what a deploy does there. The
    message names the stage, the account, the role and the action."""


class StageAccess(abc.ABC):
    """Resolves which account each stage deploys into, and checks before any deploy that the
    stage's role may do there what the deploy will do."""

    @abc.abstractmethod
    def resolve(self, config) -> StageTarget:
        """The :class:`StageTarget` of a :class:`~mlops.core.config.StageTargetConfig`.

        :raises StageAccessDenied: the stage's account cannot be reached (the role to assume is
            missing or does not trust the caller), or it is not the configured account.
        """

    def check_permissions(self, target: StageTarget, endpoint_name: str, config_name: str,
                          package: dict[str, Any], alarm_names: list[str]) -> None:
        """Raise :class:`StageAccessDenied` naming account, role and action unless the stage's
        role may make every call of a deploy of ``package`` to ``endpoint_name`` on
        ``config_name`` (and the rollback ``alarm_names``). The local twin has no IAM: nothing to check."""
        return None


# ---------------------------------------------------------------- hosting
@dataclass(frozen=True)
class EndpointSpec(Serializable):
    """How to host a model version.

    ``serverless`` holds ``MemorySizeInMB``/``MaxConcurrency`` (staging); otherwise
    ``instance_type``/``initial_instance_count`` apply (prod). ``model_package_arn`` names the
    registry version served (SageMaker takes its serving container from it);
    ``data_capture_config`` is SageMaker's ``DataCaptureConfig`` and ``deployment_config`` the
    ``UpdateEndpoint`` ``DeploymentConfig`` (blue/green traffic shifting, alarm rollback), both
    built by :func:`mlops.deploy.endpoint_options.prod_endpoint_options`; the local twin ignores them.
    """

    endpoint_name: str
    config_name: str
    model_uri: str
    sha256: str
    serverless: dict[str, Any] | None = None
    instance_type: str | None = None
    initial_instance_count: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    model_package_arn: str | None = None
    data_capture_config: dict[str, Any] | None = None
    deployment_config: dict[str, Any] | None = None


@dataclass(frozen=True)
class Endpoint(Serializable):
    name: str
    config_name: str
    status: str  # InService | Creating | Updating | Failed ...
    url: str  # invocation URL
    runtime_endpoint_url: str  # what to give boto3's sagemaker-runtime client as endpoint_url
    region: str


class Hosting(LongRunningPort, abc.ABC):
    """Real-time endpoints serving registered model versions."""

    def name(self, name: str) -> str:
        """The name the service knows the endpoint (or model, config) ``name`` by. Idempotent;
        the local twin keeps the logical name."""
        return name

    def named(self, spec: EndpointSpec) -> EndpointSpec:
        """``spec`` with the names the service knows its resources by (endpoint, config, rollback
        alarms), as :meth:`deploy` creates them; compare what it returns with these. Idempotent.
        The local twin keeps the logical names."""
        return spec

    def submit(self, spec: EndpointSpec) -> JobHandle:
        """Start creating or updating the endpoint (``kind="endpoint"``); see :class:`JobHandle`.

        :meth:`LongRunningPort.collect` returns the endpoint as it runs *now*: after a rolled-back
        update its ``config_name`` is the old config.

        :raises ~mlops.core.storage.DigestMismatch: the artifact's sha256 is not ``spec.sha256``.
        :raises ~mlops.backends.limits.LimitError: a setting the service would reject.
        :raises RuntimeError: the endpoint is busy with another update.
        """
        return JobHandle(kind="endpoint", name=spec.endpoint_name, done=True, result=self.deploy(spec).to_dict())

    @abc.abstractmethod
    def deploy(self, spec: EndpointSpec) -> Endpoint:
        """Create the endpoint, or update it to ``spec.config_name``; return once it settled
        (its ``config_name`` is the one it runs: compare it with ``named(spec).config_name``)."""

    def ensure_rollback_alarms(self, requests: list[dict[str, Any]]) -> list[str]:
        """Create or update the alarms a blue/green update rolls back on (``PutMetricAlarm``
        requests); a backend without them returns the names only."""
        return [request["AlarmName"] for request in requests]

    @abc.abstractmethod
    def describe(self, endpoint_name: str) -> Endpoint:
        """The endpoint as it runs now.

        :raises EndpointNotFound: no endpoint of that name.
        """

    @abc.abstractmethod
    def delete(self, endpoint_name: str) -> None:
        """Delete the endpoint; deleting a missing endpoint is not an error."""

    @abc.abstractmethod
    def runtime_client(self):
        """A boto3 ``sagemaker-runtime`` client that reaches this backend's endpoints."""

    @abc.abstractmethod
    def check_package(self, package: dict[str, Any]) -> None:
        """Check, from this hosting's account, that the registered version ``package`` (a
        :class:`ModelVersion` dict) is readable here, Approved, and that its artifact's sha256
        still is the registered one. Raises ``PermissionError`` when the account may not read
        the version or its artifact, ``ValueError`` otherwise."""


# ---------------------------------------------------------------- AutoML and batch transform
@dataclass(frozen=True)
class Candidate(Serializable):
    name: str
    objective_metric: str
    objective_value: float
    model_uri: str
    detail: dict[str, Any] = field(default_factory=dict)


class AutoML(LongRunningPort, abc.ABC):
    """An AutoML job (Autopilot V2 on AWS) that ranks candidate models, and models made from them."""

    @abc.abstractmethod
    def submit(
        self, job_name: str, train_uri: str, target: str, problem_type: str, objective: str,
        max_candidates: int, time_budget_s: int, output_uri: str, local_time_budget_s: int | None = None,
    ) -> JobHandle:
        """Start the job, or attach to the job of that name; see :class:`JobHandle`.

        ``collect`` returns ``{"job_name", "status", "candidates"}``, candidates ranked best first
        (:class:`Candidate` dicts).

        ``time_budget_s`` is the job's budget (Autopilot's ``MaxAutoMLJobRuntimeInSeconds``),
        checked against SageMaker's limits on both backends (:func:`mlops.backends.limits.check_automl_job`);
        ``local_time_budget_s`` caps the local twin's own search, which needs far less (SageMaker
        has no such setting and ignores it).

        :raises RuntimeError: the job failed or was stopped (with the job's reason).
        :raises ValueError: a job of that name exists with another target, problem type or objective.
        :raises ~mlops.backends.limits.LimitError: before anything starts, for settings SageMaker
            would reject or that cannot produce a candidate.
        """

    @abc.abstractmethod
    def candidates(self, job_name: str) -> list[Candidate]:
        """Candidates ranked best first by the job's objective.

        :raises KeyError: no job of that name.
        :raises RuntimeError: the job did not complete, or has no candidate.
        """

    @abc.abstractmethod
    def create_model(self, model_name: str, candidate: Candidate, response_keys: list[str]) -> str:
        """Make a deployable model from ``candidate`` answering with ``response_keys``; return its name.

        :raises ValueError: a response key the candidate's containers cannot give.
        """

    def probability_of(self, candidate: Candidate) -> str | None:
        """What the ``probability`` response key of ``candidate``'s model is the probability of:
        ``"predicted_label"`` or ``"positive_class"`` (the second of ``labels``), as
        :func:`mlops.ml.batch_predictions.positive_scores` takes it; ``None`` when unknown (a
        regression model has none)."""
        return None


@dataclass(frozen=True)
class TransformResult(Serializable):
    job_name: str
    output_uri: str
    input_rows: int
    output_rows: int


class BatchTransform(LongRunningPort, abc.ABC):
    """Batch predictions: one output line per input line of CSV files."""

    @abc.abstractmethod
    def submit(
        self, job_name: str, model_name: str, input_uri: str, output_uri: str,
        content_type: str = "text/csv", input_filter: str | None = None,
        join_source: bool = False, output_filter: str | None = None,
    ) -> JobHandle:
        """Start the transform job, re-attach to it, or reuse a completed one; see :class:`JobHandle`.

        ``collect`` returns a :class:`TransformResult` dict. Predicts every line of the CSV
        file(s) at ``input_uri``; one output line per input line.

        Mirrors SageMaker's DataProcessing: ``input_filter`` (e.g. ``"$[1:]"``, drop the id
        column before predicting), ``join_source`` (output line = input line followed by the
        prediction fields, ``JoinSource=Input``), ``output_filter`` (e.g. ``"$[0,-2,-1]"``).
        Output files are named like SageMaker's: ``<input file name>.out`` under ``output_uri``.

        :raises ValueError: an unsupported content type, a bad filter, or a job of that name with
            another configuration.
        :raises RuntimeError: the job failed (with its reason), or output and input line counts differ.
        """

    def transform(
        self, job_name: str, model_name: str, input_uri: str, output_uri: str,
        content_type: str = "text/csv", input_filter: str | None = None,
        join_source: bool = False, output_filter: str | None = None,
    ) -> TransformResult:
        """:meth:`submit`, :meth:`~LongRunningPort.wait` and :meth:`~LongRunningPort.collect` in one
        blocking call; raises what they raise."""
        handle = self.submit(job_name, model_name, input_uri, output_uri, content_type, input_filter,
                             join_source, output_filter)
        return TransformResult.from_dict(self.collect(self.wait(handle)))


# ---------------------------------------------------------------- data-quality monitoring
class MonitoringScheduleError(RuntimeError):
    """The data-quality schedule of an endpoint could not be made or replaced; the message names
    the schedule, the endpoint and the service's reason."""


class MonitoringReportNotFound(LookupError):
    """No monitoring execution completed for the window yet (the schedule's first hour, or its
    executions failed); the message names the schedule, the window and what was found instead."""


@dataclass(frozen=True)
class MonitoringBaseline(Serializable):
    """What a data-quality check compares against: the registration baseline of the version
    serving the endpoint (Model Monitor's ``statistics.json`` and ``constraints.json``).

    :param model_package_arn: the version serving the endpoint.
    :param statistics_uri: its baseline ``statistics.json``.
    :param constraints_uri: its baseline ``constraints.json``.
    """

    model_package_arn: str
    statistics_uri: str
    constraints_uri: str


@dataclass(frozen=True)
class MonitoringCheck(Serializable):
    """One window of a monitoring run (what :meth:`DataQualityMonitor.report` checks or reads).

    :param since: start of the window (ISO-8601, UTC).
    :param until: end of the window, exclusive.
    :param capture_prefix: ``<DestinationS3Uri>/<endpoint>/AllTraffic`` of the endpoint's capture.
    :param ground_truth_prefix: where labels for the endpoint's inference ids land
        (``.../monitoring/ground-truth/<endpoint>``).
    :param settings: :func:`mlops.ml.monitoring.monitoring_settings` of the pipeline.
    :param positive_label: the positive class, for model quality against ground truth.
    :param thresholds: ``approval.model`` (``min_holdout_<metric>``), for model quality.
    """

    since: str
    until: str
    capture_prefix: str
    ground_truth_prefix: str
    settings: dict[str, Any]
    positive_label: str | None = None
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringSchedule(Serializable):
    """An endpoint's data-quality schedule as :meth:`DataQualityMonitor.ensure_schedule` left it.

    :param name: the schedule (SageMaker's ``MonitoringScheduleName``; locally the logical name).
    :param job_definition_name: the data-quality job definition it runs (one per baseline).
    :param endpoint_name: the endpoint whose capture it checks.
    :param baseline: the :class:`MonitoringBaseline` (dict) the definition compares against.
    :param change: ``created``, ``unchanged`` or ``replaced`` (another baseline was in place).
    :param status: the schedule's status (``Scheduled``, ``Pending`` ...).
    :param alarm_names: CloudWatch alarms on its violation metrics (none locally).
    :param output_uri: where its executions write their reports.
    :param cron: its schedule expression (hourly).
    """

    name: str
    job_definition_name: str
    endpoint_name: str
    baseline: dict[str, Any]
    change: str
    status: str
    alarm_names: list[str] = field(default_factory=list)
    output_uri: str = ""
    cron: str = ""


class DataQualityMonitor(abc.ABC):
    """The prod endpoint's data-quality monitoring: a schedule on the registration baseline, and
    its reports in one result format (:meth:`mlops.ml.monitoring.MonitoringAccumulator.result`).

    On AWS the schedule is SageMaker Model Monitor's (a data-quality job definition, an hourly
    monitoring schedule, CloudWatch alarms on its drift metrics) and :meth:`report` reads its
    newest completed execution. Locally, ``monitor_model``'s hourly run is the schedule: the
    schedule is a record of the baseline it checks against, and :meth:`report` runs the check.
    """

    @abc.abstractmethod
    def ensure_schedule(self, endpoint_name: str, baseline: MonitoringBaseline) -> MonitoringSchedule:
        """Make the endpoint's schedule check against ``baseline``; idempotent (describe before
        create; the same baseline changes nothing; another one replaces the definition in place,
        leaving one schedule and one definition).

        :raises MonitoringScheduleError: the service refused the schedule or its definition.
        :raises ValueError: a baseline that is not where the service can read it.
        """

    @abc.abstractmethod
    def report(self, schedule: MonitoringSchedule, check: MonitoringCheck) -> dict[str, Any]:
        """The result of the window ``check`` names, in the one result format (``status``,
        ``drift``, ``violations``, ``features``, ``rows`` ...), with ``execution`` saying which
        run produced it.

        :raises MonitoringReportNotFound: no execution covering the window has completed.
        """
