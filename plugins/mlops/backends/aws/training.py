"""SageMaker implementations of the Tuner and Trainer ports.

Why one module of this length: the Tuner and the Trainer share one SageMaker API family's
naming, re-attach rules, source upload and failure reading.

Both run ``include/training/train.py`` — the entry point the local twins run — in SageMaker's
scikit-learn framework container: the folder ``include/training/`` is uploaded once as a
content-addressed ``sourcedir.tar.gz`` (``s3://<bucket>/<prefix>/code/<sha256>/``) and named by
the ``sagemaker_program`` and ``sagemaker_submit_directory`` hyperparameters, as the SageMaker
Python SDK's framework estimators do.

* :class:`SageMakerTuner` is a hyperparameter tuning job (Bayesian strategy, seeded, early
  stopping ``Auto``, optional managed spot training with checkpoints). Each of its training
  jobs is one trial: it scores all k folds of the fold manifest (channel ``folds``) and prints
  the running mean after each fold, which the metric definitions capture as
  ``cv_mean:<objective>``, the objective. A budget of T trials launches T training jobs, where
  running every fold as its own job would launch T * k.
* :class:`SageMakerTrainer` is the refit: one training job on every training row with the best
  hyperparameters (no folds channel: no CV, only the final fit).

Idempotent names: a job's name derives from the port's ``job_name`` (itself from dag, run and
step). ``submit`` describes before it creates: an ``InProgress`` job is re-attached to, a
``Completed`` one is reused, and only a ``Failed`` or ``Stopped`` one makes the next name,
``<name>-r2``, ``<name>-r3``... in order, each described the same way. A job still running
comes back with the amazon provider's ``SageMakerTrigger`` (as :class:`~mlops.triggers.sagemaker_jobs.SageMakerJobTrigger`,
which also stops the job when the deferred task is killed) so the operator can defer;
:meth:`wait` blocks on the provider's waiter (``TuningJobComplete``/``TrainingJobComplete``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
import tarfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mlops.backends.aws.clients import AwsClients, or_none, stop_quietly
from mlops.backends.aws.s3 import s3_uri, split_s3_uri
from mlops.backends.aws.sklearn_image import sklearn_image_uri
from mlops.backends.base import CVResult, JobHandle, TrainedModel, Trainer, TrainingData, Tuner, TuningResult
from mlops.core.naming import MAX_ATTEMPTS, RETRY_ROOM, attempt_name, prefixed
from mlops.core.paths import INCLUDE_DIR
from mlops.core.schema import PositiveInt, env_value

if TYPE_CHECKING:
    from mlops.core.settings import Settings

log = logging.getLogger(__name__)

SOURCE_DIR = INCLUDE_DIR / "training"
ENTRY_POINT = "train.py"
TRIGGER = "mlops.triggers.sagemaker_jobs.SageMakerJobTrigger"  # the provider's, which also stops on kill
TUNING_NAME_MAX = 32  # HyperParameterTuningJobName
TRAINING_NAME_MAX = 63  # TrainingJobName
IN_PROGRESS = ("InProgress", "Stopping")
COMPLETED = "Completed"
FAILED = ("Failed", "Stopped")
TRIAL_STATES = {"Completed": "COMPLETE", "Stopped": "PRUNED", "Failed": "FAIL", "InProgress": "RUNNING"}
CHUNK = 1 << 20


class JobFailed(RuntimeError):
    """A SageMaker job ended Failed or Stopped."""


# ---------------------------------------------------------------- names, image, source
def job_name_for(prefix: str, job_name: str, max_len: int) -> str:
    """The SageMaker name of the port's ``job_name``: :func:`mlops.core.naming.prefixed` in ``max_len``
    less the retry suffix (``-r2`` ... ``-r9``)."""
    return prefixed(prefix, job_name, max_len - RETRY_ROOM)


def source_archive(directory=SOURCE_DIR) -> bytes:
    """``directory``'s Python files as a deterministic ``sourcedir.tar.gz`` (sorted names, zeroed
    times and owners), so the same code always has the same sha256 and S3 key."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for path in sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts):
            payload = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(directory).as_posix())
            info.size, info.mode, info.mtime = len(payload), 0o644, 0
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _env_flag(name: str) -> bool:
    """A yes/no variable (pydantic's booleans: 1/0, true/false, yes/no, on/off); unset is no."""
    return env_value(name, bool, False)


