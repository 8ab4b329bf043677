"""The project's retry configuration of its AWS clients (``mlops.backends.aws.clients``) and what
the project does once botocore's retries are spent. botocore's own retry rules (which codes it
retries, its jittered backoff, the adaptive rate limiter) are botocore's to test, not repeated here.

Verified how: a real botocore SageMaker client built by ``clients.client`` from the Airflow
connection ``aws_default`` (fake keys, no network) gets its HTTP responses from a
``before-send`` handler: the layer under botocore's retry handler, so every attempt is
signed, sent, parsed and judged by botocore's own retry rules (Stubber answers in
``before-call`` and would skip them). SageMaker speaks JSON 1.1: the error code is ``__type``.
The backoff sleeps are recorded instead of slept; the adaptive client-side rate limiter runs on
a clock that leaps ahead, so it keeps its place in the path without making the test wait.

Keyspaces (the cassandra driver, not botocore) retries throttling and timeouts itself: see
tests/unit/test_keyspaces_hook.py (``test_a_throttled_page_is_retried_with_backoff_then_succeeds``,
``test_throttling_past_the_retry_budget_fails_clearly``).
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.retries import bucket

from mlops.backends.aws.clients import RETRIES, client, or_none, stop_quietly

ATTEMPTS = RETRIES["max_attempts"] + 1  # botocore's max_attempts counts retries, not the first try
THROTTLING = (400, "ThrottlingException", "Rate exceeded")
OK = (200, None, None)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


class SageMakerAnswers:
    """Answers every SageMaker request with the next of ``answers`` (the last one repeats)."""

    def __init__(self, answers) -> None:
        self.answers = list(answers)
        self.sent = []

    def __call__(self, request, **_):
        status, code, message = self.answers[min(len(self.sent), len(self.answers) - 1)]
        self.sent.append(request)
        body = {"TrainingJobSummaries": []} if code is None else {"__type": code, "message": message}
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": f"req-{len(self.sent)}"}
        return AWSResponse(request.url, status, headers, _Raw(json.dumps(body).encode()))


class LeapingClock(bucket.Clock):
    """A clock a minute further on at every look: the adaptive limiter always finds its bucket
    refilled, so it never waits, however low it set the send rate."""

    def __init__(self) -> None:
        self.now = time.time()

    def current_time(self) -> float:
        self.now += 60.0
        return self.now


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The delays botocore's endpoint slept between attempts (recorded, not slept)."""
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=slept.append))
    monkeypatch.setattr(bucket, "Clock", LeapingClock)
    return slept


@pytest.fixture
def sagemaker(monkeypatch, settings, sleeps):
    """``(client, answer)``: a SageMaker client from ``clients.client``; ``answer(*responses)``
    scripts what the service answers and returns the recorder of sent requests."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": "AKIARETRYTEST", "password": "retry-test-secret",
         "extra": {"region_name": settings.aws_region}}))
    sagemaker_client = client("sagemaker", settings)

    def answer(*responses) -> SageMakerAnswers:
        answers = SageMakerAnswers(responses)
        sagemaker_client.meta.events.register("before-send.sagemaker.*", answers)
        return answers

    return sagemaker_client, answer


def test_the_client_uses_adaptive_retries_with_the_projects_budget(sagemaker):
    sagemaker_client, _ = sagemaker
    assert sagemaker_client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": ATTEMPTS}


def test_a_ports_clients_from_its_shared_session_have_the_same_retry_budget(sagemaker, settings):
    from mlops.backends.aws.clients import session

    shared = session(settings)

    for service in ("sagemaker", "s3", "sagemaker-runtime"):
        made = client(service, settings, shared)
        assert made.meta.config.retries == {"mode": "adaptive", "total_max_attempts": ATTEMPTS}, service


def test_throttling_on_every_attempt_spends_the_projects_budget_then_fails_clearly(sagemaker, sleeps):
    sagemaker_client, answer = sagemaker
    answers = answer(THROTTLING)

    with pytest.raises(ClientError) as raised:
        sagemaker_client.list_training_jobs()

    assert len(answers.sent) == ATTEMPTS == 11
    assert len(sleeps) == ATTEMPTS - 1
    error = raised.value
    assert error.response["Error"]["Code"] == "ThrottlingException"
    assert error.operation_name == "ListTrainingJobs"
    assert str(error) == ("An error occurred (ThrottlingException) when calling the ListTrainingJobs operation "
                          f"(reached max retries: {ATTEMPTS - 1}): Rate exceeded")


def test_a_describe_throttled_past_the_budget_is_raised_not_taken_for_not_found(sagemaker):
    """A retry describes first and re-attaches; were a throttled describe read as "no such job",
    the retry would launch a second job."""
    sagemaker_client, answer = sagemaker
    answers = answer(THROTTLING)

    with pytest.raises(ClientError) as raised:
        or_none(lambda: sagemaker_client.list_training_jobs())

    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["MaxAttemptsReached"] is True
    assert len(answers.sent) == ATTEMPTS


def test_a_missing_resource_is_none_at_once_without_spending_the_budget(sagemaker, sleeps):
    sagemaker_client, answer = sagemaker
    answers = answer((400, "ValidationException", "Could not find model \"m\"."))

    assert or_none(lambda: sagemaker_client.list_training_jobs()) is None
    assert len(answers.sent) == 1 and sleeps == []


def test_a_stop_throttled_past_the_budget_is_logged_and_the_kill_goes_on(sagemaker, caplog):
    sagemaker_client, answer = sagemaker
    answer(THROTTLING)

    with caplog.at_level("WARNING", logger="mlops.backends.aws.clients"):
        stop_quietly(lambda: sagemaker_client.list_training_jobs(), "training job j")

    assert caplog.messages == [f"training job j was not stopped: An error occurred (ThrottlingException) when "
                               f"calling the ListTrainingJobs operation (reached max retries: {ATTEMPTS - 1}): "
                               "Rate exceeded"]
