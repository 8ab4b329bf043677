"""SageMaker Autopilot (AutoML V2) behind the AutoML port.

A job is created with ``CreateAutoMLJobV2`` (tabular config: target, problem type, objective,
completion criteria, mode) or attached to by name: :meth:`AutopilotAutoML.submit` describes
first, so a retry, or a DAG run given an existing job's name, never launches a second job.
A running job comes back as a :class:`~mlops.backends.base.JobHandle` carrying the
:class:`~mlops.triggers.sagemaker_automl.SageMakerAutoMLJobV2Trigger`; :meth:`wait` blocks on the
same waiter model instead. Failed and Stopped are terminal: waiting on such a job raises with its
``FailureReason``, and the task's retry, describing first, finds it ended and creates the job
under the next name (``<name>-r2`` ... ``-r9``), as the training and tuning jobs do.

Candidates come from ``ListCandidatesForAutoMLJob`` sorted by ``FinalObjectiveMetricValue`` in the
objective's direction (all pages), best first and, among equals, newest first. A model is
created from a candidate's inference containers with the requested response keys set the way
the SageMaker Python SDK v2 did for ``inference_response_keys``: every container that declares
``SAGEMAKER_INFERENCE_SUPPORTED`` gets ``SAGEMAKER_INFERENCE_OUTPUT`` (the requested keys it
supports, in the requested order) and, when the container before it emitted keys,
``SAGEMAKER_INFERENCE_INPUT`` (those keys); the last container must support every requested key.

Names: the job and model names the port takes are logical; :meth:`AutopilotAutoML.job_name` and
:meth:`AutopilotAutoML.model_name` give their SageMaker names with ``MLOPS_NAME_PREFIX``
(:func:`mlops.core.naming.prefixed`), which is what the results carry. A name that has the prefix
already is kept, so a job name read back from XCom attaches to that job.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import TYPE_CHECKING, Any

from mlops.backends.aws.clients import AwsClients, or_none, stop_quietly
from mlops.backends.base import AutoML, Candidate, JobHandle
from mlops.core.naming import MAX_ATTEMPTS, attempt_name, prefixed

if TYPE_CHECKING:
    from mlops.core.settings import Settings

log = logging.getLogger(__name__)

COMPLETED, IN_PROGRESS, STOPPING, FAILED, STOPPED = "Completed", "InProgress", "Stopping", "Failed", "Stopped"
TERMINAL_FAILURES = (FAILED, STOPPED)
PROBLEM_TYPES = {"binary": "BinaryClassification", "multiclass": "MulticlassClassification",
                 "regression": "Regression"}
MODES = ("ENSEMBLING", "HYPERPARAMETER_TUNING", "AUTO")
# Autopilot objectives where lower is better; every other metric is maximised.
MINIMIZED = frozenset({"MSE", "RMSE", "MAE", "LogLoss", "MAPE", "MASE", "WAPE", "AverageWeightedQuantileLoss"})
RESPONSE_KEYS = ("predicted_label", "probability", "labels", "probabilities")
SUPPORTED = "SAGEMAKER_INFERENCE_SUPPORTED"
INFERENCE_INPUT, INFERENCE_OUTPUT = "SAGEMAKER_INFERENCE_INPUT", "SAGEMAKER_INFERENCE_OUTPUT"
PARQUET, CSV_WITH_HEADER = "x-application/vnd.amazon+parquet", "text/csv;header=present"
TRIGGER = "mlops.triggers.sagemaker_automl.SageMakerAutoMLJobV2Trigger"
JOB_NAME_MAX = 32  # AutoMLJobName (CreateAutoMLJobV2)
MODEL_NAME_MAX = 63  # ModelName


def job_failure(job_name: str, described: dict[str, Any]) -> RuntimeError:
    status = described.get("AutoMLJobStatus")
    reason = described.get("FailureReason") or "no FailureReason given"
    secondary = described.get("AutoMLJobSecondaryStatus")
    detail = f" ({secondary})" if secondary and secondary != status else ""
    return RuntimeError(f"AutoML job {job_name} {status}{detail}: {reason}")


def maximizes(metric_name: str) -> bool:
    return metric_name not in MINIMIZED


def rank_candidates(candidates: list[dict[str, Any]], maximize: bool) -> list[dict[str, Any]]:
    """``ListCandidatesForAutoMLJob`` entries best first by final objective, newest first among equals.

    Entries without a final objective value (the objective could not be computed) are dropped.
    """
    scored = [c for c in candidates if (c.get("FinalAutoMLJobObjectiveMetric") or {}).get("Value") is not None]
    newest_first = sorted(scored, key=lambda c: str(c.get("CreationTime") or ""), reverse=True)
    return sorted(newest_first, key=lambda c: float(c["FinalAutoMLJobObjectiveMetric"]["Value"]),
                  reverse=maximize)


def inference_containers(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidate's inference containers (``Image``, ``ModelDataUrl``, ``Environment``).

    Tabular candidates list them in ``InferenceContainers``; ``InferenceContainerDefinitions``
    (per processing unit, filled for image and text jobs) is the fallback, CPU first.
    """
    containers = candidate.get("InferenceContainers") or []
    if not containers:
        definitions = candidate.get("InferenceContainerDefinitions") or {}
        containers = definitions.get("CPU") or next(iter(definitions.values()), [])
    if not containers:
        raise ValueError(f"candidate {candidate.get('CandidateName')} has no inference containers")
    return [{"Image": c["Image"], "ModelDataUrl": c.get("ModelDataUrl", ""),
             "Environment": dict(c.get("Environment") or {})} for c in containers]