# ---------------------------------------------------------------- shared job machinery
class _SageMakerJobs(AwsClients):
    """Clients, the uploaded source, request pieces and the describe-first attach rule.

    :param settings: project settings (region, role, data URI, name prefix, instance type).
    :param sagemaker_client: a boto3 ``sagemaker`` client (default: from the Airflow connection).
    :param s3_client: a boto3 ``s3`` client (default: from the Airflow connection).
    :param image_uri: training image (default: :func:`mlops.backends.aws.sklearn_image.sklearn_image_uri`
        of the one framework version, the image the models are served in).
    :param use_spot: managed spot training with checkpoints (default: ``MLOPS_USE_SPOT``).
    :param max_runtime_s: ``MaxRuntimeInSeconds`` of each training job.
    :param max_wait_s: ``MaxWaitTimeInSeconds`` with spot (time waiting for capacity included).
    :param volume_size_gb: EBS volume of each training instance.
    :param waiter_delay: seconds between polls, for the trigger and the waiter.
    :param waiter_max_attempts: polls before giving up.
    """

    kind = ""
    name_max = TRAINING_NAME_MAX

    def __init__(
        self,
        settings: Settings,
        sagemaker_client=None,
        s3_client=None,
        image_uri: str | None = None,
        use_spot: bool | None = None,
        max_runtime_s: int = 3 * 3600,
        max_wait_s: int = 6 * 3600,
        volume_size_gb: int = 30,
        waiter_delay: int = 60,
        waiter_max_attempts: int = 24 * 60,
    ) -> None:
        self.settings = settings
        self._use_clients(sagemaker=sagemaker_client, s3=s3_client)
        self._image_uri = image_uri
        self.use_spot = _env_flag("MLOPS_USE_SPOT") if use_spot is None else use_spot
        self.max_runtime_s = max_runtime_s
        self.max_wait_s = max(max_wait_s, max_runtime_s)
        self.volume_size_gb = volume_size_gb
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    @property
    def image_uri(self) -> str:
        if self._image_uri is None:
            self._image_uri = sklearn_image_uri(self.settings.aws_region, "training")
        return self._image_uri

    # ---- describe first
    def describe(self, name: str) -> dict[str, Any] | None:
        raise NotImplementedError

    @staticmethod
    def status(description: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def attach(self, job_name: str, create: Callable[[str], None]) -> JobHandle:
        """Re-attach to, reuse, or create the job for ``job_name``; see the module doc."""
        base = job_name_for(self.settings.name_prefix, job_name, self.name_max)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            name = attempt_name(base, attempt)
            description = self.describe(name)
            if description is None:
                create(name)
                log.info("%s job %s created", self.kind, name)
                return self.running(name)
            status = self.status(description)
            if status in IN_PROGRESS:
                log.info("%s job %s is %s: re-attaching", self.kind, name, status)
                return self.running(name)
            if status == COMPLETED:
                log.info("%s job %s already completed: reusing it", self.kind, name)
                return JobHandle(kind=self.kind, name=name, done=True)
            log.warning("%s job %s ended %s (%s); the retry uses the next name", self.kind, name, status,
                        description.get("FailureReason", "no reason given"))
        raise JobFailed(f"{self.kind} job {base}: {MAX_ATTEMPTS} attempts ended Failed or Stopped")

    def running(self, name: str) -> JobHandle:
        trigger = {
            "classpath": TRIGGER,
            "kwargs": {
                "job_name": name,
                "job_type": self.kind,
                "aws_conn_id": self.settings.aws_conn_id,
                "region_name": self.settings.aws_region,
                "waiter_delay": self.waiter_delay,
                "waiter_max_attempts": self.waiter_max_attempts,
            },
        }
        return JobHandle(kind=self.kind, name=name, done=False, trigger=trigger)

    # ---- stopping
    def stop(self, handle: JobHandle | None) -> None:
        """Stop the job (the task was killed while it waited); an ended job is left alone."""
        if handle is None or handle.done:
            log.warning("%s: no running job to stop", self.kind)
            return
        self.stop_job(handle.name)

    def stop_job(self, name: str) -> None:
        raise NotImplementedError

    # ---- waiting
    waiter_name = ""
    waiter_argument = ""

    def completed(self, name: str) -> dict[str, Any]:
        """The job's description; :class:`JobFailed` unless it exists and Completed."""
        description = self.describe(name)
        if description is None:
            raise JobFailed(f"{self.kind} job {name} does not exist")
        status = self.status(description)
        if status != COMPLETED:
            raise JobFailed(f"{self.kind} job {name} is {status}: "
                            f"{description.get('FailureReason') or 'no reason given'}")
        return description

    def wait(self, handle: JobHandle) -> JobHandle:
        """Block on the amazon provider's waiter until the job completes; raise :class:`JobFailed`
        with SageMaker's reason if it fails or stops."""
        if handle.done:
            return handle
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
        from botocore.exceptions import WaiterError

        hook = SageMakerHook(aws_conn_id=self.settings.aws_conn_id, region_name=self.settings.aws_region)
        waiter = hook.get_waiter(self.waiter_name, client=self.sagemaker)
        try:
            waiter.wait(**{self.waiter_argument: handle.name},
                        WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": self.waiter_max_attempts})
        except WaiterError as err:
            last = err.last_response or {}
            raise JobFailed(f"{self.kind} job {handle.name} did not complete: "
                            f"{last.get('FailureReason') or err}") from err
        return JobHandle(kind=self.kind, name=handle.name, done=True)

    # ---- request pieces
    def upload_source(self) -> str:
        """Upload ``include/training/`` as ``sourcedir.tar.gz`` under its sha256 (once); its URI."""
        from botocore.exceptions import ClientError

        payload = source_archive()
        digest = hashlib.sha256(payload).hexdigest()
        bucket, prefix = split_s3_uri(self.settings.data_uri)
        key = "/".join(part for part in (prefix.rstrip("/"), "code", digest, "sourcedir.tar.gz") if part)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            self.s3.put_object(Bucket=bucket, Key=key, Body=payload, ContentType="application/gzip")
            log.info("uploaded the training source (sha256 %s) to s3://%s/%s", digest, bucket, key)
        return f"s3://{bucket}/{key}"

    def framework_hyperparameters(self, source_uri: str) -> dict[str, str]:
        """What the scikit-learn container's toolkit needs to fetch and run the entry point."""
        from mlops.core.entrypoints import training_module

        return training_module().encode_hyperparameters({
            "sagemaker_program": ENTRY_POINT,
            "sagemaker_submit_directory": source_uri,
            "sagemaker_region": self.settings.aws_region,
            "sagemaker_container_log_level": logging.INFO,
        })

    def data_hyperparameters(self, data: TrainingData, **extra: Any) -> dict[str, str]:
        """The data config (``train.py``'s ``CONFIG_KEYS``) plus ``extra``, encoded."""
        from mlops.core.entrypoints import training_module

        train = training_module()
        values = {key: value for key, value in data.to_dict().items() if key in train.CONFIG_KEYS}
        return train.encode_hyperparameters({**values, **extra})

    @staticmethod
    def channel(name: str, uri: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": s3_uri(uri),
                                            "S3DataDistributionType": "FullyReplicated"}},
            "InputMode": "File",
        }

    def resources(self) -> dict[str, Any]:
        return {"InstanceType": self.settings.instance_type, "InstanceCount": 1,
                "VolumeSizeInGB": self.volume_size_gb}

    def stopping_condition(self) -> dict[str, int]:
        condition = {"MaxRuntimeInSeconds": self.max_runtime_s}
        if self.use_spot:
            condition["MaxWaitTimeInSeconds"] = self.max_wait_s
        return condition

    def spot(self, output_uri: str, name: str) -> dict[str, Any]:
        """``EnableManagedSpotTraining`` and ``CheckpointConfig`` when spot is on: an interrupted
        job resumes from ``/opt/ml/checkpoints`` (``train.py`` keeps its finished folds there)."""
        if not self.use_spot:
            return {}
        return {"EnableManagedSpotTraining": True,
                "CheckpointConfig": {"S3Uri": f"{s3_uri(output_uri)}/checkpoints/{name}",
                                     "LocalPath": "/opt/ml/checkpoints"}}

    def tags(self, job_name: str) -> list[dict[str, str]]:
        return [{"Key": "mlops:job", "Value": job_name[:256]}]

    def read_s3_json(self, uri: str) -> Any:
        bucket, key = split_s3_uri(uri)
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def write_s3_json(self, uri: str, payload: Any) -> str:
        bucket, key = split_s3_uri(uri)
        body = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        return uri

    def s3_sha256(self, uri: str) -> str:
        """sha256 of an S3 object, streamed."""
        bucket, key = split_s3_uri(uri)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(CHUNK), b""):
            digest.update(chunk)
        return digest.hexdigest()


