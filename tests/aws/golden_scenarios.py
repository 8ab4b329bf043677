"""Golden request scenarios: each DAG that calls AWS, run on the aws backend under moto and Stubber.

One function per DAG run (and per branch a run can take), named in :data:`SCENARIOS`. Each
drives the AWS backend's ports in the order the DAG's tasks call them, through the project's
own code: the operators (``CrossValidatedTuningOperator``, ``DeployModelVersionOperator``, ...) are
built with the arguments the DAG gives them (templates resolved by hand) and executed with a
minimal context; the DAGs' ``@task`` bodies are taken from the DAG files themselves and called.
``dag.test()`` is not used: the DAG wiring is covered by ``tests/dags`` and the local
end-to-end test, and a scenario has to interleave the Stubber's answers and the triggers'
event loops with the tasks. ``get_backend()`` and ``get_settings()`` are patched to return
the scenario's ports and settings.

What answers:

* **moto** answers S3, CloudWatch and the SageMaker calls it implements faithfully: the Model
  Registry (groups, packages, list, update), create/describe/delete of models, endpoint configs
  and staging endpoints, and batch transform jobs (Completed at once).
* **botocore's Stubber** answers, on a real client of its own, what moto lacks or cannot play:
  tuning and training jobs (moto completes them at once and invents the best trial), the prod
  blue/green ``UpdateEndpoint`` and an endpoint that is Updating or Failed, Autopilot job
  states and ``ListCandidatesForAutoMLJob``, and ``sagemaker-runtime`` ``InvokeEndpoint``.
  The waiter triggers' ``run()`` executes in an event loop on an aiobotocore client answered
  by aiobotocore's ``AioStubber``.

Either way botocore validates every request against the service model before it is sent.
Reads through ``ObjectStoragePath`` (s3fs; moto cannot answer aiobotocore) are served from
moto's S3 backend directly, so they are not requests and are not in the goldens; the same goes
for the scenarios' own set-up (seeding S3, a decision made "in Studio"), which runs outside
:meth:`World.step`.

Shortened on purpose: the endpoint tests make 3 latency requests (the pipeline config says 50).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.response import StreamingBody
from botocore.stub import Stubber

from testkit.aws_calls import ROOT, Recorder

REGION = "us-east-1"
BUCKET = "mlops-test-bucket"  # conftest.BUCKET: the settings fixture's data root
RUN_ID = "manual__2026-11-21T06:00:00+00:00"
GROUP = "churn-classifier"
STAGING_ENDPOINT = f"{GROUP}-staging"
PROD_ENDPOINT = f"{GROUP}-prod"
T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
GOLDEN_ROWS = [{"State": "KS", "Day Mins": 265.1, "probability": 0.875},
               {"State": "OH", "Day Mins": 161.6, "probability": 0.125}]


# ---------------------------------------------------------------- the scenario's world
class _TaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@dataclass
class World:
    """moto's AWS, the ports on it, the Stubbers for the rest, and the recorder.

    :param settings: aws-backend settings (data root ``s3://mlops-test-bucket/mlops``).
    :param s3: moto S3 client (the bucket exists).
    :param monkeypatch: pytest's, to patch ``get_backend``/``get_settings``/``to_path``.
    """

    settings: Any
    s3: Any
    monkeypatch: Any
    recorder: Recorder = field(default_factory=Recorder)
    stubbers: list[Stubber] = field(default_factory=list)
    backend: Any = None

    def __post_init__(self) -> None:
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)  # moto
        self.cloudwatch = boto3.client("cloudwatch", region_name=REGION)  # moto
        self.monkeypatch.setattr("mlops.backends.get_backend", lambda settings=None: self.backend)
        self.monkeypatch.setattr("mlops.core.settings.get_settings", lambda: self.settings)
        self.monkeypatch.setattr("mlops.core.storage.to_path", _moto_object_path)

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Record the project's requests made inside (set-up stays outside)."""
        with self.recorder.active():
            yield

    def stubbed(self, service: str = "sagemaker") -> tuple[Any, Stubber]:
        """A real client of ``service`` whose answers a Stubber gives (all asserted used)."""
        client = boto3.client(service, region_name=REGION)
        stubber = Stubber(client)
        stubber.activate()
        self.stubbers.append(stubber)
        return client, stubber

    def finish(self) -> None:
        for stubber in self.stubbers:
            stubber.assert_no_pending_responses()
            stubber.deactivate()

    def context(self, dag_id: str, **extra: Any) -> dict[str, Any]:
        return {"dag": SimpleNamespace(dag_id=dag_id), "run_id": RUN_ID, "ti": _TaskInstance(), **extra}

    def put(self, key: str, body: bytes | str) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
        return f"s3://{BUCKET}/{key}"


class _MotoObject:
    """``ObjectStoragePath`` stand-in reading from moto's S3 backend (no request is made)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def open(self, mode: str = "rb", encoding: str | None = None):
        bucket, _, key = self.uri.removeprefix("s3://").partition("/")
        data = io.BytesIO(_moto_s3().get_object(bucket, key).value)
        return data if "b" in mode else io.TextIOWrapper(data, encoding=encoding or "utf-8")

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    def _keys(self) -> list[str]:
        bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
        return [key for key in _moto_s3().get_bucket(bucket).keys.keys() if key.startswith(prefix.rstrip("/") + "/")]

    def exists(self) -> bool:
        bucket, _, key = self.uri.removeprefix("s3://").partition("/")
        return key in _moto_s3().get_bucket(bucket).keys or bool(self._keys())

    def iterdir(self) -> list[_MotoObject]:
        bucket = self.uri.removeprefix("s3://").partition("/")[0]
        return [_MotoObject(f"s3://{bucket}/{key}") for key in sorted(self._keys())]

    def __str__(self) -> str:
        return self.uri

    def read_text(self) -> str:
        with self.open() as handle:
            return handle.read().decode()

    # writes go straight into moto's S3 backend too (a report written through ObjectStoragePath)
    def __truediv__(self, part: str) -> _MotoObject:
        return _MotoObject(f"{self.uri.rstrip('/')}/{part}")

    @property
    def parent(self) -> _MotoObject:
        return _MotoObject(self.uri.rstrip("/").rsplit("/", 1)[0])

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        return None  # S3 has no folders

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        bucket, _, key = self.uri.removeprefix("s3://").partition("/")
        _moto_s3().put_object(bucket, key, text.encode(encoding))
        return len(text)


def _moto_s3():
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["global"]


def _moto_object_path(uri, conn_id=None):
    if isinstance(uri, str) and uri.startswith("s3://"):
        return _MotoObject(uri)
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri)


def scenario_settings(home: Path):
    """The ``settings`` fixture's aws-backend settings (``tests/aws/conftest.py``), home ``home``."""
    from aws.conftest import ROLE

    from mlops.core.settings import Settings

    return Settings(backend="aws", home=home, data_uri=f"s3://{BUCKET}/mlops", aws_conn_id="aws_default",
                    runtime_port=8765, aws_region=REGION, sagemaker_role_arn=ROLE, name_prefix="mlops",
                    instance_type="ml.m5.large")


def training_data(s3):
    """The ``training_data`` fixture's data (``tests/aws/conftest.py``): train file and 3-fold manifest in S3."""
    from aws.conftest import FOLDS, RUN_URI

    from mlops.backends.base import TrainingData

    prefix = RUN_URI.removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/train.parquet", Body=b"PAR1")
    manifest = {"k": 3, "seed": 42, "strategy": "stratified", "dataset_digest": "ab" * 32,
                "n_rows": len(FOLDS), "folds": FOLDS}
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/folds.json", Body=json.dumps(manifest))
    return TrainingData(
        train_uri=f"{RUN_URI}/train.parquet", folds_uri=f"{RUN_URI}/folds.json", target="Churn?",
        feature_columns=["State", "Int'l Plan", "Day Mins", "CustServ Calls"],
        categorical=["State", "Int'l Plan"], problem_type="binary", estimator="gradient_boosting",
        objective="roc_auc", positive_label="True.", seed=42,
    )


@functools.cache
def _dag(dag_id: str):
    """The DAG of ``dags/<dag_id>.py``, loaded once per ``dag_id``."""
    spec = importlib.util.spec_from_file_location(f"golden_dag_{dag_id}", ROOT / "dags" / f"{dag_id}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, dag_id)()


def dag_task(dag_id: str, task_id: str) -> Callable[..., Any]:
    """The Python callable of a ``@task`` of ``dags/<dag_id>.py`` (the DAG file's own code)."""
    return _dag(dag_id).get_task(task_id).python_callable


def _without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def _package_answer(world: World, arn: str) -> dict[str, Any]:
    """moto's ``DescribeModelPackage`` answer, completed to the response shape the Stubber checks."""
    answer = _without_metadata(world.sagemaker.describe_model_package(ModelPackageName=arn))
    answer.setdefault("ModelPackageName", answer.get("ModelPackageGroupName", GROUP))
    answer.setdefault("ModelPackageStatusDetails", {"ValidationStatuses": [], "ImageScanStatuses": []})
    return answer


def _body(text: str) -> StreamingBody:
    data = text.encode()
    return StreamingBody(io.BytesIO(data), len(data))


def _golden_parquet(world: World, key: str) -> str:
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(GOLDEN_ROWS).to_parquet(buffer, index=False)
    return world.put(key, buffer.getvalue())


def _csv_answer(rows: list[dict[str, Any]]) -> dict[str, Any]:
    lines = "".join(f"{'True.' if r['probability'] > 0.5 else 'False.'},{r['probability']}\n" for r in rows)
    return {"Body": _body(lines), "ContentType": "text/csv"}


def _invocations(stubber: Stubber, latency_requests: int) -> None:
    """The answers of a healthy endpoint to ``run_endpoint_tests``, in its order."""
    stubber.add_response("invoke_endpoint", _csv_answer(GOLDEN_ROWS))
    predictions = [{"predicted_label": "True." if r["probability"] > 0.5 else "False.",
                    "probability": r["probability"]} for r in GOLDEN_ROWS]
    stubber.add_response("invoke_endpoint", {"Body": _body(json.dumps({"predictions": predictions})),
                                             "ContentType": "application/json"})
    for row in GOLDEN_ROWS:  # batch/online parity
        stubber.add_response("invoke_endpoint", _csv_answer([row]))
    stubber.add_client_error("invoke_endpoint", "ModelError", "Received client error (400) from primary",
                             http_status_code=424, modeled_fields={"OriginalStatusCode": 400})
    for _ in range(1 + latency_requests):  # serves after the error, then latency
        stubber.add_response("invoke_endpoint", _csv_answer(GOLDEN_ROWS[:1]))


# ---------------------------------------------------------------- ports
def _registry(world: World):
    from moto_fixtures import IMAGE

    from mlops.backends.aws.registry import SageMakerRegistry

    return SageMakerRegistry(world.settings, sagemaker_client=world.sagemaker, s3_client=world.s3, image_uri=IMAGE)


def _hosting(world: World, sagemaker, registry, runtime=None):
    from mlops.backends.aws.hosting import SageMakerHosting

    return SageMakerHosting(world.settings, sagemaker_client=sagemaker, s3_client=world.s3,
                            cloudwatch_client=world.cloudwatch, runtime_client=runtime, registry=registry,
                            waiter_delay=0, waiter_max_attempts=3)


def stub_new_model_and_config(stubber, arn: str, config: str) -> None:
    """Answers for a deploy whose model and endpoint config do not exist yet: both are created."""
    stubber.add_client_error("describe_model", "ValidationException", f'Could not find model "{config}".')
    stubber.add_response("create_model", {"ModelArn": f"{arn}:model/{config}"})
    stubber.add_client_error("describe_endpoint_config", "ValidationException",
                             f'Could not find endpoint configuration "{config}".')
    stubber.add_response("create_endpoint_config", {"EndpointConfigArn": f"{arn}:endpoint-config/{config}"})


def _backend(**ports):
    from mlops.backends import Backend

    return Backend(name="aws", region=REGION, **{
        "tuner": None, "trainer": None, "registry": None, "hosting": None, "automl": None, "transform": None,
        **ports})


def _one_account_stages(world: World) -> dict[str, Any]:
    """The AWS backend's stage ports for the scenario's settings: every stage in the project's own
    account (the default), so a stage's hosting is the backend's own."""
    from mlops.backends.aws import stage_hosting
    from mlops.backends.aws.accounts import SageMakerStageAccess

    return {"stages": SageMakerStageAccess(world.settings), "stage_hosting": stage_hosting(world.settings)}


def _metadata(history_uri: str, report_uri: str, golden_uri: str, best: dict[str, Any]) -> dict[str, Any]:
    """What ``train_model``'s ``lineage`` task gives ``register`` (the code version fixed)."""
    return {"dataset_digest": "ab" * 32, "validation_id": "validation-churn-1",
            "hyperparameters": best["hyperparameters"], "fold_scores": best["fold_scores"],
            "report_uri": report_uri, "golden_uri": golden_uri, "code_version": "0123456789ab",
            "tuning_history_uri": history_uri}


# ---------------------------------------------------------------- train_model
def _train_and_register(world: World, training_data) -> dict[str, Any]:
    """tune -> refit -> register (the policy and the registry approval branches share it)."""
    from aws.conftest import RUN_URI
    from aws.test_training_aws import (
        NOW,
        SPACE,
        summary,
        trainer,
        training_description,
        tuner,
        tuning_description,
    )

    from mlops.backends.aws.training import TUNING_NAME_MAX, job_name_for
    from mlops.core.naming import run_name
    from mlops.operators.sagemaker import (
        CrossValidatedTuningOperator,
        RegisterModelVersionOperator,
        TrainModelOperator,
    )

    sagemaker = world.stubbed()  # (client, stubber), as test_training_aws's tuner() and trainer() take it
    stubber = sagemaker[1]
    registry = _registry(world)
    world.backend = _backend(tuner=tuner(world.settings, sagemaker, world.s3),
                             trainer=trainer(world.settings, sagemaker, world.s3), registry=registry)
    context = world.context("train_model")

    # tune: describe (none) -> create -> TuningJobComplete waiter -> collect (best job, trials, history)
    tuning = job_name_for("mlops", run_name("train_model", RUN_ID, "tune"), TUNING_NAME_MAX)
    best_name = f"{tuning}-002-0badf00d"
    best = summary(best_name, "Completed", 0.91, learning_rate=0.061, max_iter=180, max_leaf_nodes=16)
    stubber.add_client_error("describe_hyper_parameter_tuning_job", "ResourceNotFound",
                             "Amazon SageMaker can't find a tuning job")
    stubber.add_response("create_hyper_parameter_tuning_job",
                         {"HyperParameterTuningJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:"
                                                        f"hyper-parameter-tuning-job/{tuning}"})
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(tuning, "InProgress"))
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(tuning, "Completed"))
    stubber.add_response("describe_hyper_parameter_tuning_job",
                         tuning_description(tuning, "Completed", BestTrainingJob=best))
    stubber.add_response("describe_training_job", training_description(best_name, "Completed", FinalMetricDataList=[
        {"MetricName": f"fold_{i}:roc_auc", "Value": v, "Timestamp": NOW} for i, v in enumerate((0.9, 0.9, 0.93))
    ] + [{"MetricName": "cv_mean:roc_auc", "Value": 0.91, "Timestamp": NOW}]))
    stubber.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": [
        summary(f"{tuning}-001-aaaaaaaa", "Completed", 0.88, learning_rate=0.2, max_iter=60, max_leaf_nodes=8),
        best]})
    with world.step():
        tuned = CrossValidatedTuningOperator(
            task_id="tune", training_data=training_data.to_dict(), search_space=SPACE, n_trials=3,
            output_uri=RUN_URI, deferrable=False).execute(context)

    # refit: describe (none) -> create -> TrainingJobComplete waiter -> collect (artifact digest)
    refit = job_name_for("mlops", run_name("train_model", RUN_ID, "refit"), 63)
    artifact = f"{RUN_URI}/{refit}/output/model.tar.gz"
    world.put(artifact.removeprefix(f"s3://{BUCKET}/"), b"model.tar.gz of the refit")
    stubber.add_client_error("describe_training_job", "ValidationException", "Requested resource not found.")
    stubber.add_response("create_training_job",
                         {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{refit}"})
    stubber.add_response("describe_training_job", training_description(refit, "Completed"))
    hyperparameters = {"learning_rate": "0.061", "max_iter": "180", "max_leaf_nodes": "16"}
    stubber.add_response("describe_training_job", training_description(refit, "Completed",
                                                                       HyperParameters=hyperparameters))
    with world.step():
        model = TrainModelOperator(
            task_id="refit", training_data=training_data.to_dict(), hyperparameters=tuned["best"]["hyperparameters"],
            output_uri=RUN_URI, deferrable=False).execute(context)

    # evaluate writes the report and the golden rows through ObjectStoragePath (set-up here)
    report_uri = world.put("mlops/training/churn/manual_run/model_report.html", "<html>report</html>")
    golden_uri = _golden_parquet(world, "mlops/training/churn/manual_run/golden.parquet")
    metrics = {"holdout_roc_auc": 0.9, "holdout_accuracy": 0.88, "cv_roc_auc_mean": tuned["best"]["mean"],
               "cv_roc_auc_std": tuned["best"]["std"]}

    # register: ensure_group (describe, create) -> register (content-addressed JSON, serving code, package)
    with world.step():
        package = RegisterModelVersionOperator(
            task_id="register", group=GROUP, model=model, metrics=metrics,
            metadata=_metadata(tuned["history_uri"], report_uri, golden_uri, tuned["best"])).execute(context)
    return {"package": package, "metrics": metrics, "report_uri": report_uri, "context": context}


def train_model(world: World, training_data) -> None:
    """``train_model`` with ``approval_mode=policy``: the policy approves in ``approve_model``."""
    from mlops.core.config import load_pipeline
    from mlops.operators.approval import ModelApprovalOperator, evaluate_policy

    run = _train_and_register(world, training_data)
    thresholds = load_pipeline("churn").section("approval")["model"]
    approved, reason = evaluate_policy(thresholds, run["metrics"])
    assert approved, reason
    operator = ModelApprovalOperator(
        task_id="approve_model", subject="Approve churn model?", model_package_arn=run["package"]["arn"],
        evidence=run["metrics"], thresholds=thresholds, report_uri=run["report_uri"], mode="policy")
    with world.step():
        operator.record(approved, "policy", reason)  # what execute_complete records on Approve


def train_model_registry_approval(world: World, training_data) -> None:
    """``train_model`` with ``approval_mode=registry``: the sensor defers to the approval trigger,
    a decision is made in SageMaker Studio, the trigger sees it and the sensor records it."""
    from airflow.sdk.exceptions import TaskDeferred
    from automl_fixtures import run_trigger

    from mlops.backends.base import APPROVED
    from mlops.sensors.sagemaker import ModelPackageApprovalSensor

    run = _train_and_register(world, training_data)
    arn = run["package"]["arn"]
    sensor = ModelPackageApprovalSensor(task_id="wait_for_registry_approval", model_package_arn=arn,
                                        deferrable=True, waiter_delay=0, timeout=7 * 24 * 3600)
    with world.step():
        try:
            sensor.execute(run["context"])
            raise AssertionError("the sensor did not defer on a pending package")
        except TaskDeferred as deferred:
            trigger = deferred.trigger
    pending = _package_answer(world, arn)
    properties = pending["CustomerMetadataProperties"]
    world.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=APPROVED,
                                         ApprovalDescription="reviewed the report in Studio",
                                         CustomerMetadataProperties=properties)
    approved = _package_answer(world, arn)
    with world.step():
        events = run_trigger(trigger, "describe_model_package", [pending, approved])
        decision = sensor.execute_complete(run["context"], events[0])
    assert events == [{"status": "success", "model_package_arn": arn}], events
    assert decision["status"] == APPROVED, decision


# ---------------------------------------------------------------- deploy_model
def _approved_package(world: World, registry, n: int = 0):
    """A registered, Approved version with its golden rows (set-up: train_model's outcome)."""
    from moto_fixtures import register

    _golden_parquet(world, f"mlops/reports/run-{n}/golden.parquet")  # the version's metadata(n)["golden_uri"]
    version = register(registry, world.s3, n)
    return registry.approve(version.arn, "policy", "policy: roc_auc >= 0.8", {"roc_auc": 0.9})


def _captured_prod_traffic(world: World, registry, settings: dict[str, Any]) -> None:
    """Set-up: version 1 served prod, whose data capture recorded two invocations in the hour
    before the run (one answered as the candidate will, one the other way)."""
    from mlops.backends.base import Deployment

    serving = _approved_package(world, registry, 1)
    endpoint = world.backend.hosting.name(PROD_ENDPOINT)  # SageMaker's name: the capture's folder
    registry.record_deployment(Deployment(arn=serving.arn, stage="prod", endpoint_name=endpoint,
                                          endpoint_config="prod-config-before", outcome="succeeded",
                                          deployed_at=(T0 - timedelta(days=7)).isoformat(), account="123456789012"))
    destination = settings["data_capture_config"]["DestinationS3Uri"].removeprefix(f"s3://{BUCKET}/")
    when = T0 - timedelta(minutes=30)
    lines = []
    for row, answered in zip(GOLDEN_ROWS, (0.875, 0.875)):
        lines.append(json.dumps({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                  "data": f"{row['State']},{row['Day Mins']}\n", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                   "data": f"True.,{answered}\n", "encoding": "CSV"}},
            "eventMetadata": {"eventId": row["State"], "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
            "eventVersion": "0"}))
    world.put(f"{destination}/{endpoint}/AllTraffic/{when:%Y/%m/%d/%H}/30-00-000-capture.jsonl",
              "\n".join(lines) + "\n")


