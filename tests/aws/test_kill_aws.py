"""A killed task stops its SageMaker job (``on_kill``), whether it was blocking in its wait (the
operator stops it) or deferred (the trigger stops it when a person kills the task).

moto implements ``StopAutoMLJob`` (the job becomes Stopped), so the AutoML path runs on moto end
to end; moto has no ``StopTrainingJob``, ``StopHyperParameterTuningJob`` or ``StopTransformJob``,
so those are answered by botocore's Stubber, which checks each request against the service model
and the expected parameters. The whole sequences, kill included, are also golden request files
(``golden/*--killed.json``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from automl_fixtures import (  # noqa: F401  (the *_fixture imports register the fixtures)
    REGION,
    aws_settings_fixture,
    moto_clients_fixture,
    run_on_kill,
    stubbed_fixture,
)
from golden_scenarios import kill_in_wait

from mlops.backends import Backend
from mlops.backends.aws.automl import AutopilotAutoML
from mlops.backends.aws.training import SageMakerTrainer, SageMakerTuner
from mlops.backends.aws.transform import SageMakerBatchTransform
from mlops.backends.base import JobHandle
from mlops.operators.sagemaker import AutoMLJobOperator
from mlops.triggers.sagemaker_automl import SageMakerAutoMLJobV2Trigger
from mlops.triggers.sagemaker_jobs import SageMakerJobTrigger

AUTOML = {"job_name": "churn-automl-1", "train_uri": "s3://mlops-data/autopilot/run-1/train.parquet",
          "target": "Churn?", "problem_type": "binary", "objective": "AUC", "max_candidates": 5,
          "time_budget_s": 3600, "output_uri": "s3://mlops-data/autopilot/run-1"}


def running(kind: str, name: str) -> JobHandle:
    return JobHandle(kind=kind, name=name, done=False)


# ---------------------------------------------------------------- the operator, blocking (moto)
def test_a_task_killed_while_it_waits_stops_its_automl_job_and_fails(aws_settings, moto_clients, monkeypatch):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker, waiter_delay=0)
    monkeypatch.setattr("mlops.operators.sagemaker._backend", lambda: Backend(
        name="aws", tuner=None, trainer=None, registry=None, hosting=None, automl=automl, transform=None))
    operator = AutoMLJobOperator(task_id="automl_job", output_uri=AUTOML["output_uri"], deferrable=False,
                                       **{k: v for k, v in AUTOML.items() if k != "output_uri"})
    kill_in_wait(sagemaker, "DescribeAutoMLJobV2", "AutoMLJobStatus", operator)  # SIGTERM during the wait

    with pytest.raises(RuntimeError, match="AutoML job mlops-churn-automl-1 Stopped"):
        operator.execute({"dag": SimpleNamespace(dag_id="autopilot_batch_predict"), "run_id": "manual_1"})

    job = sagemaker.describe_auto_ml_job_v2(AutoMLJobName="mlops-churn-automl-1")
    assert job["AutoMLJobStatus"] == "Stopped"  # moto's StopAutoMLJob


def test_on_kill_before_or_after_the_job_stops_nothing(aws_settings, stubbed, monkeypatch):
    client, _ = stubbed  # nothing queued: any request fails the test
    automl = AutopilotAutoML(aws_settings, client=client)
    operator = AutoMLJobOperator(task_id="automl_job", output_uri="s3://b/o", **{
        k: v for k, v in AUTOML.items() if k != "output_uri"})

    operator.on_kill()  # never started
    operator._running = (automl, JobHandle(kind="automl", name="mlops-churn-automl-1", done=True))
    operator.on_kill()  # finished: left alone


# ---------------------------------------------------------------- the ports' Stop* (Stubber)
@pytest.mark.parametrize("port, kind, operation, params", [
    (SageMakerTrainer, "training", "stop_training_job", {"TrainingJobName": "mlops-refit-1"}),
    (SageMakerTuner, "tuning", "stop_hyper_parameter_tuning_job", {"HyperParameterTuningJobName": "mlops-tune-1"}),
])
def test_a_running_training_or_tuning_job_is_stopped_by_name(aws_settings, stubbed, port, kind, operation, params):
    client, stubber = stubbed
    stubber.add_response(operation, {}, params)

    port(aws_settings, sagemaker_client=client, image_uri="image").stop(running(kind, *params.values()))


def test_a_running_transform_job_is_stopped_by_name(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("stop_transform_job", {}, {"TransformJobName": "mlops-score-1-r2"})

    SageMakerBatchTransform(aws_settings, client=client).stop(running("transform", "mlops-score-1-r2"))


def test_a_job_that_ended_before_the_stop_is_left_alone_without_failing_the_kill(aws_settings, stubbed, caplog):
    client, stubber = stubbed
    stubber.add_client_error("stop_training_job", "ValidationException",
                             "The request was rejected because the training job is in status Completed.")

    SageMakerTrainer(aws_settings, sagemaker_client=client, image_uri="image").stop(running("training", "mlops-r-1"))

    assert "training job mlops-r-1 was not stopped" in caplog.text and "status Completed" in caplog.text


# ---------------------------------------------------------------- a deferred task killed by a person
@pytest.mark.parametrize("job_type, operation, params", [
    ("training", "stop_training_job", {"TrainingJobName": "mlops-refit-1"}),
    ("tuning", "stop_hyper_parameter_tuning_job", {"HyperParameterTuningJobName": "mlops-tune-1"}),
    ("transform", "stop_transform_job", {"TransformJobName": "mlops-score-1"}),
])
def test_the_trigger_of_a_deferred_job_stops_it_on_kill(aws_settings, job_type, operation, params):
    trigger = SageMakerJobTrigger(job_name=next(iter(params.values())), job_type=job_type, region_name=REGION)

    run_on_kill(trigger, operation, params)


def test_the_automl_trigger_stops_its_job_on_kill_and_tolerates_one_that_ended(aws_settings):
    trigger = SageMakerAutoMLJobV2Trigger(job_name="mlops-automl-1", region_name=REGION)

    run_on_kill(trigger, "stop_auto_ml_job", {"AutoMLJobName": "mlops-automl-1"})
    run_on_kill(trigger, "stop_auto_ml_job", {"AutoMLJobName": "mlops-automl-1"}, error="job is not in progress")


def test_an_endpoint_update_trigger_stops_nothing_on_kill(monkeypatch):
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    def no_connection(self):
        raise AssertionError("an endpoint update has no Stop: no client is needed")

    monkeypatch.setattr(SageMakerHook, "get_async_conn", no_connection)
    asyncio.run(SageMakerJobTrigger(job_name="mlops-churn-prod", job_type="endpoint", region_name=REGION).on_kill())


def test_the_job_trigger_serialises_as_itself_with_the_providers_arguments():
    trigger = SageMakerJobTrigger(job_name="mlops-refit-1", job_type="training", waiter_delay=30,
                                  waiter_max_attempts=10, aws_conn_id="aws_default", region_name=REGION)

    classpath, kwargs = trigger.serialize()

    assert classpath == "mlops.triggers.sagemaker_jobs.SageMakerJobTrigger"
    assert SageMakerJobTrigger(**kwargs).serialize() == (classpath, kwargs)