def _decode_hyperparameters(encoded: Mapping[str, str]) -> dict[str, Any]:
    """The estimator's hyperparameters from a job's ``HyperParameters`` (data config and
    SageMaker's own names left out)."""
    from mlops.core.entrypoints import training_module

    train = training_module()
    values = {name: train.decode_value(text) for name, text in encoded.items()}
    return train.split_hyperparameters(values)[1]


# ---------------------------------------------------------------- tuning
class SageMakerTuner(_SageMakerJobs, Tuner):
    """A SageMaker hyperparameter tuning job whose training jobs each run all k folds.

    Objective ``cv_mean:<objective>`` (maximised), Bayesian strategy seeded with ``data.seed``,
    ``TrainingJobEarlyStoppingType=Auto`` (SageMaker stops a trial whose running fold mean is
    below the median of earlier trials' at the same fold), ``max_parallel_jobs`` training jobs
    at a time (default ``MLOPS_MAX_PARALLEL_TRAINING_JOBS`` or 2). See :class:`_SageMakerJobs`
    for the other parameters.
    """

    kind = "tuning"
    name_max = TUNING_NAME_MAX
    waiter_name = "TuningJobComplete"
    waiter_argument = "HyperParameterTuningJobName"

    def __init__(self, settings: Settings, max_parallel_jobs: int | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        if max_parallel_jobs is None:
            max_parallel_jobs = env_value("MLOPS_MAX_PARALLEL_TRAINING_JOBS", PositiveInt, 2)
        self.max_parallel_jobs = max_parallel_jobs

    def describe(self, name: str) -> dict[str, Any] | None:
        return or_none(lambda: self.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))

    def stop_job(self, name: str) -> None:
        stop_quietly(lambda: self.sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                     f"tuning job {name}")

    @staticmethod
    def status(description: Mapping[str, Any]) -> str:
        return description["HyperParameterTuningJobStatus"]

    def submit(self, job_name: str, data: TrainingData, search_space: dict[str, dict[str, Any]],
               n_trials: int, output_uri: str) -> JobHandle:
        """Create the tuning job, or re-attach to / reuse the one of that name."""
        from mlops.backends.base import validate_search_space
        from mlops.backends.limits import check_tuning

        space = validate_search_space(search_space)
        check_tuning(n_trials, min(self.max_parallel_jobs, n_trials), space)
        return self.attach(job_name, lambda name: self.sagemaker.create_hyper_parameter_tuning_job(
            **self.request(name, job_name, data, space, n_trials, output_uri)))

    def request(self, name: str, job_name: str, data: TrainingData, space: dict[str, dict[str, Any]],
                n_trials: int, output_uri: str) -> dict[str, Any]:
        """The ``CreateHyperParameterTuningJob`` request."""
        from mlops.core.entrypoints import training_module

        manifest = self.read_s3_json(data.folds_uri)
        k = len({fold for fold in manifest["folds"] if fold >= 0})
        objective = data.objective
        static = {**self.data_hyperparameters(data, final_fit=False),
                  **self.framework_hyperparameters(self.upload_source())}
        definition = {
            "StaticHyperParameters": static,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri,
                "TrainingInputMode": "File",
                "MetricDefinitions": training_module().metric_definitions(objective, k),
            },
            "RoleArn": self.settings.sagemaker_role_arn,
            "InputDataConfig": [self.channel("train", data.train_uri), self.channel("folds", data.folds_uri)],
            "OutputDataConfig": {"S3OutputPath": s3_uri(output_uri)},
            "ResourceConfig": self.resources(),
            "StoppingCondition": self.stopping_condition(),
            **self.spot(output_uri, name),
        }
        return {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobConfig": {
                "Strategy": "Bayesian",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": f"cv_mean:{objective}"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": n_trials,
                                   "MaxParallelTrainingJobs": min(self.max_parallel_jobs, n_trials)},
                "ParameterRanges": parameter_ranges(space),
                "TrainingJobEarlyStoppingType": "Auto",
                "RandomSeed": data.seed,
            },
            "TrainingJobDefinition": definition,
            "Tags": self.tags(job_name),
        }

    def tune(self, job_name: str, data: TrainingData, search_space: dict[str, dict[str, Any]],
             n_trials: int, output_uri: str) -> TuningResult:
        """Submit, wait (blocking) and collect."""
        result = self.collect(self.wait(self.submit(job_name, data, search_space, n_trials, output_uri)))
        return TuningResult(**{**result, "best": CVResult.from_dict(result["best"])})

    def collect(self, handle: JobHandle) -> dict[str, Any]:
        """The best training job's hyperparameters and fold scores, and every trial's outcome.

        Writes the history (the local twin's format) to
        ``<S3OutputPath>/<tuning job>/tuning_history.json``.
        """
        description = self.completed(handle.name)
        config = description["HyperParameterTuningJobConfig"]
        metric = config["HyperParameterTuningJobObjective"]["MetricName"]
        objective = metric.split(":", 1)[1] if ":" in metric else metric
        best_summary = description.get("BestTrainingJob")
        if not best_summary:
            raise JobFailed(f"tuning job {handle.name} completed without a best training job "
                            f"({description.get('ObjectiveStatusCounters')})")
        best_job = self.sagemaker.describe_training_job(TrainingJobName=best_summary["TrainingJobName"])
        best = best_cv_result(best_summary, best_job, objective)
        trials = self.trials(handle.name)
        output_path = description["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        history_uri = f"{output_path}/{handle.name}/tuning_history.json"
        self.write_s3_json(history_uri, {
            "job_name": handle.name,
            "status": COMPLETED,
            "backend": "aws",
            "objective": objective,
            "direction": "maximize",
            "tuner": {"strategy": config.get("Strategy"), "early_stopping": config.get("TrainingJobEarlyStoppingType"),
                      "random_seed": config.get("RandomSeed"), "resource_limits": config.get("ResourceLimits")},
            "best_training_job": best_summary["TrainingJobName"],
            "best_trial": next((t["number"] for t in trials if t["name"] == best_summary["TrainingJobName"]), None),
            "best": best.to_dict(),
            "trials": trials,
            "training_job_status_counters": description.get("TrainingJobStatusCounters"),
        })
        log.info("tuning job %s: best %s=%.6f (+/- %.6f) from %s with %s", handle.name, objective, best.mean,
                 best.std, best_summary["TrainingJobName"], best.hyperparameters)
        return TuningResult(handle.name, objective, best, len(trials), history_uri).to_dict()

    def trials(self, name: str) -> list[dict[str, Any]]:
        """Every training job of the tuning job, oldest first, as trial records."""
        paginator = self.sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
        summaries = [summary for page in paginator.paginate(HyperParameterTuningJobName=name)
                     for summary in page["TrainingJobSummaries"]]
        summaries.sort(key=lambda s: (s.get("CreationTime") or 0, s["TrainingJobName"]))
        records = []
        for number, summary in enumerate(summaries):
            final = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
            started, ended = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
            records.append({
                "number": number,
                "name": summary["TrainingJobName"],
                "params": _decode_hyperparameters(summary.get("TunedHyperParameters") or {}),
                "fold_scores": [],
                "mean": final.get("Value"),
                "std": None,
                "state": TRIAL_STATES.get(summary["TrainingJobStatus"], summary["TrainingJobStatus"].upper()),
                "seconds": (ended - started).total_seconds() if started and ended else None,
            })
        return records


def parameter_ranges(space: Mapping[str, Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A checked search space as SageMaker ``ParameterRanges`` (``step`` has no equivalent)."""
    ranges: dict[str, list[dict[str, Any]]] = {
        "ContinuousParameterRanges": [], "IntegerParameterRanges": [], "CategoricalParameterRanges": []}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            values = [value if isinstance(value, str) else json.dumps(value) for value in spec["choices"]]
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": values})
            continue
        key = "IntegerParameterRanges" if spec["type"] == "int" else "ContinuousParameterRanges"
        ranges[key].append({
            "Name": name, "MinValue": str(spec["low"]), "MaxValue": str(spec["high"]),
            "ScalingType": "Logarithmic" if spec.get("log") else "Linear",
        })
    return {key: value for key, value in ranges.items() if value}


def best_cv_result(summary: Mapping[str, Any], job: Mapping[str, Any], objective: str) -> CVResult:
    """The best trial as a :class:`CVResult`: its tuned hyperparameters, its per-fold scores
    (``fold_<i>:<objective>`` final metrics), their mean (the objective) and spread."""
    import numpy as np

    metrics = {m["MetricName"]: float(m["Value"]) for m in job.get("FinalMetricDataList") or []}
    pattern = re.compile(rf"fold_(\d+):{re.escape(objective)}$")
    folds = sorted((int(match.group(1)), value) for name, value in metrics.items()
                   if (match := pattern.match(name)))
    scores = [value for _, value in folds]
    final = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    mean = metrics.get(f"cv_mean:{objective}", final.get("Value"))
    if mean is None:
        raise JobFailed(f"training job {job.get('TrainingJobName')} reported no cv_mean:{objective}")
    std = metrics.get(f"cv_std:{objective}", float(np.std(scores)) if scores else 0.0)
    return CVResult(hyperparameters=_decode_hyperparameters(summary.get("TunedHyperParameters") or {}),
                    fold_scores=scores, mean=float(mean), std=float(std))


# ---------------------------------------------------------------- training (the refit)
class SageMakerTrainer(_SageMakerJobs, Trainer):
    """A SageMaker training job fitting ``train.py`` on every training row (the refit).

    ``TrainedModel.model_uri`` is the job's ``ModelArtifacts.S3ModelArtifacts`` and its sha256 is
    computed by streaming that object, for the registry's digest check. See
    :class:`_SageMakerJobs` for the parameters.
    """

    kind = "training"
    name_max = TRAINING_NAME_MAX
    waiter_name = "TrainingJobComplete"
    waiter_argument = "TrainingJobName"

    def describe(self, name: str) -> dict[str, Any] | None:
        return or_none(lambda: self.sagemaker.describe_training_job(TrainingJobName=name))

    def stop_job(self, name: str) -> None:
        stop_quietly(lambda: self.sagemaker.stop_training_job(TrainingJobName=name), f"training job {name}")

    @staticmethod
    def status(description: Mapping[str, Any]) -> str:
        return description["TrainingJobStatus"]

    def submit(self, job_name: str, data: TrainingData, hyperparameters: dict[str, Any],
               output_uri: str) -> JobHandle:
        """Create the training job, or re-attach to / reuse the one of that name."""
        from mlops.core.entrypoints import training_module

        train = training_module()
        config = train.training_config(data.to_dict())
        train.check_hyperparameters(config["estimator"], config["problem_type"], hyperparameters)
        return self.attach(job_name, lambda name: self.sagemaker.create_training_job(
            **self.request(name, job_name, data, hyperparameters, output_uri)))

    def request(self, name: str, job_name: str, data: TrainingData, hyperparameters: Mapping[str, Any],
                output_uri: str) -> dict[str, Any]:
        """The ``CreateTrainingJob`` request: the train channel only, so no CV, just the fit."""
        overlap = sorted(set(hyperparameters) & set(data.to_dict()))
        if overlap:
            raise ValueError(f"hyperparameters {overlap} collide with the data config")
        return {
            "TrainingJobName": name,
            "HyperParameters": {**self.data_hyperparameters(data, **hyperparameters),
                                **self.framework_hyperparameters(self.upload_source())},
            "AlgorithmSpecification": {"TrainingImage": self.image_uri, "TrainingInputMode": "File"},
            "RoleArn": self.settings.sagemaker_role_arn,
            "InputDataConfig": [self.channel("train", data.train_uri)],
            "OutputDataConfig": {"S3OutputPath": s3_uri(output_uri)},
            "ResourceConfig": self.resources(),
            "StoppingCondition": self.stopping_condition(),
            **self.spot(output_uri, name),
            "Tags": self.tags(job_name),
        }

    def fit(self, job_name: str, data: TrainingData, hyperparameters: dict[str, Any],
            output_uri: str) -> TrainedModel:
        """Submit, wait (blocking) and collect."""
        handle = self.wait(self.submit(job_name, data, hyperparameters, output_uri))
        return TrainedModel(**self.collect(handle))

    def collect(self, handle: JobHandle) -> dict[str, Any]:
        description = self.completed(handle.name)
        model_uri = description["ModelArtifacts"]["S3ModelArtifacts"]
        sha256 = self.s3_sha256(model_uri)
        log.info("training job %s: %s sha256=%s", handle.name, model_uri, sha256)
        return TrainedModel(handle.name, model_uri, sha256,
                            _decode_hyperparameters(description.get("HyperParameters") or {})).to_dict()
