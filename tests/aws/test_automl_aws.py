"""Autopilot (AutoML V2) on AWS: request shapes, attach, terminal states, ranking, models with response keys,
names with the settings' prefix."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from automl_fixtures import (  # noqa: F401  (the *_fixture imports register the fixtures)
    ENSEMBLE_CONTAINERS,
    HPO_CONTAINERS,
    REGION,
    ROLE,
    aws_settings_fixture,
    candidate,
    described_job,
    moto_clients_fixture,
    stubbed_fixture,
)
from automl_fixtures import run_trigger as shared_run_trigger

from mlops.backends.aws.automl import AutopilotAutoML, with_response_keys
from mlops.backends.base import JobHandle
from mlops.backends.limits import LimitError
from mlops.triggers.sagemaker_automl import SageMakerAutoMLJobV2Trigger

JOB = "churn-automl-1a2b3c4d"  # the logical name the port is given ...
AWS_JOB = "mlops-churn-automl-1a2b3c4d"  # ... and SageMaker's, with the settings' name prefix
SPEC = {"job_name": JOB, "train_uri": "s3://mlops-data/autopilot/run-1/train.parquet", "target": "Churn?",
        "problem_type": "binary", "objective": "AUC", "max_candidates": 5, "time_budget_s": 5400,
        "output_uri": "s3://mlops-data/autopilot/run-1"}
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ANY_LISTING = None  # Stubber: any parameters
ALL_KEYS = ["predicted_label", "probability", "labels", "probabilities"]


def listing_params(order: str = "Descending", **extra) -> dict:
    return {"AutoMLJobName": AWS_JOB, "SortBy": "FinalObjectiveMetricValue", "SortOrder": order, **extra}


# ---------------------------------------------------------------- create or attach (moto)
def test_a_new_job_is_created_with_the_v2_tabular_request_and_defers(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker, mode="ENSEMBLING")

    handle = automl.submit(**SPEC)

    job = sagemaker.describe_auto_ml_job_v2(AutoMLJobName=AWS_JOB)
    assert job["AutoMLProblemTypeConfig"]["TabularJobConfig"] == {
        "TargetAttributeName": "Churn?", "ProblemType": "BinaryClassification", "Mode": "ENSEMBLING",
        "CompletionCriteria": {"MaxCandidates": 5, "MaxAutoMLJobRuntimeInSeconds": 5400},
    }
    assert job["AutoMLJobObjective"] == {"MetricName": "AUC"}
    assert job["RoleArn"] == ROLE
    assert job["AutoMLJobInputDataConfig"] == [{
        "ChannelType": "training", "ContentType": "x-application/vnd.amazon+parquet", "CompressionType": "None",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": SPEC["train_uri"]}}}]
    assert job["OutputDataConfig"] == {"S3OutputPath": f"{SPEC['output_uri']}/{AWS_JOB}/"}
    assert (handle.kind, handle.name, handle.done) == ("automl", AWS_JOB, False)
    assert handle.trigger["classpath"] == "mlops.triggers.sagemaker_automl.SageMakerAutoMLJobV2Trigger"


def test_a_retry_attaches_to_the_running_job_instead_of_creating_another(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    automl.submit(**SPEC)

    again = automl.submit(**SPEC)

    assert [j["AutoMLJobName"] for j in sagemaker.list_auto_ml_jobs()["AutoMLJobSummaries"]] == [AWS_JOB]
    assert not again.done and again.trigger["kwargs"]["job_name"] == AWS_JOB


def test_a_job_name_reused_for_another_target_is_refused(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    automl.submit(**SPEC)

    with pytest.raises(ValueError, match=r"different target \('Churn\?', asked 'Churned'\)"):
        automl.submit(**{**SPEC, "target": "Churned"})


def test_the_handles_trigger_waits_on_the_v2_waiter_and_serialises(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    handle = AutopilotAutoML(aws_settings, client=sagemaker, waiter_delay=30).submit(**SPEC)

    trigger = SageMakerAutoMLJobV2Trigger(**handle.trigger["kwargs"])
    classpath, kwargs = trigger.serialize()

    assert classpath == handle.trigger["classpath"]
    assert kwargs["job_name"] == AWS_JOB and kwargs["region_name"] == REGION
    assert kwargs["waiter_delay"] == 30
    assert kwargs["waiter_max_attempts"] == (5400 + 3600) // 30  # budget plus margin
    assert SageMakerAutoMLJobV2Trigger(**kwargs).serialize() == (classpath, kwargs)
    assert JobHandle.from_dict(handle.to_dict()) == handle


# ---------------------------------------------------------------- limits, before any call (Stubber)
@pytest.mark.parametrize("change, message", [
    ({"time_budget_s": 30}, r"autopilot.time_budget_s=30 is under 3600 s"),
    ({"max_candidates": 751}, r"MaxCandidates=751 must be between 1 and 750"),
    ({"max_candidates": 0}, r"MaxCandidates=0 must be between 1 and 750"),
    ({"objective": "Recalls"}, r"autopilot.objective='Recalls' is not one of Accuracy, MSE"),
])
def test_a_job_sagemaker_would_reject_or_that_cannot_produce_a_candidate_fails_before_any_call(
        aws_settings, stubbed, change, message):
    client, stubber = stubbed  # no answers queued: any request would fail the Stubber

    with pytest.raises(LimitError, match=message):
        AutopilotAutoML(aws_settings, client=client).submit(**{**SPEC, **change})


def test_a_per_candidate_runtime_longer_than_the_jobs_budget_is_refused(aws_settings, stubbed):
    client, _ = stubbed
    automl = AutopilotAutoML(aws_settings, client=client, max_runtime_per_training_job_s=7200)

    with pytest.raises(LimitError, match=r"time_budget_s=5400 is shorter than max_runtime_per_candidate_s=7200"):
        automl.submit(**SPEC)


def test_the_shipped_autopilot_config_passes_the_limits(aws_settings, moto_clients):
    from mlops.core.config import load_pipeline

    autopilot = load_pipeline("churn").section("autopilot")
    sagemaker, _ = moto_clients

    handle = AutopilotAutoML(aws_settings, client=sagemaker).submit(**{
        **SPEC, "objective": autopilot["objective"], "max_candidates": autopilot["max_candidates"],
        "time_budget_s": autopilot["time_budget_s"], "local_time_budget_s": autopilot["local_time_budget_s"]})

    criteria = sagemaker.describe_auto_ml_job_v2(AutoMLJobName=handle.name)[
        "AutoMLProblemTypeConfig"]["TabularJobConfig"]["CompletionCriteria"]
    assert criteria["MaxAutoMLJobRuntimeInSeconds"] == autopilot["time_budget_s"] >= 3600


# ---------------------------------------------------------------- terminal states
def _end_job(name: str, status: str, reason: str) -> None:
    """Put moto's job ``name`` in a terminal state, as SageMaker would after a failure or a stop."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    job = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].auto_ml_jobs[name]
    job.auto_ml_job_status, job.failure_reason = status, reason