def deploy_model(world: World) -> None:
    """``deploy_model`` with ``approval_mode=policy``: staging created on moto, tested through a
    stubbed ``sagemaker-runtime``, prod updated blue/green on the Stubber, staging torn down."""
    from moto_fixtures import described_endpoint

    from mlops.core.assets import approved_model
    from mlops.operators.sagemaker import (
        CheckEndpointOperator,
        DeleteEndpointOperator,
        DeployModelVersionOperator,
    )

    registry = _registry(world)
    registry.ensure_group(GROUP)
    approved = _approved_package(world, registry)
    runtime, invocations = world.stubbed("sagemaker-runtime")
    staging_hosting = _hosting(world, world.sagemaker, registry, runtime)
    world.backend = _backend(registry=registry, hosting=staging_hosting, **_one_account_stages(world))
    # triggered by train_model's approval event, which names the version
    event = SimpleNamespace(extra={"model_package_arn": approved.arn, "group": GROUP, "version": approved.version},
                            timestamp=T0)
    context = world.context("deploy_model", params={"model_package_arn": None, "max_p95_latency_ms": None,
                                                    "approval_mode": "policy"},
                            triggering_asset_events={approved_model(GROUP): [event]},
                            dag_run=SimpleNamespace(run_after=T0), logical_date=None)

    with world.step():
        package = dag_task("deploy_model", "resolve_package")(**context)
        settings = {**dag_task("deploy_model", "endpoint_settings")(), "requests": 3}
        targets = dag_task("deploy_model", "stage_targets")(package, settings, run_id=RUN_ID)
        staging = DeployModelVersionOperator(
            task_id="deploy_staging", stage="staging", package=package, endpoint_name=STAGING_ENDPOINT,
            serverless=settings["serverless"], target=targets["staging"], deferrable=False).execute(context)
    assert {t["account_id"] for t in targets.values()} == {"123456789012"}, targets
    _invocations(invocations, settings["requests"])
    with world.step():
        report = CheckEndpointOperator(
            task_id="test_staging", endpoint=staging, golden_uri=package["metadata"]["golden_uri"],
            requests=settings["requests"], tolerance=settings["tolerance"], target=targets["staging"]).execute(context)
    assert report["passed"], report
    # shadow_replay: the candidate on staging answers prod's captured traffic (version 1 served prod)
    _captured_prod_traffic(world, registry, settings)
    invocations.add_response("invoke_endpoint", _csv_answer(GOLDEN_ROWS[:1]))
    invocations.add_response("invoke_endpoint", _csv_answer(GOLDEN_ROWS[1:]))
    with world.step():
        shadow = dag_task("deploy_model", "shadow_replay")(staging, targets, **context)
    assert shadow["evidence"]["shadow_records"] == 2 and shadow["evidence"]["shadow_disagreement_rate"] == 0.5, shadow
    # approve_prod (policy) makes no AWS call on approval

    prod_client, stubber = world.stubbed()
    prod_hosting = _hosting(world, prod_client, registry, runtime)
    world.backend = replace(world.backend, hosting=prod_hosting)
    from mlops.core.naming import run_name

    config = prod_hosting.name(run_name("deploy_model", RUN_ID, "prod-config"))
    previous = prod_hosting.name(run_name("deploy_model", "scheduled__2026-11-14T06:00:00+00:00", "prod-config"))
    endpoint = prod_hosting.name(PROD_ENDPOINT)
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"
    stub_new_model_and_config(stubber, arn, config)
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, previous))
    stubber.add_response("update_endpoint", {"EndpointArn": f"{arn}:endpoint/{endpoint}"})
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, previous, "Updating",
                         PendingDeploymentSummary={"EndpointConfigName": config, "StartTime": T0}))
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, config))
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, config))
    invocations.add_response("invoke_endpoint", _csv_answer(GOLDEN_ROWS))
    with world.step():
        dag_task("deploy_model", "rollback_alarms")(settings, targets)
        prod = DeployModelVersionOperator(
            task_id="deploy_prod", stage="prod", package=package, endpoint_name=PROD_ENDPOINT,
            instance_type=settings["instance_type"], initial_instance_count=settings["instance_count"],
            data_capture_config=settings["data_capture_config"], deployment_config=settings["deployment_config"],
            target=targets["prod"], deferrable=False).execute(context)
        dag_task("deploy_model", "verify_prod")(prod, package, settings, targets)

    world.backend = replace(world.backend, hosting=staging_hosting)
    with world.step():
        DeleteEndpointOperator(task_id="teardown_staging", endpoint_name=STAGING_ENDPOINT,
                                        target=targets["staging"]).execute(context)