def supported_keys(container: dict[str, Any]) -> list[str] | None:
    raw = (container.get("Environment") or {}).get(SUPPORTED)
    return None if raw is None else [k.strip() for k in raw.split(",") if k.strip()]


def with_response_keys(containers: list[dict[str, Any]], response_keys: list[str]) -> list[dict[str, Any]]:
    """Copies of ``containers`` emitting ``response_keys``, as the SageMaker SDK v2 did.

    Raises ``ValueError`` when the last container declares no supported keys, or lacks one of
    ``response_keys`` (naming the unsupported and the supported keys).
    """
    containers = copy.deepcopy(containers)
    if not response_keys:
        return containers
    last = supported_keys(containers[-1])
    if last is None:
        raise ValueError(
            "the candidate's inference model does not support selecting response keys beyond its "
            f"default content (no {SUPPORTED} on its last container); retry without response keys"
        )
    unsupported = [k for k in response_keys if k not in last]
    if unsupported:
        raise ValueError(f"requested inference response keys [{', '.join(unsupported)}] are unsupported; "
                         f"the supported keys are [{', '.join(last)}]")
    previous_output = None
    for container in containers:
        supported = supported_keys(container) or []
        if not supported:
            previous_output = None
            continue
        output = ",".join(k for k in response_keys if k in supported) or None
        if previous_output:
            container["Environment"][INFERENCE_INPUT] = previous_output
        if output:
            container["Environment"][INFERENCE_OUTPUT] = output
        previous_output = output
    return containers


def check_response_keys(response_keys: list[str]) -> list[str]:
    keys = [str(k).strip() for k in response_keys or []]
    unknown = [k for k in keys if k not in RESPONSE_KEYS]
    if unknown:
        raise ValueError(f"unknown inference response keys {unknown}; choose from {list(RESPONSE_KEYS)}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"response keys {keys} repeat a key")
    return keys


def _container_identity(containers: list[dict[str, Any]]) -> list[tuple]:
    return [(c.get("Image"), c.get("ModelDataUrl") or "", sorted((c.get("Environment") or {}).items()))
            for c in containers]


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value is not None else None)