@pytest.mark.parametrize("status, reason", [
    ("Failed", "ClientError: The target attribute Churn? has only one class"),
    ("Stopped", "Stopped by user request"),
])
def test_a_retry_after_a_failed_or_stopped_job_creates_the_next_name_with_the_same_request(
        aws_settings, moto_clients, status, reason):
    """Failed and Stopped are final on SageMaker: the task's retry describes the job, finds it
    ended and creates ``<name>-r2`` (the training and tuning jobs' rule), leaving the ended job as it is."""
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    first = automl.submit(**SPEC)
    _end_job(first.name, status, reason)

    retry = automl.submit(**SPEC)

    assert (first.name, retry.name) == (AWS_JOB, f"{AWS_JOB}-r2") and not retry.done
    ended, created = (sagemaker.describe_auto_ml_job_v2(AutoMLJobName=name) for name in (first.name, retry.name))
    assert ended["AutoMLJobStatus"] == status and created["AutoMLJobStatus"] == "InProgress"
    for key in ("AutoMLJobInputDataConfig", "AutoMLProblemTypeConfig", "AutoMLJobObjective"):
        assert created[key] == ended[key], key
    assert created["OutputDataConfig"]["S3OutputPath"] == \
        ended["OutputDataConfig"]["S3OutputPath"].replace(first.name, retry.name)  # its own folder: nothing mixed
    assert automl.submit(**SPEC).name == retry.name  # the retry's retry re-attaches to it