# ---------------------------------------------------------------- deploy_model across three accounts
def _three_accounts(world: World):
    """The accounts of :mod:`accounts_fixtures` under :mod:`testkit.moto_accounts`' checks; the
    world's clients act as the Airflow role from here on. Returns the registry and an Approved
    version whose artifact is where training writes it (the bucket policy shares ``training/``)."""
    from accounts_fixtures import create_accounts, multi_account_pipelines
    from moto_fixtures import IMAGE, metadata

    from mlops.backends.aws.registry import SageMakerRegistry

    create_accounts(world.monkeypatch)
    multi_account_pipelines(world.settings.home / "pipelines", world.monkeypatch)
    world.s3 = boto3.client("s3", region_name=REGION)
    world.sagemaker = boto3.client("sagemaker", region_name=REGION)
    world.cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    registry = SageMakerRegistry(world.settings, sagemaker_client=world.sagemaker, s3_client=world.s3,
                                 image_uri=IMAGE)
    registry.ensure_group(GROUP)
    _golden_parquet(world, "mlops/reports/run-0/golden.parquet")
    key = "mlops/training/churn/manual_run/mlops-train-model-refit/output/model.tar.gz"
    content = b"model.tar.gz of the refit"
    world.put(key, content)
    import hashlib

    version = registry.register(GROUP, f"s3://{BUCKET}/{key}", hashlib.sha256(content).hexdigest(),
                                {"roc_auc": 0.9}, metadata(0))
    return registry, registry.approve(version.arn, "policy", "policy: roc_auc >= 0.8", {"roc_auc": 0.9})