class AutopilotAutoML(AwsClients, AutoML):
    """The AutoML port on SageMaker Autopilot (AutoML V2, tabular).

    :param settings: project settings (role ARN, region, AWS connection).
    :param client: a boto3 ``sagemaker`` client; default: one from ``settings`` with adaptive retries.
    :param mode: ``ENSEMBLING`` (default), ``HYPERPARAMETER_TUNING`` or ``AUTO``.
    :param max_runtime_per_training_job_s: ``MaxRuntimePerTrainingJobInSeconds`` (at most the job's
        budget); ``None`` leaves Autopilot's default.
    :param waiter_delay: seconds between status checks while waiting (trigger or waiter).
    :param wait_margin_s: how long past the job's own runtime limit to keep waiting before the
        wait times out (Autopilot still finishes candidates after the limit).
    """

    def __init__(self, settings: Settings, client=None, mode: str = "ENSEMBLING",
                 max_runtime_per_training_job_s: int | None = None, waiter_delay: int = 60,
                 wait_margin_s: int = 3600):
        if mode not in MODES:
            raise ValueError(f"Autopilot mode {mode!r} is not one of {', '.join(MODES)}")
        self.settings = settings
        self._use_clients(sagemaker=client)
        self.mode = mode
        self.max_runtime_per_training_job_s = max_runtime_per_training_job_s
        self.waiter_delay = waiter_delay
        self.wait_margin_s = wait_margin_s

    # ------------------------------------------------------------ names
    def job_name(self, name: str) -> str:
        """The SageMaker name of the AutoML job ``name``: ``<prefix>-<name>`` in 32 characters."""
        return prefixed(self.settings.name_prefix, name, JOB_NAME_MAX)

    def model_name(self, name: str) -> str:
        """The SageMaker name of the model ``name``: ``<prefix>-<name>`` in 63 characters."""
        return prefixed(self.settings.name_prefix, name, MODEL_NAME_MAX)

    # ------------------------------------------------------------ requests
    def job_request(self, job_name: str, train_uri: str, target: str, problem_type: str, objective: str,
                    max_candidates: int, time_budget_s: int, output_uri: str) -> dict[str, Any]:
        """The ``CreateAutoMLJobV2`` request for the port's arguments (``job_name``: SageMaker's)."""
        from mlops.backends.limits import check_automl_job

        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type {problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
        check_automl_job(job_name, max_candidates, time_budget_s, self.max_runtime_per_training_job_s, self.mode,
                         objective)
        content_type = CSV_WITH_HEADER if train_uri.lower().endswith(".csv") else PARQUET
        criteria: dict[str, Any] = {"MaxCandidates": int(max_candidates),
                                    "MaxAutoMLJobRuntimeInSeconds": int(time_budget_s)}
        if self.max_runtime_per_training_job_s:
            criteria["MaxRuntimePerTrainingJobInSeconds"] = int(self.max_runtime_per_training_job_s)
        return {
            "AutoMLJobName": job_name,
            "AutoMLJobInputDataConfig": [{
                "ChannelType": "training",
                "ContentType": content_type,
                "CompressionType": "None",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train_uri}},
            }],
            "OutputDataConfig": {"S3OutputPath": f"{output_uri.rstrip('/')}/{job_name}/"},
            "AutoMLProblemTypeConfig": {"TabularJobConfig": {
                "TargetAttributeName": target,
                "ProblemType": PROBLEM_TYPES[problem_type],
                "CompletionCriteria": criteria,
                "Mode": self.mode,
            }},
            "AutoMLJobObjective": {"MetricName": objective},
            "RoleArn": self.settings.sagemaker_role_arn,
        }

    def trigger(self, job_name: str, time_budget_s: int | None = None) -> dict[str, Any]:
        """``{"classpath", "kwargs"}`` of the trigger that waits for ``job_name``."""
        return {"classpath": TRIGGER, "kwargs": {
            "job_name": job_name, "waiter_delay": self.waiter_delay,
            "waiter_max_attempts": self._max_attempts(time_budget_s),
            "aws_conn_id": self.settings.aws_conn_id, "region_name": self.settings.aws_region,
        }}

    def _max_attempts(self, time_budget_s: int | None) -> int:
        budget = int(time_budget_s) if time_budget_s else 24 * 3600
        return max(1, math.ceil((budget + self.wait_margin_s) / max(self.waiter_delay, 1)))

    # ------------------------------------------------------------ describe
    def describe_job(self, job_name: str) -> dict[str, Any] | None:
        """``DescribeAutoMLJobV2``, or ``None`` when there is no job of that name."""
        return or_none(lambda: self.sagemaker.describe_auto_ml_job_v2(AutoMLJobName=job_name))

    @staticmethod
    def _budget(described: dict[str, Any]) -> int | None:
        config = (described.get("AutoMLProblemTypeConfig") or {}).get("TabularJobConfig") or {}
        return (config.get("CompletionCriteria") or {}).get("MaxAutoMLJobRuntimeInSeconds")

    @staticmethod
    def _identity(job: dict[str, Any]) -> dict[str, Any]:
        """What makes a job's models answer the same question: target, problem type, objective."""
        config = (job.get("AutoMLProblemTypeConfig") or {}).get("TabularJobConfig") or {}
        resolved = ((job.get("ResolvedAttributes") or {}).get("AutoMLProblemTypeResolvedAttributes") or {}
                    ).get("TabularResolvedAttributes") or {}
        return {
            "target": config.get("TargetAttributeName"),
            "problem_type": config.get("ProblemType") or resolved.get("ProblemType"),
            "objective": (job.get("AutoMLJobObjective") or {}).get("MetricName"),
        }

    def _check_attachable(self, described: dict[str, Any], request: dict[str, Any]) -> None:
        have, want = self._identity(described), self._identity(request)
        changed = sorted(k for k in want if have[k] is not None and have[k] != want[k])
        if changed:
            raise ValueError(
                f"AutoML job {request['AutoMLJobName']} exists with a different "
                + ", ".join(f"{k} ({have[k]!r}, asked {want[k]!r})" for k in changed)
                + "; use a new job name for a new configuration"
            )

    # ------------------------------------------------------------ submit / wait / collect
    def submit(self, job_name: str, train_uri: str, target: str, problem_type: str, objective: str,
               max_candidates: int, time_budget_s: int, output_uri: str,
               local_time_budget_s: int | None = None) -> JobHandle:
        """Create the job, or attach to the job of that name; see :class:`JobHandle`.

        Describes first: a job of that name running is attached to, a Completed one reused; one
        that Failed or was Stopped is final on SageMaker, so the next name is tried (``<name>-r2``
        ... ``-r9``, each described the same way) and the first free one is created. Raises
        ``RuntimeError`` naming the job when all of them ended Failed or Stopped, and
        ``ValueError`` if a job of that name predicts another target or problem type, or
        optimises another objective; :class:`~mlops.backends.limits.LimitError` before any call for a
        request SageMaker would reject or whose budget cannot produce a candidate. The handle
        names the job by its SageMaker name. ``local_time_budget_s`` is the local twin's.
        """
        base = self.job_name(job_name)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            name = attempt_name(base, attempt, JOB_NAME_MAX)
            request, described = self._create_or_describe(name, train_uri, target, problem_type, objective,
                                                           max_candidates, time_budget_s, output_uri)
            if described is None:
                return JobHandle(kind="automl", name=name, done=False, trigger=self.trigger(name, time_budget_s))
            self._check_attachable(described, request)
            status = described["AutoMLJobStatus"]
            if status in TERMINAL_FAILURES:
                log.warning("%s; the retry uses the next name", job_failure(name, described))
                continue
            log.info("AutoML job %s exists: %s (%s); attaching", name, status,
                     described.get("AutoMLJobSecondaryStatus"))
            if status == COMPLETED:
                return JobHandle(kind="automl", name=name, done=True, result=self._result(name))
            return JobHandle(kind="automl", name=name, done=False, trigger=self.trigger(name, self._budget(described)))
        raise RuntimeError(f"AutoML job {base}: {MAX_ATTEMPTS} attempts ended Failed or Stopped "
                           f"({base} ... {attempt_name(base, MAX_ATTEMPTS, JOB_NAME_MAX)})")

    def _create_or_describe(self, job_name: str, train_uri: str, target: str, problem_type: str, objective: str,
                            max_candidates: int, time_budget_s: int, output_uri: str
                            ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """``(request, None)`` after creating the job ``job_name`` when no job has that name, else
        ``(request, its description)``."""
        from botocore.exceptions import ClientError

        request = self.job_request(job_name, train_uri, target, problem_type, objective, max_candidates,
                                   time_budget_s, output_uri)
        described = self.describe_job(job_name)
        if described is not None:
            return request, described
        try:
            self.sagemaker.create_auto_ml_job_v2(**request)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceInUse":
                raise
            described = self.describe_job(job_name)  # created meanwhile by another attempt
            if described is None:
                raise
            return request, described
        log.info("created AutoML V2 job %s (%s, %s, %d candidates, %d s)", job_name,
                 request["AutoMLProblemTypeConfig"]["TabularJobConfig"]["ProblemType"], objective,
                 int(max_candidates), int(time_budget_s))
        return request, None

    def wait(self, handle: JobHandle) -> JobHandle:
        """Block on the AutoML V2 waiter (the trigger's rules) until the job is Completed."""
        from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        from mlops.hooks.sagemaker import AUTOML_STATUS_QUERIES, AUTOML_WAITER_NAME, SageMakerAutoMLHook

        if handle.done:
            return handle
        kwargs = (handle.trigger or {}).get("kwargs", {})
        waiter = SageMakerAutoMLHook(aws_conn_id=self.settings.aws_conn_id).get_waiter(AUTOML_WAITER_NAME,
                                                                                      client=self.sagemaker)
        try:
            wait(waiter, kwargs.get("waiter_delay", self.waiter_delay),
                 kwargs.get("waiter_max_attempts", self._max_attempts(None)), {"AutoMLJobName": handle.name},
                 f"AutoML job {handle.name} did not complete", f"AutoML job {handle.name} is running",
                 AUTOML_STATUS_QUERIES)
        except WaiterTerminalFailure as err:
            described = self.describe_job(handle.name) or err.last_response or {}
            raise job_failure(handle.name, described) from err
        return JobHandle(kind="automl", name=handle.name, done=True, result=self._result(handle.name))

    def stop(self, handle: JobHandle | None) -> None:
        """``StopAutoMLJob`` (it stops V2 jobs too): the task was killed while it waited."""
        if handle is None or handle.done:
            log.warning("no running AutoML job to stop")
            return
        stop_quietly(lambda: self.sagemaker.stop_auto_ml_job(AutoMLJobName=handle.name), f"AutoML job {handle.name}")

    def collect(self, handle: JobHandle) -> dict[str, Any]:
        """``{"job_name", "status", "candidates"}`` of a Completed job (ranked best first)."""
        return handle.result if handle.result is not None else self._result(handle.name)

    def _result(self, job_name: str) -> dict[str, Any]:
        return {"job_name": job_name, "status": COMPLETED,
                "candidates": [c.to_dict() for c in self.candidates(job_name)]}

    # ------------------------------------------------------------ candidates
    def _list_candidates(self, job_name: str, maximize: bool, **filters: Any) -> list[dict[str, Any]]:
        paginator = self.sagemaker.get_paginator("list_candidates_for_auto_ml_job")
        pages = paginator.paginate(AutoMLJobName=job_name, SortBy="FinalObjectiveMetricValue",
                                   SortOrder="Descending" if maximize else "Ascending", **filters)
        return [c for page in pages for c in page.get("Candidates", [])]

    def candidates(self, job_name: str) -> list[Candidate]:
        job_name = self.job_name(job_name)
        described = self.describe_job(job_name)
        if described is None:
            raise KeyError(f"no AutoML job named {job_name!r}")
        status = described["AutoMLJobStatus"]
        if status != COMPLETED:
            if status in TERMINAL_FAILURES:
                raise job_failure(job_name, described)
            raise RuntimeError(f"AutoML job {job_name} is {status}, it has no candidates yet")
        metric = self._identity(described)["objective"] or (
            (described.get("BestCandidate") or {}).get("FinalAutoMLJobObjectiveMetric") or {}).get("MetricName")
        listed = self._list_candidates(job_name, maximizes(metric), StatusEquals="Completed")
        types = {(c.get("FinalAutoMLJobObjectiveMetric") or {}).get("Type") for c in listed} - {None}
        maximize = types != {"Minimize"} if types else maximizes(metric)
        ranked = rank_candidates(listed, maximize)
        if not ranked:
            raise RuntimeError(f"AutoML job {job_name} is Completed but has no candidate with a final "
                               f"{metric} value")
        config = (described.get("AutoMLProblemTypeConfig") or {}).get("TabularJobConfig") or {}
        job = {"mode": config.get("Mode"), "problem_type": self._identity(described)["problem_type"]}
        return [self._candidate(job_name, c, rank, metric, maximize, job) for rank, c in enumerate(ranked, 1)]

    def probability_of(self, candidate: Candidate) -> str | None:
        """SageMaker's meaning of ``probability`` ("Configure inference output in generated
        containers"): the predicted label's in ENSEMBLING mode and for multiclass problems; the
        positive class's (the second of ``labels``) for a binary problem in HYPERPARAMETER_TUNING
        mode. Under ``AUTO`` the mode Autopilot chose shows in the candidate's containers: one
        for an ensemble, three for an HPO classifier (the same page)."""
        problem_type, mode = candidate.detail.get("problem_type"), candidate.detail.get("mode")
        if problem_type not in ("BinaryClassification", "MulticlassClassification"):
            return None
        if mode in (None, "AUTO"):
            mode = "ENSEMBLING" if len(candidate.detail.get("containers") or []) == 1 else "HYPERPARAMETER_TUNING"
        if mode == "HYPERPARAMETER_TUNING" and problem_type == "BinaryClassification":
            return "positive_class"
        return "predicted_label"

    @staticmethod
    def _candidate(job_name: str, listed: dict[str, Any], rank: int, metric: str | None,
                   maximize: bool, job: dict[str, Any] | None = None) -> Candidate:
        final = listed["FinalAutoMLJobObjectiveMetric"]
        containers = inference_containers(listed)
        steps = [s.get("CandidateStepName", "") for s in listed.get("CandidateSteps") or []
                 if s.get("CandidateStepType") == "AWS::SageMaker::TrainingJob"]
        # the algorithm's artifact: the container whose model came out of the candidate's training job
        model_uri = next((c["ModelDataUrl"] for c in containers for step in steps
                          if step and step in c["ModelDataUrl"]), None) or next(
            (c["ModelDataUrl"] for c in reversed(containers) if c["ModelDataUrl"]), "")
        return Candidate(
            name=listed["CandidateName"],
            objective_metric=final.get("MetricName") or metric or "",
            objective_value=float(final["Value"]),
            model_uri=model_uri,
            detail={
                "job_name": job_name, "rank": rank, "metric_type": final.get("Type") or
                ("Maximize" if maximize else "Minimize"),
                "standard_metric_name": final.get("StandardMetricName"),
                "containers": containers, "creation_time": _iso(listed.get("CreationTime")),
                "candidate_status": listed.get("CandidateStatus"),
                "supported_response_keys": supported_keys(containers[-1]),
                **(job or {}),
            },
        )

    def describe_candidate(self, job_name: str, candidate_name: str) -> dict[str, Any]:
        """The job's listing of one candidate (``CandidateNameEquals``); ``ValueError`` if it has none."""
        listed = [c for c in self._list_candidates(job_name, True, CandidateNameEquals=candidate_name)
                  if c.get("CandidateName") == candidate_name]
        if not listed:
            raise ValueError(f"candidate {candidate_name} is not a candidate of AutoML job {job_name}")
        return listed[0]

    # ------------------------------------------------------------ models
    def model_request(self, model_name: str, candidate: Candidate | dict[str, Any],
                      response_keys: list[str]) -> dict[str, Any]:
        """The ``CreateModel`` request: the candidate's containers (re-read from the job) with the keys
        (``model_name``: SageMaker's)."""
        if isinstance(candidate, dict):
            candidate = Candidate.from_dict(candidate)
        job_name = candidate.detail.get("job_name")
        if not job_name:
            raise ValueError(f"candidate {candidate.name} does not name its AutoML job")
        keys = check_response_keys(response_keys)
        containers = inference_containers(self.describe_candidate(job_name, candidate.name))
        return {
            "ModelName": model_name,
            "ExecutionRoleArn": self.settings.sagemaker_role_arn,
            "Containers": with_response_keys(containers, keys),
        }

    def describe_model(self, model_name: str) -> dict[str, Any] | None:
        """``DescribeModel``, or ``None`` when there is no model of that name."""
        return or_none(lambda: self.sagemaker.describe_model(ModelName=model_name))

    def create_model(self, model_name: str, candidate: Candidate | dict[str, Any], response_keys: list[str]) -> str:
        """``CreateModel`` from the candidate's inference containers answering with ``response_keys``.

        Creating the same model again is a no-op; the same name with other containers or keys is
        a ``ValueError``. Returns the model's SageMaker name.
        """
        model_name = self.model_name(model_name)
        request = self.model_request(model_name, candidate, response_keys)
        existing = self.describe_model(model_name)
        if existing is not None:
            have = existing.get("Containers") or ([existing["PrimaryContainer"]]
                                                  if existing.get("PrimaryContainer") else [])
            if _container_identity(have) != _container_identity(request["Containers"]):
                raise ValueError(f"model {model_name} exists with different containers or response keys; "
                                 "use a new model name")
            log.info("model %s exists with the same containers: reusing it", model_name)
            return model_name
        self.sagemaker.create_model(**request)
        log.info("model %s: %d container(s), response keys %s", model_name, len(request["Containers"]),
                 response_keys or "default")
        return model_name