def test_when_every_name_ended_failed_the_job_fails_naming_them(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    for _ in range(9):
        _end_job(automl.submit(**SPEC).name, "Failed", "AlgorithmError: out of memory")

    with pytest.raises(RuntimeError, match=re.escape(f"AutoML job {AWS_JOB}: 9 attempts ended Failed or Stopped "
                                                     f"({AWS_JOB} ... {AWS_JOB}-r9)")):
        automl.submit(**SPEC)


def test_a_retried_name_fits_the_32_characters_of_an_automl_job_name(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    longest = "x" * 40  # prefixed and cut to 32 characters: no room for -r2 as it is
    first = automl.submit(**{**SPEC, "job_name": longest})
    _end_job(first.name, "Failed", "AlgorithmError")

    retry = automl.submit(**{**SPEC, "job_name": longest})

    assert len(first.name) == 32 and len(retry.name) <= 32 and retry.name.endswith("-r2")
    assert retry.name.startswith(f"{aws_settings.name_prefix}-")  # still inside the IAM policy's prefix


def test_waiting_fails_when_the_job_is_stopped_instead_of_looping(aws_settings, stubbed):
    client, stubber = stubbed
    for status in ("InProgress", "Stopping", "Stopped"):
        stubber.add_response("describe_auto_ml_job_v2",
                             described_job(AWS_JOB, status, "Stopped by user request" if status == "Stopped" else None),
                             {"AutoMLJobName": AWS_JOB})
    stubber.add_response("describe_auto_ml_job_v2", described_job(AWS_JOB, "Stopped", "Stopped by user request"),
                         {"AutoMLJobName": AWS_JOB})
    automl = AutopilotAutoML(aws_settings, client=client, waiter_delay=0)
    handle = JobHandle(kind="automl", name=AWS_JOB, done=False, trigger=automl.trigger(AWS_JOB, 60))

    with pytest.raises(RuntimeError, match=f"AutoML job {AWS_JOB} Stopped: Stopped by user request"):
        automl.wait(handle)


def test_waiting_fails_with_the_reason_of_a_failed_job(aws_settings, stubbed):
    client, stubber = stubbed
    failed = described_job(AWS_JOB, "Failed", "AlgorithmError: out of memory")
    for answer in (described_job(AWS_JOB, "InProgress"), failed, failed):
        stubber.add_response("describe_auto_ml_job_v2", answer, {"AutoMLJobName": AWS_JOB})
    automl = AutopilotAutoML(aws_settings, client=client, waiter_delay=0)

    with pytest.raises(RuntimeError, match="Failed: AlgorithmError: out of memory"):
        automl.wait(JobHandle(kind="automl", name=AWS_JOB, done=False, trigger=automl.trigger(AWS_JOB, 60)))


def test_waiting_until_completed_returns_the_ranked_candidates(aws_settings, stubbed):
    client, stubber = stubbed
    for status in ("InProgress", "Completed"):
        stubber.add_response("describe_auto_ml_job_v2", described_job(AWS_JOB, status), {"AutoMLJobName": AWS_JOB})
    stubber.add_response("describe_auto_ml_job_v2", described_job(AWS_JOB, "Completed"), {"AutoMLJobName": AWS_JOB})
    stubber.add_response("list_candidates_for_auto_ml_job", {"Candidates": [candidate("c-best", 0.93, T0)]},
                         listing_params(StatusEquals="Completed"))
    automl = AutopilotAutoML(aws_settings, client=client, waiter_delay=0)

    done = automl.wait(JobHandle(kind="automl", name=AWS_JOB, done=False, trigger=automl.trigger(AWS_JOB, 60)))

    result = automl.collect(done)
    assert done.done and result["status"] == "Completed"
    assert [c["name"] for c in result["candidates"]] == ["c-best"]


# ---------------------------------------------------------------- the trigger, in an event loop
def run_trigger(answers: list[dict]) -> list[dict]:
    """Run the trigger against an aiobotocore client whose answers are stubbed."""
    trigger = SageMakerAutoMLJobV2Trigger(AWS_JOB, waiter_delay=0, waiter_max_attempts=5, aws_conn_id=None,
                                          region_name=REGION)
    return shared_run_trigger(trigger, "describe_auto_ml_job_v2", answers)


def test_the_trigger_reports_success_when_the_job_completes():
    events = run_trigger([described_job(AWS_JOB, "InProgress"), described_job(AWS_JOB, "Completed")])

    assert events == [{"status": "success", "job_name": AWS_JOB}]


def test_the_trigger_reports_a_stopped_job_with_its_reason():
    events = run_trigger([described_job(AWS_JOB, "InProgress"), described_job(AWS_JOB, "Stopping"),
                          described_job(AWS_JOB, "Stopped", "Stopped by user request")])

    assert events == [{"status": "stopped", "job_name": AWS_JOB,
                       "message": f"AutoML job {AWS_JOB} Stopped: Stopped by user request"}]


def test_the_trigger_reports_a_failed_job_with_its_reason():
    events = run_trigger([described_job(AWS_JOB, "Failed", "ClientError: no data")])

    assert events == [{"status": "failed", "job_name": AWS_JOB, "message": f"AutoML job {AWS_JOB} Failed: ClientError: no data"}]


# ---------------------------------------------------------------- candidates
def test_candidates_are_listed_over_every_page_best_first_and_newest_first_among_equals(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_auto_ml_job_v2", described_job(AWS_JOB, "Completed"), {"AutoMLJobName": AWS_JOB})
    stubber.add_response("list_candidates_for_auto_ml_job", {
        "Candidates": [candidate("c-a", 0.91, T0), candidate("c-old", 0.90, T0)], "NextToken": "page-2"},
        listing_params(StatusEquals="Completed"))
    stubber.add_response("list_candidates_for_auto_ml_job", {
        "Candidates": [candidate("c-new", 0.90, T0 + timedelta(minutes=5)), candidate("c-b", 0.95, T0)]},
        listing_params(StatusEquals="Completed", NextToken="page-2"))

    ranked = AutopilotAutoML(aws_settings, client=client).candidates(JOB)

    assert [c.name for c in ranked] == ["c-b", "c-a", "c-new", "c-old"]
    assert [c.detail["rank"] for c in ranked] == [1, 2, 3, 4]
    best = ranked[0]
    assert (best.objective_metric, best.objective_value, best.detail["job_name"]) == ("AUC", 0.95, AWS_JOB)
    assert best.model_uri == HPO_CONTAINERS[1]["ModelDataUrl"]  # the candidate's training job's artifact
    assert best.detail["containers"] == HPO_CONTAINERS
    assert best.detail["supported_response_keys"] == ALL_KEYS


def test_a_minimised_objective_lists_ascending_lowest_first(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_auto_ml_job_v2",
                         described_job(AWS_JOB, "Completed", objective="RMSE", problem_type="Regression"),
                         {"AutoMLJobName": AWS_JOB})
    stubber.add_response("list_candidates_for_auto_ml_job", {"Candidates": [
        candidate("c-1", 12.5, T0, metric="RMSE", kind="Minimize"),
        candidate("c-2", 10.1, T0, metric="RMSE", kind="Minimize")]},
        listing_params("Ascending", StatusEquals="Completed"))

    ranked = AutopilotAutoML(aws_settings, client=client).candidates(AWS_JOB)

    assert [(c.name, c.objective_value) for c in ranked] == [("c-2", 10.1), ("c-1", 12.5)]


@pytest.mark.parametrize("mode, problem_type, containers, meaning", [
    ("ENSEMBLING", "BinaryClassification", ENSEMBLE_CONTAINERS, "predicted_label"),
    ("HYPERPARAMETER_TUNING", "BinaryClassification", HPO_CONTAINERS, "positive_class"),
    ("HYPERPARAMETER_TUNING", "MulticlassClassification", HPO_CONTAINERS, "predicted_label"),
    ("AUTO", "BinaryClassification", ENSEMBLE_CONTAINERS, "predicted_label"),  # one container: an ensemble
    ("AUTO", "BinaryClassification", HPO_CONTAINERS, "positive_class"),  # three: an HPO pipeline
    ("ENSEMBLING", "Regression", ENSEMBLE_CONTAINERS, None),
])
def test_a_candidate_says_what_its_probability_is_the_probability_of(aws_settings, stubbed, mode, problem_type,
                                                                     containers, meaning):
    client, stubber = stubbed
    job = described_job(AWS_JOB, "Completed", problem_type=problem_type,
                        objective="RMSE" if problem_type == "Regression" else "AUC")
    job["AutoMLProblemTypeConfig"]["TabularJobConfig"]["Mode"] = mode
    stubber.add_response("describe_auto_ml_job_v2", job, {"AutoMLJobName": AWS_JOB})
    stubber.add_response("list_candidates_for_auto_ml_job", {"Candidates": [
        candidate("c-1", 0.9, T0, containers=containers, metric="RMSE" if problem_type == "Regression" else "AUC",
                  kind="Minimize" if problem_type == "Regression" else "Maximize")]}, ANY_LISTING)
    automl = AutopilotAutoML(aws_settings, client=client)

    best = automl.candidates(AWS_JOB)[0]

    assert (best.detail["mode"], best.detail["problem_type"]) == (mode, problem_type)
    assert automl.probability_of(best) == meaning


def test_candidates_of_an_unknown_job_is_a_key_error_naming_it(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_client_error("describe_auto_ml_job_v2", "ResourceNotFound", f"Job {AWS_JOB} not found")

    with pytest.raises(KeyError, match=AWS_JOB):
        AutopilotAutoML(aws_settings, client=client).candidates(AWS_JOB)


def test_attaching_to_a_completed_job_returns_its_candidates_without_deferring(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_auto_ml_job_v2", described_job(AWS_JOB, "Completed"), {"AutoMLJobName": AWS_JOB})
    stubber.add_response("describe_auto_ml_job_v2", described_job(AWS_JOB, "Completed"), {"AutoMLJobName": AWS_JOB})
    stubber.add_response("list_candidates_for_auto_ml_job", {"Candidates": [candidate("c-1", 0.9, T0)]},
                         listing_params(StatusEquals="Completed"))

    handle = AutopilotAutoML(aws_settings, client=client).submit(**SPEC)

    assert handle.done and handle.trigger is None
    assert handle.result["candidates"][0]["name"] == "c-1"


# ---------------------------------------------------------------- models with response keys
def test_response_keys_chain_through_the_containers_as_the_sagemaker_sdk_did():
    containers = with_response_keys(HPO_CONTAINERS, ["predicted_label", "labels", "probability", "probabilities"])

    feature, algorithm, inverse = (c["Environment"] for c in containers)
    assert "SAGEMAKER_INFERENCE_OUTPUT" not in feature and "SAGEMAKER_INFERENCE_INPUT" not in feature
    assert algorithm["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,probability,probabilities"
    assert "SAGEMAKER_INFERENCE_INPUT" not in algorithm
    assert inverse["SAGEMAKER_INFERENCE_INPUT"] == "predicted_label,probability,probabilities"
    assert inverse["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,labels,probability,probabilities"
    assert HPO_CONTAINERS[2]["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label"  # not mutated


def test_an_ensemble_candidate_answers_with_the_keys_in_the_requested_order():
    (container,) = with_response_keys(ENSEMBLE_CONTAINERS, ["probability", "predicted_label"])

    assert container["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "probability,predicted_label"
    assert "SAGEMAKER_INFERENCE_INPUT" not in container["Environment"]


def test_a_key_the_last_container_does_not_support_is_refused_naming_the_supported_ones():
    regression = [{**HPO_CONTAINERS[2], "Environment": {"SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label"}}]

    with pytest.raises(ValueError, match=r"\[probability\] are unsupported; the supported keys are \[predicted_label\]"):
        with_response_keys(regression, ["predicted_label", "probability"])


def expect_candidate_listing(stubber, name: str, containers) -> None:
    stubber.add_response("list_candidates_for_auto_ml_job",
                         {"Candidates": [candidate(name, 0.93, T0, containers=containers)]},
                         listing_params(CandidateNameEquals=name))


def test_create_model_sends_the_candidates_containers_with_the_response_keys(aws_settings, stubbed):
    client, stubber = stubbed
    expect_candidate_listing(stubber, "c-best", HPO_CONTAINERS)
    stubber.add_client_error("describe_model", "ValidationException",
                             "Could not find model \"mlops-churn-model\".")
    expected = with_response_keys(HPO_CONTAINERS, ALL_KEYS)
    stubber.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/churn-model"},
                         {"ModelName": "mlops-churn-model", "ExecutionRoleArn": ROLE, "Containers": expected})
    name = AutopilotAutoML(aws_settings, client=client).create_model(
        "churn-model", {"name": "c-best", "objective_metric": "AUC", "objective_value": 0.93, "model_uri": "",
                        "detail": {"job_name": AWS_JOB}}, ALL_KEYS)

    assert name == "mlops-churn-model"
    assert expected[-1]["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == ",".join(ALL_KEYS)


def test_creating_the_same_model_again_is_a_no_op(aws_settings, stubbed):
    client, stubber = stubbed
    expect_candidate_listing(stubber, "c-best", ENSEMBLE_CONTAINERS)
    stubber.add_response("describe_model", {
        "ModelName": "churn-model", "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/churn-model",
        "CreationTime": T0, "ExecutionRoleArn": ROLE,
        "Containers": with_response_keys(ENSEMBLE_CONTAINERS, ["predicted_label", "probability"])},
        {"ModelName": "mlops-churn-model"})
    ref = {"name": "c-best", "objective_metric": "AUC", "objective_value": 0.93, "model_uri": "",
           "detail": {"job_name": AWS_JOB}}

    assert AutopilotAutoML(aws_settings, client=client).create_model(
        "churn-model", ref, ["predicted_label", "probability"]) == "mlops-churn-model"


def test_a_model_name_reused_for_other_response_keys_is_refused(aws_settings, stubbed):
    client, stubber = stubbed
    expect_candidate_listing(stubber, "c-best", ENSEMBLE_CONTAINERS)
    stubber.add_response("describe_model", {
        "ModelName": "churn-model", "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/churn-model",
        "CreationTime": T0, "ExecutionRoleArn": ROLE,
        "Containers": with_response_keys(ENSEMBLE_CONTAINERS, ["predicted_label"])},
        {"ModelName": "mlops-churn-model"})
    ref = {"name": "c-best", "objective_metric": "AUC", "objective_value": 0.93, "model_uri": "",
           "detail": {"job_name": AWS_JOB}}

    with pytest.raises(ValueError, match="mlops-churn-model exists with different containers"):
        AutopilotAutoML(aws_settings, client=client).create_model("churn-model", ref, ALL_KEYS)


def test_a_candidate_of_another_job_is_refused(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("list_candidates_for_auto_ml_job", {"Candidates": []},
                         listing_params(CandidateNameEquals="c-elsewhere"))
    ref = {"name": "c-elsewhere", "objective_metric": "AUC", "objective_value": 0.9, "model_uri": "",
           "detail": {"job_name": AWS_JOB}}

    with pytest.raises(ValueError, match=f"c-elsewhere is not a candidate of AutoML job {AWS_JOB}"):
        AutopilotAutoML(aws_settings, client=client).create_model("churn-model", ref, ALL_KEYS)


def test_an_unknown_response_key_is_refused_before_any_call(aws_settings, stubbed):
    client, _ = stubbed
    ref = {"name": "c-best", "objective_metric": "AUC", "objective_value": 0.9, "model_uri": "",
           "detail": {"job_name": AWS_JOB}}

    with pytest.raises(ValueError, match="score"):
        AutopilotAutoML(aws_settings, client=client).create_model("churn-model", ref, ["predicted_label", "score"])


def test_the_model_request_round_trips_through_moto(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    containers = with_response_keys(HPO_CONTAINERS, ALL_KEYS)
    sagemaker.create_model(ModelName="churn-model", ExecutionRoleArn=ROLE, Containers=containers)

    described = automl.describe_model("churn-model")

    assert described["Containers"] == containers
    assert automl.describe_model("no-such-model") is None


def test_attaching_to_a_running_job_waits_as_long_as_its_own_runtime_limit(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_auto_ml_job_v2", described_job(AWS_JOB, "InProgress"), {"AutoMLJobName": AWS_JOB})

    handle = AutopilotAutoML(aws_settings, client=client).submit(**SPEC)

    assert not handle.done and handle.trigger["kwargs"]["waiter_max_attempts"] == (3600 + 3600) // 60


# ---------------------------------------------------------------- names with the prefix
def test_a_job_name_that_has_the_prefix_already_is_not_prefixed_again(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    first = automl.submit(**SPEC)

    again = automl.submit(**{**SPEC, "job_name": first.name})

    assert (first.name, again.name) == (AWS_JOB, AWS_JOB)
    assert [j["AutoMLJobName"] for j in sagemaker.list_auto_ml_jobs()["AutoMLJobSummaries"]] == [AWS_JOB]
    assert automl.model_name("mlops-churn-model") == "mlops-churn-model"


def test_a_job_name_too_long_for_autopilot_is_cut_to_32_characters_with_a_hash(aws_settings, moto_clients):
    sagemaker, _ = moto_clients
    automl = AutopilotAutoML(aws_settings, client=sagemaker)
    logical = "automl-scheduled-2026-01-05t12-00-00"

    handle = automl.submit(**{**SPEC, "job_name": logical})

    assert len(handle.name) <= 32 and re.fullmatch(r"mlops-automl-[a-z0-9-]+-[0-9a-f]{8}", handle.name)
    assert automl.job_name(logical) == handle.name != automl.job_name(logical[:-1] + "1")
    assert sagemaker.describe_auto_ml_job_v2(AutoMLJobName=handle.name)["OutputDataConfig"] == {
        "S3OutputPath": f"{SPEC['output_uri']}/{handle.name}/"}