def _stage_hostings(world: World, invocations: dict[str, Any]):
    """``target -> SageMakerHosting`` as the AWS backend makes it (the stage's connection, region and
    execution role, one assumed role per port), with the stage's ``sagemaker-runtime`` answered by
    ``invocations[stage]`` (a Stubber on a client of the stage's own credentials)."""
    from mlops.backends.aws import stage_hosting

    make = stage_hosting(world.settings)

    def hosting(target):
        made = make(target)
        if made is not None:
            made.waiter_delay, made.waiter_max_attempts = 0, 3
            made._use_clients(sagemaker_runtime=invocations[target.stage])
        return made

    return hosting


def deploy_model_three_accounts(world: World) -> None:
    """``deploy_model`` with staging and prod in accounts of their own (``approval_mode=policy``):
    the stage targets are resolved through each stage's connection (STS assumes its deployment
    role), the registry shares its group with the two deployment roles, each stage's role is
    simulated for every call of the deploy and reads the version and its artifact from its own
    account; then staging and prod are created in their accounts with their execution roles
    (prod's rollback alarms and data capture too), tested there, and staging torn down. The
    deployment records stay in the registry's account."""
    from accounts_fixtures import PROD as PROD_ACCOUNT
    from accounts_fixtures import STAGING as STAGING_ACCOUNT

    from mlops.backends.aws.accounts import SageMakerStageAccess
    from mlops.core.assets import approved_model
    from mlops.operators.sagemaker import (
        CheckEndpointOperator,
        DeleteEndpointOperator,
        DeployModelVersionOperator,
    )
    from testkit.moto_accounts import strict_accounts

    with strict_accounts():
        registry, approved = _three_accounts(world)
        stage_runtimes = {}
        for stage in ("staging", "prod"):
            from accounts_fixtures import CONNECTIONS

            from mlops.backends.aws.clients import session

            stage_settings = replace(world.settings, aws_conn_id=CONNECTIONS[stage])
            stage_runtimes[stage] = session(stage_settings).client("sagemaker-runtime", region_name=REGION)
        invocations = {stage: Stubber(client) for stage, client in stage_runtimes.items()}
        for stubber in invocations.values():
            stubber.activate()
            world.stubbers.append(stubber)
        hosting = _hosting(world, world.sagemaker, registry)
        world.backend = replace(_backend(registry=registry, hosting=hosting),
                                stages=SageMakerStageAccess(world.settings),
                                stage_hosting=_stage_hostings(world, stage_runtimes))
        event = SimpleNamespace(extra={"model_package_arn": approved.arn, "group": GROUP,
                                       "version": approved.version}, timestamp=T0)
        context = world.context("deploy_model", params={"model_package_arn": None, "max_p95_latency_ms": None,
                                                        "approval_mode": "policy"},
                                triggering_asset_events={approved_model(GROUP): [event]},
                                dag_run=SimpleNamespace(run_after=T0), logical_date=None)

        with world.step():
            package = dag_task("deploy_model", "resolve_package")(**context)
            settings = {**dag_task("deploy_model", "endpoint_settings")(), "requests": 3}
            targets = dag_task("deploy_model", "stage_targets")(package, settings, run_id=RUN_ID)
        assert {stage: t["account_id"] for stage, t in targets.items()} == {"staging": STAGING_ACCOUNT,
                                                                            "prod": PROD_ACCOUNT}, targets
        with world.step():
            staging = DeployModelVersionOperator(
                task_id="deploy_staging", stage="staging", package=package, endpoint_name=STAGING_ENDPOINT,
                serverless=settings["serverless"], target=targets["staging"], deferrable=False).execute(context)
        _invocations(invocations["staging"], settings["requests"])
        with world.step():
            report = CheckEndpointOperator(
                task_id="test_staging", endpoint=staging, golden_uri=package["metadata"]["golden_uri"],
                requests=settings["requests"], tolerance=settings["tolerance"],
                target=targets["staging"]).execute(context)
        assert report["passed"], report
        invocations["prod"].add_response("invoke_endpoint", _csv_answer(GOLDEN_ROWS))
        with world.step():
            dag_task("deploy_model", "rollback_alarms")(settings, targets)
            prod = DeployModelVersionOperator(
                task_id="deploy_prod", stage="prod", package=package, endpoint_name=PROD_ENDPOINT,
                instance_type=settings["instance_type"], initial_instance_count=settings["instance_count"],
                data_capture_config=settings["data_capture_config"],
                deployment_config=settings["deployment_config"], target=targets["prod"],
                deferrable=False).execute(context)
            dag_task("deploy_model", "verify_prod")(prod, package, settings, targets)
            DeleteEndpointOperator(task_id="teardown_staging", endpoint_name=STAGING_ENDPOINT,
                                            target=targets["staging"]).execute(context)
        assert prod["account"] == PROD_ACCOUNT, prod
        records = registry.deployments()
        assert [(r.stage, r.account, r.outcome) for r in records] == [
            ("prod", PROD_ACCOUNT, "succeeded"), ("staging", STAGING_ACCOUNT, "succeeded")], records


# ---------------------------------------------------------------- rollback_model
def rollback_model(world: World) -> None:
    """``rollback_model`` after prod went Failed on version 2: the task finds the version before
    it in the deployment history, deletes the Failed endpoint (SageMaker cannot update one) and
    creates it again on version 1."""
    from moto_fixtures import described_endpoint

    from mlops.backends.base import Deployment
    from mlops.core.naming import run_name

    registry = _registry(world)
    registry.ensure_group(GROUP)
    first, second = _approved_package(world, registry, 0), _approved_package(world, registry, 1)
    for version, at in ((first, T0 - timedelta(days=2)), (second, T0 - timedelta(days=1))):
        registry.record_deployment(Deployment(
            arn=version.arn, stage="prod", endpoint_name=PROD_ENDPOINT, endpoint_config=f"prod-config-{version.version}",
            outcome="succeeded", deployed_at=at.isoformat(), detail={}, account="123456789012"))
    client, stubber = world.stubbed()
    hosting = _hosting(world, client, registry)
    world.backend = _backend(registry=registry, hosting=hosting, **_one_account_stages(world))

    config = hosting.name(run_name("rollback_model", RUN_ID, "prod-config"))
    endpoint = hosting.name(PROD_ENDPOINT)
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"
    stub_new_model_and_config(stubber, arn, config)
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, "prod-config-2", "Failed",
                                                                 FailureReason="health check failed"))
    stubber.add_response("delete_endpoint", {})
    stubber.add_client_error("describe_endpoint", "ValidationException", f"Could not find endpoint {endpoint}.")
    stubber.add_response("create_endpoint", {"EndpointArn": f"{arn}:endpoint/{endpoint}"})
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, config, "Creating"))
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, config))
    stubber.add_response("describe_endpoint", described_endpoint(endpoint, config))
    with world.step():
        served = dag_task("rollback_model", "rollback_prod")(run_id=RUN_ID)
    assert served["config_name"] == config, served
    assert registry.deployments("prod")[0].detail["rollback_to"] == first.arn


# ---------------------------------------------------------------- autopilot_batch_predict
def _autopilot_names() -> dict[str, str]:
    from mlops.core.naming import resource_name, run_name

    return {"job_name": resource_name("automl", RUN_ID, max_len=32),
            "model_name": run_name("autopilot_batch_predict", RUN_ID, "model"),
            "transform_job": run_name("autopilot_batch_predict", RUN_ID, "transform")}


def _automl_operator(names: dict[str, str], run_uri: str, deferrable: bool):
    from mlops.core.config import load_pipeline
    from mlops.operators.sagemaker import AutoMLJobOperator

    autopilot = load_pipeline("churn").section("autopilot")
    return AutoMLJobOperator(
        task_id="automl_job", job_name=names["job_name"], train_uri=f"{run_uri}/train.parquet", output_uri=run_uri,
        target="Churn?", problem_type="binary", objective=autopilot["objective"],
        time_budget_s=autopilot["time_budget_s"], max_candidates=autopilot["max_candidates"], deferrable=deferrable)


def _automl_job_states(stubber, job: str, states: list[str]) -> None:
    from automl_fixtures import described_job

    stubber.add_client_error("describe_auto_ml_job_v2", "ResourceNotFound", f"Job {job} not found")
    stubber.add_response("create_auto_ml_job_v2",
                         {"AutoMLJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:automl-job/{job}"})
    for state in states:
        stubber.add_response("describe_auto_ml_job_v2", described_job(job, state))


def _candidates(stubber) -> None:
    """One page of candidates (the request's job name and filters are the golden file's to check)."""
    from automl_fixtures import candidate

    stubber.add_response("list_candidates_for_auto_ml_job", {"Candidates": [
        candidate("churn-automl-c-best", 0.93, T0), candidate("churn-automl-c-2", 0.91, T0)]})


