"""Throttling and transient faults on the project's AWS clients (``mlops.backends.aws.clients``).

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
from botocore.retries import bucket, standard

from mlops.backends.aws.clients import RETRIES, client

ATTEMPTS = RETRIES["max_attempts"] + 1  # botocore's max_attempts counts retries, not the first try
THROTTLING = (400, "ThrottlingException", "Rate exceeded")
INTERNAL_FAILURE = (500, "InternalFailure", "We encountered an internal error. Please try again.")
SERVICE_UNAVAILABLE = (503, "ServiceUnavailable", "Service is unavailable")
VALIDATION = (400, "ValidationException", "1 validation error detected")
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


@pytest.fixture
def without_jitter(monkeypatch):
    """Backoff at the top of its jitter range, so each delay is exactly its exponential bound."""
    original = standard.ExponentialBackoff.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "random": lambda: 1.0})

    monkeypatch.setattr(standard.ExponentialBackoff, "__init__", init)


def test_the_client_uses_adaptive_retries_with_the_projects_budget(sagemaker):
    sagemaker_client, _ = sagemaker
    assert sagemaker_client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": ATTEMPTS}


def test_two_throttles_then_success_succeeds_on_the_third_attempt(sagemaker, sleeps):
    sagemaker_client, answer = sagemaker
    answers = answer(THROTTLING, THROTTLING, OK)

    response = sagemaker_client.list_training_jobs()

    assert response["TrainingJobSummaries"] == []
    assert len(answers.sent) == 3
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(sleeps) == 2


def test_throttling_backoff_has_full_jitter_under_a_doubling_bound(sagemaker, sleeps):
    sagemaker_client, answer = sagemaker
    answer(THROTTLING)

    with pytest.raises(ClientError):
        sagemaker_client.list_training_jobs()

    assert len(sleeps) == ATTEMPTS - 1
    assert all(0 <= delay <= min(2**i, 20) for i, delay in enumerate(sleeps))


def test_throttling_backoff_doubles_up_to_its_cap(without_jitter, sagemaker, sleeps):
    sagemaker_client, answer = sagemaker
    answer(THROTTLING)

    with pytest.raises(ClientError):
        sagemaker_client.list_training_jobs()

    assert sleeps == [min(2.0**i, 20.0) for i in range(ATTEMPTS - 1)]  # 1, 2, 4, 8, 16, 20, ...


def test_throttling_on_every_attempt_spends_the_budget_then_fails_clearly(sagemaker, sleeps):
    sagemaker_client, answer = sagemaker
    answers = answer(THROTTLING)

    with pytest.raises(ClientError) as raised:
        sagemaker_client.list_training_jobs()

    assert len(answers.sent) == ATTEMPTS
    error = raised.value
    assert error.response["Error"]["Code"] == "ThrottlingException"
    assert error.operation_name == "ListTrainingJobs"
    assert str(error) == ("An error occurred (ThrottlingException) when calling the ListTrainingJobs operation "
                          f"(reached max retries: {ATTEMPTS - 1}): Rate exceeded")
    assert error.response["ResponseMetadata"]["MaxAttemptsReached"] is True
    assert error.response["ResponseMetadata"]["RetryAttempts"] == ATTEMPTS - 1


def test_every_attempt_is_a_fresh_signed_request(sagemaker):
    sagemaker_client, answer = sagemaker
    answers = answer(THROTTLING, THROTTLING, OK)

    sagemaker_client.list_training_jobs()

    assert all(r.headers["Authorization"].startswith(b"AWS4-HMAC-SHA256 Credential=AKIARETRYTEST/")
               for r in answers.sent)
    assert [r.headers["amz-sdk-request"].split(b";")[0] for r in answers.sent] == [b"attempt=1", b"attempt=2",
                                                                                 b"attempt=3"]


def test_the_adaptive_limiter_paces_the_client_after_a_throttle(monkeypatch, sagemaker):
    acquired = []
    original = bucket.TokenBucket.acquire

    def acquire(self, *args, **kwargs):
        acquired.append(self.max_rate)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(bucket.TokenBucket, "acquire", acquire)
    sagemaker_client, answer = sagemaker
    answer(OK, THROTTLING, OK)

    sagemaker_client.list_training_jobs()
    sagemaker_client.list_training_jobs()

    assert len(acquired) == 1  # the retry after the throttle waited for a token; the first call did not


@pytest.mark.parametrize("fault", [INTERNAL_FAILURE, SERVICE_UNAVAILABLE], ids=lambda f: f[1])
def test_a_transient_server_fault_is_retried_with_backoff(sagemaker, sleeps, fault):
    sagemaker_client, answer = sagemaker
    answers = answer(fault, fault, OK)

    response = sagemaker_client.list_training_jobs()

    assert len(answers.sent) == 3 and response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(sleeps) == 2 and all(0 <= delay <= 2**i for i, delay in enumerate(sleeps))


@pytest.mark.parametrize("fault", [INTERNAL_FAILURE, SERVICE_UNAVAILABLE], ids=lambda f: f[1])
def test_a_lasting_server_fault_fails_after_the_budget_naming_the_fault(sagemaker, fault):
    sagemaker_client, answer = sagemaker
    answers = answer(fault)

    with pytest.raises(ClientError, match=rf"\({fault[1]}\) when calling the ListTrainingJobs operation "
                                          rf"\(reached max retries: {ATTEMPTS - 1}\)"):
        sagemaker_client.list_training_jobs()

    assert len(answers.sent) == ATTEMPTS


def test_a_validation_error_is_not_retried(sagemaker, sleeps):
    sagemaker_client, answer = sagemaker
    answers = answer(VALIDATION, OK)

    with pytest.raises(ClientError) as raised:
        sagemaker_client.list_training_jobs()

    assert len(answers.sent) == 1 and sleeps == []
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert "reached max retries" not in str(raised.value)