def autopilot_batch_predict(world: World) -> None:
    """``autopilot_batch_predict`` with a triggerer: the AutoML job defers to its V2 trigger, then
    the best candidate becomes a model and a batch transform (moto) scores the prepared CSV."""
    from airflow.sdk.exceptions import TaskDeferred
    from automl_fixtures import described_job, run_trigger

    from mlops.backends.aws.automl import AutopilotAutoML
    from mlops.backends.aws.transform import SageMakerBatchTransform
    from mlops.core.config import load_pipeline
    from mlops.operators.sagemaker import AutoMLCandidateModelOperator, BatchTransformOperator

    names = _autopilot_names()
    job = names["job_name"]
    run_uri = f"s3://{BUCKET}/mlops/autopilot/churn/manual_run"
    world.put("mlops/autopilot/churn/manual_run/train.parquet", b"PAR1")
    world.put("mlops/autopilot/churn/manual_run/transform/input/part-00000.csv", "c1,KS,265.1\nc2,OH,161.6\n")
    client, stubber = world.stubbed()
    automl = AutopilotAutoML(world.settings, client=client, waiter_delay=0)
    transform = SageMakerBatchTransform(world.settings, client=world.sagemaker, s3_client=world.s3, waiter_delay=0)
    world.backend = _backend(automl=automl, transform=transform)
    context = world.context("autopilot_batch_predict")

    _automl_job_states(stubber, job, [])
    operator = _automl_operator(names, run_uri, deferrable=True)
    with world.step():
        try:
            operator.execute(context)
            raise AssertionError("the AutoML operator did not defer on a new job")
        except TaskDeferred as deferred:
            trigger, handle = deferred.trigger, deferred.kwargs["handle"]
    stubber.add_response("describe_auto_ml_job_v2", described_job(job, "Completed"))
    _candidates(stubber)
    with world.step():
        events = run_trigger(trigger, "describe_auto_ml_job_v2",
                             [described_job(job, "InProgress"), described_job(job, "Completed")])
        result = operator.execute_complete(context, events[0], handle=handle)
    assert events[0]["status"] == "success", events

    keys = load_pipeline("churn").section("autopilot")["response_keys"]
    stubber.add_response("describe_auto_ml_job_v2", described_job(job, "Completed"))
    _candidates(stubber)
    _candidates(stubber)
    stubber.add_client_error("describe_model", "ValidationException", f'Could not find model "{names["model_name"]}".')
    stubber.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:{REGION}:123456789012:model/x"})
    with world.step():
        model = AutoMLCandidateModelOperator(
            task_id="create_model", job_name=result["job_name"], model_name=names["model_name"],
            candidate_name=None, response_keys=keys).execute(context)

    output_filter = "$[0," + ",".join(str(-i) for i in range(len(keys), 0, -1)) + "]"
    world.put("mlops/autopilot/churn/manual_run/transform/output/part-00000.csv.out",
              "c1,True.,0.9,True.;False.,0.9;0.1\nc2,False.,0.2,True.;False.,0.2;0.8\n")
    with world.step():
        scored = BatchTransformOperator(
            task_id="batch_transform", job_name=names["transform_job"], model_name=model["model_name"],
            input_uri=f"{run_uri}/transform/input", output_uri=f"{run_uri}/transform/output",
            input_filter="$[1:]", join_source=True, output_filter=output_filter, deferrable=False).execute(context)
    assert (scored["input_rows"], scored["output_rows"]) == (2, 2), scored


def autopilot_batch_predict_blocking(world: World) -> None:
    """``autopilot_batch_predict``'s AutoML task without a triggerer (``deferrable=False``): the
    task blocks on the same waiter model (only that task; the rest is as with a triggerer)."""
    from mlops.backends.aws.automl import AutopilotAutoML

    names = _autopilot_names()
    job = names["job_name"]
    client, stubber = world.stubbed()
    world.backend = _backend(automl=AutopilotAutoML(world.settings, client=client, waiter_delay=0))
    _automl_job_states(stubber, job, ["InProgress", "Completed", "Completed"])
    _candidates(stubber)
    with world.step():
        result = _automl_operator(names, f"s3://{BUCKET}/mlops/autopilot/churn/manual_run",
                                  deferrable=False).execute(world.context("autopilot_batch_predict"))
    assert result["candidates"][0]["name"] == "churn-automl-c-best", result


# ---------------------------------------------------------------- killed tasks
def kill_in_wait(client, operation: str, status_key: str, operator) -> None:
    """Call ``operator.on_kill()`` right after the first answer of ``operation`` saying
    InProgress: what Airflow does to a task killed while it blocks in its wait (the task
    runner's SIGTERM handler runs ``on_kill`` in the task's thread, wherever it was)."""
    fired: list[bool] = []

    def handler(parsed=None, **_):
        if not fired and (parsed or {}).get(status_key) == "InProgress":
            fired.append(True)
            operator.on_kill()

    client.meta.events.register(f"after-call.sagemaker.{operation}", handler)


def fails_stopped(world: World, operator, context, what: str, error: type[Exception]) -> None:
    """Run the killed ``operator`` as a recorded step: it must fail with ``error`` saying its job Stopped."""
    with world.step():
        try:
            operator.execute(context)
            raise AssertionError(f"the killed {what} task did not fail")
        except error as err:
            assert "Stopped" in str(err), err


def _deferred(operator, context):
    from airflow.sdk.exceptions import TaskDeferred

    try:
        operator.execute(context)
    except TaskDeferred as deferred:
        return deferred.trigger
    raise AssertionError(f"{operator.task_id} did not defer")


def train_model_killed(world: World, training_data) -> None:
    """``train_model``'s tune and refit tasks killed: each first while it blocks in its wait (the
    operator stops its job, the waiter sees it Stopped, the task fails), then its retry, which
    starts the job under the next name and defers, killed by a person (the trigger stops it)."""
    from automl_fixtures import run_on_kill
    from aws.conftest import RUN_URI
    from aws.test_training_aws import SPACE, trainer, training_description, tuner, tuning_description

    from mlops.backends.aws.training import TRAINING_NAME_MAX, TUNING_NAME_MAX, JobFailed, job_name_for
    from mlops.core.naming import attempt_name, run_name
    from mlops.operators.sagemaker import CrossValidatedTuningOperator, TrainModelOperator

    sagemaker = world.stubbed()
    client, stubber = sagemaker
    world.backend = _backend(tuner=tuner(world.settings, sagemaker, world.s3),
                             trainer=trainer(world.settings, sagemaker, world.s3))
    context = world.context("train_model")
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"

    tuning = job_name_for("mlops", run_name("train_model", RUN_ID, "tune"), TUNING_NAME_MAX)
    stubber.add_client_error("describe_hyper_parameter_tuning_job", "ResourceNotFound", "no such tuning job")
    stubber.add_response("create_hyper_parameter_tuning_job",
                         {"HyperParameterTuningJobArn": f"{arn}:hyper-parameter-tuning-job/{tuning}"})
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(tuning, "InProgress"))
    stubber.add_response("stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": tuning})
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(tuning, "Stopping"))
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(tuning, "Stopped"))

    def tune(deferrable: bool) -> CrossValidatedTuningOperator:
        return CrossValidatedTuningOperator(task_id="tune", training_data=training_data.to_dict(), search_space=SPACE,
                                       n_trials=3, output_uri=RUN_URI, deferrable=deferrable)

    killed = tune(deferrable=False)
    kill_in_wait(client, "DescribeHyperParameterTuningJob", "HyperParameterTuningJobStatus", killed)
    fails_stopped(world, killed, context, "tuning", JobFailed)
    retry = attempt_name(tuning, 2)
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(tuning, "Stopped"))
    stubber.add_client_error("describe_hyper_parameter_tuning_job", "ResourceNotFound", "no such tuning job")
    stubber.add_response("create_hyper_parameter_tuning_job",
                         {"HyperParameterTuningJobArn": f"{arn}:hyper-parameter-tuning-job/{retry}"})
    with world.step():
        run_on_kill(_deferred(tune(deferrable=True), context), "stop_hyper_parameter_tuning_job",
                    {"HyperParameterTuningJobName": retry})

    refit = job_name_for("mlops", run_name("train_model", RUN_ID, "refit"), TRAINING_NAME_MAX)
    stubber.add_client_error("describe_training_job", "ValidationException", "Requested resource not found.")
    stubber.add_response("create_training_job", {"TrainingJobArn": f"{arn}:training-job/{refit}"})
    stubber.add_response("describe_training_job", training_description(refit, "InProgress"))
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": refit})
    stubber.add_response("describe_training_job", training_description(refit, "Stopping"))
    stubber.add_response("describe_training_job", training_description(refit, "Stopped"))

    def fit(deferrable: bool) -> TrainModelOperator:
        return TrainModelOperator(task_id="refit", training_data=training_data.to_dict(),
                                         hyperparameters={"learning_rate": 0.1, "max_iter": 100,
                                                          "max_leaf_nodes": 16},
                                         output_uri=RUN_URI, deferrable=deferrable)

    killed = fit(deferrable=False)
    kill_in_wait(client, "DescribeTrainingJob", "TrainingJobStatus", killed)
    fails_stopped(world, killed, context, "refit", JobFailed)
    retry = attempt_name(refit, 2)
    stubber.add_response("describe_training_job", training_description(refit, "Stopped"))
    stubber.add_client_error("describe_training_job", "ValidationException", "Requested resource not found.")
    stubber.add_response("create_training_job", {"TrainingJobArn": f"{arn}:training-job/{retry}"})
    with world.step():
        run_on_kill(_deferred(fit(deferrable=True), context), "stop_training_job", {"TrainingJobName": retry})


def autopilot_batch_predict_killed(world: World) -> None:
    """``autopilot_batch_predict``'s AutoML and transform tasks killed: the AutoML job of a run
    whose task deferred, by a person (its trigger stops the job), and of another run while it
    blocks (the operator stops it); the transform first while it blocks, then its retry, which
    starts ``-r2`` and defers, by a person."""
    from automl_fixtures import described_job, run_on_kill

    from mlops.backends.aws.automl import AutopilotAutoML
    from mlops.backends.aws.transform import SageMakerBatchTransform, attempt_names
    from mlops.operators.sagemaker import BatchTransformOperator

    names = _autopilot_names()
    run_uri = f"s3://{BUCKET}/mlops/autopilot/churn/manual_run"
    client, stubber = world.stubbed()
    automl = AutopilotAutoML(world.settings, client=client, waiter_delay=0)
    transform = SageMakerBatchTransform(world.settings, client=client, s3_client=world.s3, waiter_delay=0)
    world.backend = _backend(automl=automl, transform=transform)
    context = world.context("autopilot_batch_predict")

    job = automl.job_name(names["job_name"])
    _automl_job_states(stubber, job, [])
    with world.step():
        trigger = _deferred(_automl_operator(names, run_uri, deferrable=True), context)
        run_on_kill(trigger, "stop_auto_ml_job", {"AutoMLJobName": job})

    other = {**names, "job_name": "churn-automl-rerun"}
    other_job = automl.job_name(other["job_name"])
    _automl_job_states(stubber, other_job, ["InProgress"])
    stubber.add_response("stop_auto_ml_job", {}, {"AutoMLJobName": other_job})
    stubber.add_response("describe_auto_ml_job_v2", described_job(other_job, "Stopping"))
    stubber.add_response("describe_auto_ml_job_v2", described_job(other_job, "Stopped", "Stopped by user request"))
    stubber.add_response("describe_auto_ml_job_v2", described_job(other_job, "Stopped", "Stopped by user request"))
    killed = _automl_operator(other, run_uri, deferrable=False)
    kill_in_wait(client, "DescribeAutoMLJobV2", "AutoMLJobStatus", killed)
    fails_stopped(world, killed, context, "AutoML", RuntimeError)

    transform_names = attempt_names(transform.job_name(names["transform_job"]), 2)
    model = transform.model_name(names["model_name"])

    def score(deferrable: bool) -> BatchTransformOperator:
        keys = 4
        return BatchTransformOperator(
            task_id="batch_transform", job_name=names["transform_job"], model_name=model,
            input_uri=f"{run_uri}/transform/input", output_uri=f"{run_uri}/transform/output",
            input_filter="$[1:]", join_source=True,
            output_filter="$[0," + ",".join(str(-i) for i in range(keys, 0, -1)) + "]", deferrable=deferrable)

    first = score(deferrable=False)
    request = transform.job_request(transform_names[0], model, f"{run_uri}/transform/input",
                                    f"{run_uri}/transform/output", input_filter=first.input_filter, join_source=True,
                                    output_filter=first.output_filter)
    stubber.add_client_error("describe_transform_job", "ValidationException", "Could not find job")
    stubber.add_response("create_transform_job", {"TransformJobArn": f"arn:aws:sagemaker:{REGION}:1:transform-job/x"})
    for status in ("InProgress", "Stopping", "Stopped"):
        if status == "Stopping":
            stubber.add_response("stop_transform_job", {}, {"TransformJobName": transform_names[0]})
        stubber.add_response("describe_transform_job", _transform_description(request, status))
    stubber.add_response("describe_transform_job", _transform_description(request, "Stopped"))
    kill_in_wait(client, "DescribeTransformJob", "TransformJobStatus", first)
    fails_stopped(world, first, context, "transform", RuntimeError)
    stubber.add_response("describe_transform_job", _transform_description(request, "Stopped"))
    stubber.add_client_error("describe_transform_job", "ValidationException", "Could not find job")
    stubber.add_response("create_transform_job", {"TransformJobArn": f"arn:aws:sagemaker:{REGION}:1:transform-job/y"})
    with world.step():
        run_on_kill(_deferred(score(deferrable=True), context), "stop_transform_job",
                    {"TransformJobName": transform_names[1]})


# ---------------------------------------------------------------- monitor_model
def _serving_with_baseline(world: World, registry, n: int, deployed_at: datetime, frame_seed: int,
                           features: list[str] | None = None, account: str = "123456789012"):
    """Set-up: version ``n`` registered with its monitoring baseline of ``features`` (default all
    four) in S3, Approved, recorded as serving prod (SageMaker's endpoint name) since ``deployed_at``."""
    from moto_fixtures import metadata, put_artifact

    from mlops.backends.base import Deployment
    from mlops.ml.monitoring import baseline_constraints, baseline_statistics
    from testkit.monitoring import CATEGORICAL, FEATURES, churn_like_frame

    statistics = baseline_statistics(churn_like_frame(2000, seed=frame_seed), features or FEATURES, CATEGORICAL)
    base = f"mlops/training/churn/run-{n}/baseline"
    links = {"baseline_statistics_uri": world.put(f"{base}/statistics.json", json.dumps(statistics)),
             "baseline_constraints_uri": world.put(f"{base}/constraints.json",
                                                   json.dumps(baseline_constraints(statistics)))}
    uri, sha = put_artifact(world.s3, f"{GROUP}-{n}", f"model {GROUP} {n}".encode())
    version = registry.register(GROUP, uri, sha, {"roc_auc": 0.9, "accuracy": 0.88}, {**metadata(n), **links})
    registry.approve(version.arn, "policy", "policy: roc_auc >= 0.8", {"roc_auc": 0.9})
    registry.record_deployment(Deployment(arn=version.arn, stage="prod", endpoint_name=f"mlops-{PROD_ENDPOINT}",
                                          endpoint_config=f"prod-config-{n}", outcome="succeeded",
                                          deployed_at=deployed_at.isoformat(), account=account))
    return version, links


def _execution_reports(world: World, monitor, scheduled: datetime) -> str:
    """Set-up: what a data-quality execution scheduled at ``scheduled`` wrote (shifted traffic:
    its statistics, and Model Monitor's violations on ``charges`` and ``plan``), under the
    output its processing job names (returned)."""
    from mlops.ml.monitoring import baseline_statistics
    from testkit.monitoring import CATEGORICAL, FEATURES, churn_like_frame

    folder = (f"{monitor.output_uri()}/mlops-{PROD_ENDPOINT}/{monitor.schedule_name(PROD_ENDPOINT)}/"
              f"{scheduled:%Y/%m/%d/%H}").removeprefix(f"s3://{BUCKET}/")
    statistics = baseline_statistics(churn_like_frame(400, seed=9, shift=True), FEATURES, CATEGORICAL)
    world.put(f"{folder}/statistics.json", json.dumps(statistics))
    violations = [{"feature_name": name, "constraint_check_type": "baseline_drift_check",
                   "description": f"Baseline drift distance: {distance} exceeds threshold: 0.1"}
                  for name, distance in (("charges", 0.71), ("plan", 0.48))]
    world.put(f"{folder}/constraint_violations.json", json.dumps({"violations": violations}))
    return f"s3://{BUCKET}/{folder}"


def _monitoring_pipelines(world: World, data_quality: str, folder: Path | None = None) -> None:
    """Set-up: the churn config (as it is in ``MLOPS_PIPELINES_DIR`` already, else the shipped one)
    with ``monitoring.aws.data_quality`` set, in ``folder`` (``MLOPS_PIPELINES_DIR`` points there)."""
    import yaml

    from mlops.core.config import load_pipeline

    raw = json.loads(json.dumps(load_pipeline("churn").raw))  # a copy
    raw.setdefault("monitoring", {}).setdefault("aws", {})["data_quality"] = data_quality
    folder = folder or world.settings.home / "pipelines-monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "churn.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    world.monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(folder))


def _traffic_in_s3(world: World, start: datetime, rows: int, shift: bool, wrong: bool) -> None:
    """Set-up: what the prod endpoint captured in S3 from ``start`` (one record a second, the
    SageMaker capture layout under the data root) and the ground truth uploaded for it; ``wrong``:
    every answered probability is on the wrong side of its label (ROC AUC 0)."""
    from testkit.monitoring import capture_jsonl, churn_like_frame, ground_truth_jsonl

    frame = churn_like_frame(rows, seed=11, shift=shift)
    basic = (frame["plan"] == "basic").to_numpy()
    probabilities = [0.9 if b else 0.1 for b in basic]
    labels = [("False." if b else "True.") if wrong else ("True." if b else "False.") for b in basic]
    hour = f"{start:%Y/%m/%d/%H}"
    capture = f"mlops/monitoring/data-capture/{PROD_ENDPOINT}/mlops-{PROD_ENDPOINT}/AllTraffic"  # Destination/endpoint/variant
    world.put(f"{capture}/{hour}/capture-0.jsonl",
              capture_jsonl(frame, start, probabilities))
    world.put(f"mlops/monitoring/ground-truth/{PROD_ENDPOINT}/{hour}/labels.jsonl", ground_truth_jsonl(labels))


def _described_schedule(name: str, definition: str, status: str = "Scheduled") -> dict[str, Any]:
    """A DescribeMonitoringSchedule answer (moto has no monitoring schedules: written here, its
    shape checked by the Stubber against botocore's model)."""
    return {"MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:123456789012:monitoring-schedule/{name}",
            "MonitoringScheduleName": name, "MonitoringScheduleStatus": status, "MonitoringType": "DataQuality",
            "CreationTime": T0, "LastModifiedTime": T0,
            "MonitoringScheduleConfig": {"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                                         "MonitoringJobDefinitionName": definition, "MonitoringType": "DataQuality"},
            "EndpointName": f"mlops-{PROD_ENDPOINT}"}


def _moto_definition_answer(world: World, request: dict[str, Any]) -> dict[str, Any]:
    """moto's DescribeDataQualityJobDefinition answer for the definition ``request`` created
    (set-up: replayed into moto, which implements job definitions)."""
    world.sagemaker.create_data_quality_job_definition(**request)
    return _without_metadata(world.sagemaker.describe_data_quality_job_definition(
        JobDefinitionName=request["JobDefinitionName"]))


def _scheduled_monitor_run(world: World, monitor_task, start: datetime) -> dict[str, Any]:
    """``monitor_model``'s monitor task as the scheduler runs it for the hour from ``start``."""
    context = world.context("monitor_model", params={"since": None, "until": None, "lookback_hours": 1},
                            data_interval_start=start, data_interval_end=start + timedelta(hours=1))
    context["run_id"] = f"scheduled__{start.isoformat()}"
    with world.step():
        return monitor_task(**context)


def monitor_model(world: World) -> None:
    """``monitor_model``'s ``monitor`` task, three hourly runs on the aws backend: the first creates
    the Model Monitor definition, schedule and alarms (no execution has completed: ``no_report``);
    the second changes nothing and reads the newest completed execution's reports (drift on
    ``charges`` and ``plan``); after prod's version changed, the third creates the new baseline's
    definition, points the schedule at it and deletes the old one.

    What answers: the monitoring schedule and execution calls are the Stubber's (moto 5.2 has no
    monitoring schedules: those answers replay this project's reading of the API reference, shape-
    checked against botocore's model); the job definition's describe is moto's own answer to the
    recorded create; CloudWatch alarms and S3 are moto's.
    """
    from mlops.backends.aws.model_monitor import SageMakerDataQualityMonitor
    from testkit.monitoring import described_processing_job

    _monitoring_pipelines(world, "model_monitor")
    registry = _registry(world)
    registry.ensure_group(GROUP)
    first, _ = _serving_with_baseline(world, registry, 1, T0 - timedelta(days=7), frame_seed=1)
    client, stubber = world.stubbed()
    monitor = SageMakerDataQualityMonitor(world.settings, sagemaker_client=client, cloudwatch_client=world.cloudwatch)
    world.backend = _backend(registry=registry, monitoring=monitor, **_one_account_stages(world))
    monitor_task = dag_task("monitor_model", "monitor")
    schedule = monitor.schedule_name(PROD_ENDPOINT)
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"

    def run(start: datetime) -> dict[str, Any]:
        return _scheduled_monitor_run(world, monitor_task, start)

    # 1. first run: nothing exists yet
    stubber.add_client_error("describe_monitoring_schedule", "ResourceNotFound",
                             f"Could not find monitoring schedule {schedule}")
    stubber.add_client_error("describe_data_quality_job_definition", "ResourceNotFound",
                             "Could not find job definition")
    stubber.add_response("create_data_quality_job_definition", {"JobDefinitionArn": f"{arn}:data-quality-job-definition/x"})
    stubber.add_response("create_monitoring_schedule", {"MonitoringScheduleArn": f"{arn}:monitoring-schedule/{schedule}"})
    stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": []})
    created = run(T0)
    assert (created["status"], created["schedule"]["change"]) == ("no_report", "created"), created
    definition = created["schedule"]["job_definition_name"]
    (request,) = [c.params for c in world.recorder.calls if c.operation == "CreateDataQualityJobDefinition"]
    assert request["DataQualityBaselineConfig"]["StatisticsResource"]["S3Uri"] == \
        first.metadata["baseline_statistics_uri"]

    # 2. an hour later: the same baseline; the execution of T0 + 2 h has completed, with violations;
    # labels arrived for the window's capture (model quality is computed from S3, not by Model Monitor)
    scheduled = T0 + timedelta(hours=2)
    _traffic_in_s3(world, T0 + timedelta(hours=1), 150, shift=True, wrong=True)
    output = _execution_reports(world, monitor, scheduled)
    job = f"{arn}:processing-job/model-monitoring-202611210800-0a1b2c3d"
    stubber.add_response("describe_monitoring_schedule", _described_schedule(schedule, definition))
    stubber.add_response("describe_data_quality_job_definition", _moto_definition_answer(world, request))
    stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [
        {"MonitoringScheduleName": schedule, "ScheduledTime": scheduled + timedelta(hours=1), "CreationTime": T0,
         "LastModifiedTime": T0, "MonitoringExecutionStatus": "InProgress", "EndpointName": f"mlops-{PROD_ENDPOINT}"},
        {"MonitoringScheduleName": schedule, "ScheduledTime": scheduled, "CreationTime": T0, "LastModifiedTime": T0,
         "MonitoringExecutionStatus": "CompletedWithViolations", "EndpointName": f"mlops-{PROD_ENDPOINT}",
         "ProcessingJobArn": job}]})
    stubber.add_response("describe_processing_job", described_processing_job(job, output, scheduled))
    same = run(T0 + timedelta(hours=1))
    assert (same["schedule"]["change"], same["status"], same["drift"]) == ("unchanged", "violations", True), same
    assert sorted(same["drifted_features"]) == ["charges", "plan"], same
    assert same["execution"]["window"]["until"] == scheduled.isoformat()
    assert same["model_quality"] == {"labelled_rows": 150, "accuracy": 0.0, "roc_auc": 0.0}, same
    assert same["violations"] == 3, same  # charges, plan (Model Monitor's) and roc_auc below approval's 0.8

    # 3. prod's version changed (retrained without "calls"): a new baseline replaces the definition
    # under the one schedule, and the alarm of the feature it no longer has goes
    second, _ = _serving_with_baseline(world, registry, 2, T0 + timedelta(hours=2, minutes=30), frame_seed=2,
                                       features=["plan", "tenure", "charges"])
    stubber.add_response("describe_monitoring_schedule", _described_schedule(schedule, definition))
    stubber.add_client_error("describe_data_quality_job_definition", "ResourceNotFound",
                             "Could not find job definition")
    stubber.add_response("create_data_quality_job_definition", {"JobDefinitionArn": f"{arn}:data-quality-job-definition/y"})
    stubber.add_response("update_monitoring_schedule", {"MonitoringScheduleArn": f"{arn}:monitoring-schedule/{schedule}"})
    stubber.add_response("delete_data_quality_job_definition", {})
    stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": []})
    replaced = run(T0 + timedelta(hours=3))
    assert replaced["schedule"]["change"] == "replaced" and replaced["model_package_arn"] == second.arn, replaced
    assert replaced["schedule"]["job_definition_name"] != definition
    alarms = world.cloudwatch.describe_alarms(AlarmNamePrefix=monitor.alarm_prefix(PROD_ENDPOINT))["MetricAlarms"]
    assert [a["MetricName"] for a in alarms] == [f"feature_baseline_drift_{f}" for f in ("plan", "tenure", "charges")]


def monitor_model_own_check(world: World) -> None:
    """``monitor_model``'s ``monitor`` task on the aws backend with ``monitoring.aws.data_quality:
    own_check`` (the default): no Model Monitor call at all (the managed port is a Stubber with no
    answers); the schedule is recorded under the data root and the S3 capture of the window is
    checked against the serving version's baseline, as the local backend does, with model quality
    from the ground truth. Two runs: shifted traffic is drift on ``charges`` and ``plan``; the
    next hour's training-like traffic with right answers is not, and the record is unchanged."""
    from mlops.backends.aws import own_check_record
    from mlops.backends.aws.model_monitor import SageMakerDataQualityMonitor
    from mlops.ml.capture_monitor import CaptureDataQualityMonitor

    _monitoring_pipelines(world, "own_check")
    registry = _registry(world)
    registry.ensure_group(GROUP)
    version, _ = _serving_with_baseline(world, registry, 1, T0 - timedelta(days=7), frame_seed=1)
    client, _stubber = world.stubbed()  # any Model Monitor call would fail: nothing is stubbed
    managed = SageMakerDataQualityMonitor(world.settings, sagemaker_client=client, cloudwatch_client=world.cloudwatch)
    world.backend = _backend(registry=registry, monitoring=managed,
                             own_monitoring=CaptureDataQualityMonitor(own_check_record(world.settings)),
                             **_one_account_stages(world))
    monitor_task = dag_task("monitor_model", "monitor")

    def run(start: datetime) -> dict[str, Any]:
        return _scheduled_monitor_run(world, monitor_task, start)

    _traffic_in_s3(world, T0, 300, shift=True, wrong=True)
    drifted = run(T0)
    assert (drifted["status"], drifted["drift"], drifted["schedule"]["change"]) == ("violations", True, "created")
    assert sorted(drifted["drifted_features"]) == ["charges", "plan"], drifted
    assert drifted["model_quality"]["roc_auc"] == 0.0 and drifted["execution"]["by"] == "monitor_model", drifted
    assert drifted["model_package_arn"] == version.arn and drifted["rows"] == 300
    _traffic_in_s3(world, T0 + timedelta(hours=1), 300, shift=False, wrong=False)
    quiet = run(T0 + timedelta(hours=1))
    assert (quiet["status"], quiet["drift"], quiet["schedule"]["change"]) == ("ok", False, "unchanged"), quiet
    assert quiet["model_quality"]["roc_auc"] == 1.0, quiet
    assert [c.operation for c in world.recorder.calls if c.service in ("sagemaker", "cloudwatch")
            and c.operation != "DescribeModelPackage"] == []  # only the registry's describes


def monitor_model_three_accounts(world: World) -> None:
    """``monitor_model`` with prod in an account of its own (the accounts of ``deploy_model--three-
    accounts``), first with Model Monitor (``monitoring.aws.data_quality: model_monitor``): the
    definition, schedule, executions, processing job and violation alarms are made and read in
    prod's account, through prod's connection (its deployment role), the definition passing prod's
    execution role; the registry, the baseline, the reports and the S3 capture and ground truth
    (model quality) are read in the data-science account. Then with the own check (the default):
    nothing at all goes to prod's account.

    What answers: prod's SageMaker calls are a Stubber on a client of prod's credentials (moto 5.2
    has no monitoring schedules), so their account is the one those credentials land in; CloudWatch,
    STS and S3 are moto's, under :func:`testkit.moto_accounts.strict_accounts`."""
    from accounts_fixtures import CONNECTIONS, execution_role
    from accounts_fixtures import PROD as PROD_ACCOUNT

    from mlops.backends.aws import own_check_record, stage_monitoring
    from mlops.backends.aws.accounts import SageMakerStageAccess
    from mlops.backends.aws.clients import session
    from mlops.backends.base import MonitoringBaseline
    from mlops.ml.capture_monitor import CaptureDataQualityMonitor
    from testkit.monitoring import described_processing_job
    from testkit.moto_accounts import strict_accounts

    with strict_accounts():
        registry, _ = _three_accounts(world)
        _monitoring_pipelines(world, "model_monitor")
        version, links = _serving_with_baseline(world, registry, 1, T0 - timedelta(days=7), frame_seed=1,
                                                account=PROD_ACCOUNT)
        prod_client = session(replace(world.settings, aws_conn_id=CONNECTIONS["prod"])).client(
            "sagemaker", region_name=REGION)
        stubber = Stubber(prod_client)
        stubber.activate()
        world.stubbers.append(stubber)
        make = stage_monitoring(world.settings)

        def prod_monitoring(target):
            made = make(target)
            if made is not None:
                made._use_clients(sagemaker=prod_client)
            return made

        world.backend = _backend(registry=registry, stages=SageMakerStageAccess(world.settings),
                                 stage_monitoring=prod_monitoring,
                                 own_monitoring=CaptureDataQualityMonitor(own_check_record(world.settings)))
        monitor_task = dag_task("monitor_model", "monitor")

        def run(start: datetime) -> dict[str, Any]:
            return _scheduled_monitor_run(world, monitor_task, start)

        from mlops.backends.aws.model_monitor import SageMakerDataQualityMonitor

        names = SageMakerDataQualityMonitor(world.settings)  # names only: the same in every account
        schedule = names.schedule_name(PROD_ENDPOINT)
        definition = names.definition_name(PROD_ENDPOINT, MonitoringBaseline(
            version.arn, links["baseline_statistics_uri"], links["baseline_constraints_uri"]))
        arn = f"arn:aws:sagemaker:{REGION}:{PROD_ACCOUNT}"
        scheduled = T0 + timedelta(hours=1)
        output = _execution_reports(world, names, scheduled)
        _traffic_in_s3(world, T0, 150, shift=True, wrong=True)
        job = f"{arn}:processing-job/model-monitoring-202611210700-0a1b2c3d"
        stubber.add_client_error("describe_monitoring_schedule", "ResourceNotFound",
                                 f"Could not find monitoring schedule {schedule}")
        stubber.add_client_error("describe_data_quality_job_definition", "ResourceNotFound",
                                 "Could not find job definition")
        stubber.add_response("create_data_quality_job_definition",
                             {"JobDefinitionArn": f"{arn}:data-quality-job-definition/{definition}"})
        stubber.add_response("create_monitoring_schedule",
                             {"MonitoringScheduleArn": f"{arn}:monitoring-schedule/{schedule}"})
        stubber.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [
            {"MonitoringScheduleName": schedule, "ScheduledTime": scheduled, "CreationTime": T0,
             "LastModifiedTime": T0, "MonitoringExecutionStatus": "CompletedWithViolations",
             "EndpointName": f"mlops-{PROD_ENDPOINT}", "ProcessingJobArn": job}]})
        stubber.add_response("describe_processing_job", described_processing_job(job, output, scheduled))
        managed = run(T0)
        assert (managed["status"], managed["schedule"]["change"]) == ("violations", "created"), managed
        assert managed["model_quality"]["roc_auc"] == 0.0 and managed["violations"] == 3, managed
        (request,) = [c for c in world.recorder.calls if c.operation == "CreateDataQualityJobDefinition"]
        assert (request.account, request.params["RoleArn"]) == (PROD_ACCOUNT, execution_role("prod"))
        in_prod = {(c.service, c.operation) for c in world.recorder.calls if c.account == PROD_ACCOUNT}
        assert ("sagemaker", "DescribeProcessingJob") in in_prod and ("cloudwatch", "PutMetricAlarm") in in_prod

        # the own check (the default): the capture is in the data bucket, read from the data-science account
        _monitoring_pipelines(world, "own_check", world.settings.home / "pipelines-own-check")
        before = len(world.recorder.calls)
        _traffic_in_s3(world, T0 + timedelta(hours=1), 300, shift=True, wrong=False)
        own = run(T0 + timedelta(hours=1))
        assert (own["status"], own["execution"]["by"]) == ("violations", "monitor_model"), own
        assert sorted(own["drifted_features"]) == ["charges", "plan"], own
        assert [c.operation for c in world.recorder.calls[before:] if c.account == PROD_ACCOUNT] == []


def _transform_description(request: dict[str, Any], status: str) -> dict[str, Any]:
    """A ``DescribeTransformJob`` answer for the job ``request`` created."""
    described = {key: request[key] for key in ("TransformJobName", "ModelName", "TransformInput", "TransformOutput",
                                                "TransformResources", "DataProcessing", "BatchStrategy",
                                                "MaxPayloadInMB")}
    return {**described, "TransformJobArn": f"arn:aws:sagemaker:{REGION}:1:transform-job/{request['TransformJobName']}",
            "TransformJobStatus": status, "CreationTime": T0,
            **({"FailureReason": "Stopped by user request"} if status == "Stopped" else {})}


# Golden file name -> scenario. ``--<branch>`` names a second run of the same DAG on another branch.
SCENARIOS: dict[str, Callable[..., None]] = {
    "train_model": train_model,
    "train_model--registry-approval": train_model_registry_approval,
    "deploy_model": deploy_model,
    "deploy_model--three-accounts": deploy_model_three_accounts,
    "rollback_model": rollback_model,
    "autopilot_batch_predict": autopilot_batch_predict,
    "autopilot_batch_predict--no-triggerer": autopilot_batch_predict_blocking,
    "train_model--killed": train_model_killed,
    "autopilot_batch_predict--killed": autopilot_batch_predict_killed,
    "monitor_model": monitor_model,
    "monitor_model--own-check": monitor_model_own_check,
    "monitor_model--three-accounts": monitor_model_three_accounts,
}
NEEDS_TRAINING_DATA = {"train_model", "train_model--registry-approval", "train_model--killed"}


# ---------------------------------------------------------------- normalising
def normaliser(tmp_dirs: list[str]) -> Callable[[Any], Any]:
    """A function making recorded params stable across runs, machines and code edits.

    Placeholders: ``<tmp>`` (temporary directories), ``<run_id>`` (the run id in any of its
    spellings), ``<sha256>`` (64 hex digits), ``<hash>`` (8- or 16-hex name suffixes, client
    tokens), ``<time>`` (ISO dates, record-key timestamps, nanosecond counters), ``<uuid>``,
    ``<bytes>`` (bodies written to S3, whose size follows the code and the data).
    """
    import re

    from mlops.core.naming import path_safe, slug

    literal = [(d, "<tmp>") for d in sorted(tmp_dirs, key=len, reverse=True) if d]
    literal += [(RUN_ID, "<run_id>"), (path_safe(RUN_ID), "<run_id>")]
    patterns = [
        (re.compile(r"/tmp/[^\s\"',;]*"), "<tmp>"),
        (re.compile(r"\b\d{8}T\d{6}\d*Z-\d{20}-[0-9a-f]{8}\b"), "<time>-<ns>-<random>"),
        (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
        (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
        (re.compile(r"[0-9a-fA-F]{64}"), "<sha256>"),
        (re.compile(r"(?<=/serving/)[0-9a-f]{16}(?=/)"), "<hash>"),
        (re.compile(re.escape(slug(RUN_ID))), "<run_id>"),
        (re.compile(r"(?<=-)[0-9a-f]{8}(?![0-9a-zA-Z])"), "<hash>"),
    ]
    by_key = {"ClientToken": "<hash>"}

    def text(value: str) -> str:
        for old, new in literal:
            value = value.replace(old, new)
        for pattern, new in patterns:
            value = pattern.sub(new, value)
        return value

    def walk(value: Any, key: str = "", operation: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k, operation) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key, operation) for v in value]
        if isinstance(value, str):
            if key in by_key:
                return by_key[key]
            if key == "Body" and operation == "PutObject":
                return "<bytes>"
            return text(value)
        return value

    def normalise(call) -> dict[str, Any]:
        return {"service": call.service, "operation": call.operation, "account": call.account,
                "site": None if call.site is None else "::".join(call.site),
                "params": walk(call.params, operation=call.operation)}

    return normalise


def golden_dir() -> Path:
    return Path(__file__).resolve().parent / "golden"
