"""The local twin of SageMaker hosting: one process serving every local endpoint, on 127.0.0.1 by default.

It is a service of its own, like SageMaker's endpoint service, not part of an Airflow task: it
never imports Airflow (artifacts are read with fsspec directly and the process's own AWS
credentials: :func:`mlops.core.storage.read_bytes_without_airflow`), and it starts with an environment
built from an allowlist (:func:`runtime_environment`), never the environment of the process that
started it (an Airflow task's blocks Airflow's database), in a session of its own.

It speaks the SageMaker Runtime REST path, so the real boto3 ``sagemaker-runtime`` client works
against it with ``endpoint_url=settings.runtime_url`` (the SigV4 signature is not checked)::

    POST /endpoints/{name}/invocations     InvokeEndpoint: body, Content-Type, Accept
    GET  /ping                             health (200), with this runtime's pid and folder

and an admin API that :class:`mlops.backends.local.hosting.LocalHosting` drives::

    PUT    /admin/endpoints/{name}         {config_name, model_uri, sha256, environment, account}
    GET    /admin/endpoints/{name}?account=…  {name, config_name, status, sha256, account, ...}
    DELETE /admin/endpoints/{name}?account=…
    GET    /admin/endpoints[?account=…]

Every endpoint belongs to an account (the local twin's stages live in accounts of their own, as
in AWS's multi-account deployment design): the admin API sees only the endpoints of the account
it is asked for, and an invocation signed with an account id as its access key (what
``LocalHosting.runtime_client`` sends) reaches only that account's endpoints; another account's
is "not found", as SageMaker answers. Endpoint names are one namespace here (SageMaker's are per
account): a name taken by another account is refused. An unsigned request, or one signed with
a key that is not an account id (``curl``, the demo's hint), reaches any endpoint by name.

Requests are answered by ``include/serving/inference.py``, the handlers the SageMaker
scikit-learn container runs (``model_fn`` once per deploy; per request ``parse_request`` ->
``predict_fn`` -> ``write_response``, which the container's ``input_fn``/``output_fn`` wrap), so a
model answers the same way on both backends. The request is read as the container reads it: the
content type defaults to application/json, and a missing or ``*/*`` Accept becomes the
endpoint's ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (application/json by default).

Errors are answered as SageMaker Runtime answers them (botocore parses them with the
``sagemaker-runtime`` error shapes): an unknown, failed or badly named endpoint is a 400
``ValidationError``; a body over 6 MB (4 MB on a serverless endpoint) a 413; whatever the model answers other than 200 is a 424
``ModelError`` carrying the container's own status and body in ``OriginalStatusCode`` and
``OriginalMessage`` (4xx for a request the handlers refuse, 500 for any other exception, as in
the container) and a ``LogStreamArn``; a failure of the runtime itself is a 500 ``InternalFailure``.

Invocations are answered on prediction threads (:class:`PredictionBatcher`; one per core but one, at
most 4, or ``MLOPS_RUNTIME_WORKERS``) whose native thread pools (OpenMP, BLAS) are limited to one
thread each: a single-record request pays for no thread fan-out (on a busy machine OpenMP's
spinning threads cost a small prediction ten times its work). Invocations of one endpoint that
queue up while the threads are busy are answered together: the handlers' ``batch_input_fn``
parses their bodies into one frame where it can (``text/csv`` for a model with a schema: see
``include/serving/inference.py``), else ``parse_request`` parses each and frames whose column types
agree are combined; one ``predict_fn`` call predicts them and the predictions are split back per
request for ``write_response``. The models served here predict each record on its own, so an answer
does not depend on its neighbours; when anything fails in a combined call, each request is
answered alone, so one bad request never fails another. A batch waits up to 3 ms
(``MLOPS_RUNTIME_BATCH_WAIT_MS``) for the clients the previous batch answered, so concurrent
clients share one prediction instead of taking turns; a lone client never waits.

Two process settings keep the slowest answers close to the typical ones: the GIL hand-over
interval is 1 ms instead of 5 (the event loop gets to read and answer while the prediction
thread runs Python), and once the endpoints are loaded (and after every deploy) the objects
alive are frozen out of the garbage collector (:func:`freeze_heap`), which otherwise paused the
process for up to 140 ms at a time.

A deploy verifies the artifact's sha256 before extracting it into
``runtime_dir/models/<sha256>/``, loads it, and only then swaps it in: the old model serves
until the new one is ready, and a failed deploy leaves the endpoint as it was. The endpoint
table persists in ``runtime_dir/endpoints.json`` and is restored on start; the process writes
``runtime_dir/runtime.pid`` and logs every request to ``runtime_dir/runtime.log``.

Run it with ``python -m mlops.backends.local.runtime <command>`` (``plugins/`` on ``PYTHONPATH``):

    serve    serve in the foreground (what a container or a service manager runs)
    start    start it detached (own session, clean environment, logs to runtime.log), wait
             until /ping answers, print its URL and pid; exits 0 at once when it already runs
    stop     SIGTERM, then SIGKILL after 10 s; fine when none runs
    status   pid, URL and endpoints as JSON; exit code 3 when it does not run

or from Python: :func:`start_runtime` (``start``; returns the pid), :func:`stop_runtime`
(``stop``), :func:`status`. :class:`~mlops.backends.local.hosting.LocalHosting` calls
:func:`start_runtime` on demand. The settings (:mod:`mlops.core.settings`): ``MLOPS_RUNTIME_PORT``,
``MLOPS_RUNTIME_HOST`` (the address bound; 127.0.0.1 unless a container must be reached from
others) and ``MLOPS_RUNTIME_URL`` (where clients reach it; a runtime at a non-loopback URL is a
service started elsewhere, e.g. docker-compose's ``model-runtime``, and is waited for, never started).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import logging
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from mlops.core.entrypoints import inference_module
from mlops.core.settings import PROJECT_ROOT, Settings, get_settings
from mlops.core.storage import (
    SHA256,
    DigestMismatch,
    read_bytes_without_airflow,
    unpack_model,
    write_text_atomic,
)

HOST = "127.0.0.1"  # the default bind address (MLOPS_RUNTIME_HOST)
PLUGINS_DIR = PROJECT_ROOT / "plugins"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint limit
# Serverless Inference: "The maximum request and response payload size is 4 MB" (Serverless
# Inference, feature exclusions and limits).
SERVERLESS_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
DRAIN_LIMIT_BYTES = 8 * MAX_PAYLOAD_BYTES
PRODUCTION_VARIANT = "AllTraffic"
ACCOUNT = "000000000000"  # the registry's account, and that of endpoints deployed without one
ACCOUNT_ID = re.compile(r"\d{12}")
CREDENTIAL = re.compile(r"Credential=(\d{12})/")  # a SigV4 Authorization header signed by an account id
REGION = "us-east-1"  # the region of local endpoints (LocalHosting's)
IN_SERVICE = "InService"
FAILED = "Failed"
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")  # SageMaker's EndpointName pattern
NAME_MAX = 63  # ... and its length limit
MODEL_ERROR_STATUS = 424  # SageMaker's status for a ModelError, whatever the container answered
MODULE = "mlops.backends.local.runtime"
MAX_BATCH_REQUESTS = 64  # invocations answered by one predict_fn call, at most
BATCH_WAIT_S = 0.003  # how long a batch waits, at most, for the clients the last one answered
SWITCH_INTERVAL_S = 0.001  # GIL hand-over interval: the event loop waits at most this for the predictor
NATIVE_THREADS = 1  # OpenMP/BLAS threads of each prediction thread
PREDICTION_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))  # a core stays free for HTTP
PER_MODEL_KEYS = frozenset({"labels"})  # predict_fn keys that describe the model, not a record
DEFAULT_CONTENT_TYPE = "application/json"  # what the container assumes without a Content-Type
DEFAULT_ACCEPT = "application/json"  # ... and without an Accept (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT)

log = logging.getLogger(MODULE)


# ---------------------------------------------------------------- files in runtime_dir
def pid_file(runtime_dir: Path) -> Path:
    return runtime_dir / "runtime.pid"


def log_file(runtime_dir: Path) -> Path:
    return runtime_dir / "runtime.log"


def table_file(runtime_dir: Path) -> Path:
    return runtime_dir / "endpoints.json"


def _write_atomically(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def freeze_heap() -> None:
    """Collect, then move every object alive now out of the garbage collector's sight.

    The modules and models a runtime loads are hundreds of thousands of objects that live as
    long as it does; left tracked, every full collection walks them all, pausing the process for
    20-140 ms (measured under load) — the slowest 1% of answers. Called once the endpoints are
    loaded and after every deploy.
    """
    gc.collect()
    gc.freeze()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- the endpoint table
@dataclass(frozen=True)
class ServedEndpoint:
    """One endpoint and the model it serves. Immutable: a deploy replaces the whole object."""

    name: str
    config_name: str
    model_uri: str
    sha256: str
    environment: dict[str, str]
    created_at: str
    last_modified_at: str
    model: Any = field(default=None, repr=False, compare=False)
    response_keys: tuple[str, ...] = ()
    failure_reason: str | None = None
    serverless: bool = False
    account: str = ACCOUNT

    @property
    def max_payload_bytes(self) -> int:
        return SERVERLESS_MAX_PAYLOAD_BYTES if self.serverless else MAX_PAYLOAD_BYTES

    @property
    def status(self) -> str:
        return IN_SERVICE if self.model is not None else FAILED

    def record(self) -> dict[str, Any]:
        """What ``endpoints.json`` keeps: enough to load the endpoint again."""
        return {
            "config_name": self.config_name,
            "model_uri": self.model_uri,
            "sha256": self.sha256,
            "environment": self.environment,
            "created_at": self.created_at,
            "last_modified_at": self.last_modified_at,
            "serverless": self.serverless,
            "account": self.account,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            **self.record(),
            "response_keys": list(self.response_keys),
            "failure_reason": self.failure_reason,
        }

    def invoke(self, inference: ModuleType, body: bytes, content_type: str, accept: str) -> tuple[str, str]:
        """``parse_request`` -> ``predict_fn`` -> ``write_response``; returns (body, content type).

        Raises the handlers' ``RequestError`` for a request they refuse.
        """
        frame = inference.parse_request(body, content_type, self.model)
        return self.respond(inference, inference.predict_fn(frame, self.model), accept)

    def respond(self, inference: ModuleType, prediction: dict[str, Any], accept: str) -> tuple[str, str]:
        """``write_response`` with this endpoint's response keys."""
        return inference.write_response(prediction, accept, list(self.response_keys))

    def default_accept(self) -> str:
        """The answer type for a request without Accept (or ``*/*``), as the container picks it."""
        return self.environment.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or DEFAULT_ACCEPT


class EndpointTable:
    """The endpoints this runtime serves, persisted to ``endpoints.json``.

    Reads take no lock: an endpoint is an immutable object, and a deploy swaps the dict entry
    in one assignment once the new model is loaded. Deploys and deletes are serialised by one
    lock, so the persisted file and the extracted models always agree with the table.

    :param runtime_dir: the runtime's folder (``settings.runtime_dir``).
    :param inference: the serving entry point module (``include/serving/inference.py``).
    """

    def __init__(self, runtime_dir: Path, inference: ModuleType):
        self.runtime_dir = runtime_dir
        self.models_dir = runtime_dir / "models"
        self.inference = inference
        self._endpoints: dict[str, ServedEndpoint] = {}
        self._admin = threading.Lock()

    def get(self, name: str, account: str | None = None) -> ServedEndpoint | None:
        """The endpoint ``name``; None when there is none, or it is not ``account``'s."""
        endpoint = self._endpoints.get(name)
        return endpoint if endpoint is not None and account in (None, endpoint.account) else None

    def all(self, account: str | None = None) -> list[ServedEndpoint]:
        return sorted((e for e in self._endpoints.values() if account in (None, e.account)), key=lambda e: e.name)

    def deploy(
        self, name: str, config_name: str, model_uri: str, sha256: str, environment: dict[str, str],
        serverless: bool = False, account: str = ACCOUNT,
    ) -> ServedEndpoint:
        """Verify, extract and load the model, then swap it in.

        Raises :class:`DigestMismatch` (the artifact changed), ``ValueError`` (bad name, digest,
        account or environment, or a name another account's endpoint has) or whatever loading
        raised; the endpoint keeps its old model then.
        """
        if len(name) > NAME_MAX or not ENDPOINT_NAME.match(name):
            raise ValueError(f"endpoint name {name!r} must be 1-{NAME_MAX} characters matching {ENDPOINT_NAME.pattern}")
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 {sha256!r} is not 64 lowercase hex digits")
        if not ACCOUNT_ID.fullmatch(account):
            raise ValueError(f"account {account!r} is not 12 digits")
        taken = self._endpoints.get(name)
        if taken is not None and taken.account != account:
            raise ValueError(f"endpoint name {name} is taken by account {taken.account} (the local twin's endpoint "
                             "names are one namespace)")
        with self._admin:
            try:
                model_dir = self._extract(model_uri, sha256)
                model = self.inference.model_fn(str(model_dir))
                keys = tuple(self.inference.response_keys(model, environment))
                now = _now()
                old = self._endpoints.get(name)
                endpoint = ServedEndpoint(
                    name=name, config_name=config_name, model_uri=model_uri, sha256=sha256,
                    environment=dict(environment), created_at=old.created_at if old else now,
                    last_modified_at=now, model=model, response_keys=keys, serverless=serverless,
                    account=account,
                )
                self._endpoints[name] = endpoint
                self._save()
                freeze_heap()
            finally:
                # The served models are in memory; drop folders no endpoint refers to any more.
                self._prune_models()
        log.info("endpoint %s of account %s serves %s (config %s, sha256 %s)", name, account, model_uri,
                 config_name, sha256)
        return endpoint

    def delete(self, name: str, account: str | None = None) -> bool:
        with self._admin:
            if self.get(name, account) is None:
                return False
            self._endpoints.pop(name)
            self._save()
            self._prune_models()
        log.info("endpoint %s deleted", name)
        return True

    def restore(self) -> None:
        """Load every endpoint in ``endpoints.json``; one that fails to load is kept as Failed."""
        path = table_file(self.runtime_dir)
        if not path.exists():
            return
        records = json.loads(path.read_text(encoding="utf-8")).get("endpoints", {})
        with self._admin:
            for name, record in records.items():
                endpoint = ServedEndpoint(name=name, **record)
                try:
                    model_dir = self.models_dir / endpoint.sha256
                    if not model_dir.is_dir():
                        model_dir = self._extract(endpoint.model_uri, endpoint.sha256)
                    model = self.inference.model_fn(str(model_dir))
                    keys = tuple(self.inference.response_keys(model, endpoint.environment))
                    endpoint = replace(endpoint, model=model, response_keys=keys)
                    log.info("restored endpoint %s (sha256 %s)", name, endpoint.sha256)
                except Exception as err:
                    log.exception("could not restore endpoint %s", name)
                    endpoint = replace(endpoint, failure_reason=f"{type(err).__name__}: {err}")
                self._endpoints[name] = endpoint
            self._prune_models()

    def _extract(self, model_uri: str, sha256: str) -> Path:
        """Verify and extract into a staging folder, then rename it to ``models/<sha256>``.

        The digest is checked on every deploy, even when the folder exists already: the
        artifact at ``model_uri`` must still be the one that was recorded.
        """
        self.models_dir.mkdir(parents=True, exist_ok=True)
        target = self.models_dir / sha256
        staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=self.models_dir))
        try:
            unpack_model(model_uri, staging, sha256, read=read_bytes_without_airflow)
            if not target.exists():
                os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _prune_models(self) -> None:
        """Remove extracted models no endpoint serves (and staging leftovers of a crash)."""
        if not self.models_dir.is_dir():
            return
        keep = {e.sha256 for e in self._endpoints.values()}
        for child in self.models_dir.iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)

    def _save(self) -> None:
        payload = {"endpoints": {e.name: e.record() for e in self.all()}}
        _write_atomically(table_file(self.runtime_dir), json.dumps(payload, indent=2, sort_keys=True))


# ---------------------------------------------------------------- prediction
@dataclass(eq=False)
class _Invocation:
    endpoint: ServedEndpoint
    body: bytes
    content_type: str
    accept: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    frame: Any = None
    queued_at: float = field(default_factory=time.monotonic)


_Answer = tuple[_Invocation, Any, BaseException | None]  # (job, (body, content type), error)


def _split_prediction(prediction: dict[str, Any], sizes: list[int]) -> list[dict[str, Any]]:
    """Cut a combined ``predict_fn`` result back into one result per request, in order."""
    parts, start = [], 0
    for size in sizes:
        parts.append({
            key: value if key in PER_MODEL_KEYS else value[start:start + size]
            for key, value in prediction.items()
        })
        start += size
    return parts


class PredictionBatcher:
    """Answers invocations on prediction threads, predicting the requests that queue up together.

    The event loop hands each invocation over and awaits its future; a thread takes whatever
    has queued up (at most ``max_requests``) and, per endpoint, parses the bodies together with
    the handlers' ``batch_input_fn`` (one frame for all of them) where it can, else each with
    ``parse_request``; predicts in one ``predict_fn`` call; and writes each answer with
    ``write_response``. With nothing else queued this is exactly ``ServedEndpoint.invoke``. Frames
    parsed alone are only combined when every column's dtype agrees, so combining never changes
    how a value is read (an ``int`` column stays ``int``); ``batch_input_fn`` types columns from
    the model's schema, so there the question does not arise.

    :param inference: the serving handlers module.
    :param max_requests: invocations per ``predict_fn`` call at most; 1 turns batching off.
    :param native_threads: OpenMP/BLAS threads of each prediction thread.
    :param workers: prediction threads. More than one lets the parts of parsing and prediction
        that release the GIL (numpy, pandas, the tree predictors) run on several cores.
    :param batch_wait: seconds a batch waits, at most, for the clients the previous batch
        answered (see :meth:`_wait_for_company`); 0 turns waiting off.
    """

    def __init__(self, inference: ModuleType, max_requests: int = MAX_BATCH_REQUESTS,
                 native_threads: int | None = NATIVE_THREADS, workers: int = PREDICTION_WORKERS,
                 batch_wait: float = BATCH_WAIT_S):
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {max_requests}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if batch_wait < 0:
            raise ValueError(f"batch_wait must be 0 or more seconds, got {batch_wait}")
        self.inference = inference
        self.max_requests = max_requests
        self.native_threads = native_threads
        self.workers = workers
        self.batch_wait = batch_wait
        self._answered = 0  # the size of the last batch answered, and when it was answered
        self._answered_at = 0.0
        self._queue: queue.SimpleQueue[_Invocation | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.predict_calls = 0  # predict_fn calls, and the invocations they answered
        self.invocations = 0

    async def invoke(self, endpoint: ServedEndpoint, body: bytes, content_type: str,
                     accept: str) -> tuple[str, str]:
        """(body, content type) of the answer; raises what the handlers raised for this request."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        job = _Invocation(endpoint, body, content_type, accept, loop, loop.create_future())
        self._queue.put(job)
        return await job.future

    def stop(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout=10)

    def _ensure_started(self) -> None:
        if not self._threads:
            with self._lock:
                if not self._threads:
                    self._threads = [threading.Thread(target=self._run, name=f"predict-{i}", daemon=True)
                                     for i in range(self.workers)]
                    for thread in self._threads:
                        thread.start()

    def _run(self) -> None:
        from sklearn import config_context
        from threadpoolctl import threadpool_limits

        # OpenMP limits and scikit-learn's config are per thread: set here, they hold for every
        # prediction this thread makes. Parameter validation re-checks a fitted model's own
        # hyperparameters on every call (7% of a one-record predict_proba); the answers are the same.
        with threadpool_limits(limits=self.native_threads), config_context(skip_parameter_validation=True):
            while True:
                job = self._queue.get()
                if job is None:
                    return
                jobs = [job]
                if not self._drain(jobs):
                    self._wait_for_company(jobs)
                by_endpoint: dict[int, list[_Invocation]] = {}
                for each in jobs:
                    by_endpoint.setdefault(id(each.endpoint), []).append(each)
                for group in by_endpoint.values():
                    try:
                        self._answer(group)
                    except Exception as err:  # a bug here must not leave requests waiting forever
                        log.exception("answering %d invocation(s) failed", len(group))
                        self._settle_all([(each, None, err) for each in group])
                with self._lock:
                    self._answered, self._answered_at = len(jobs), time.monotonic()

    def _drain(self, jobs: list[_Invocation]) -> bool:
        """Add what is queued (up to ``max_requests``) to ``jobs``; True when a stop was seen."""
        while len(jobs) < self.max_requests:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return False
            if more is None:
                self._queue.put(None)  # stop after answering what was taken (this or another worker)
                return True
            jobs.append(more)
        return False

    def _wait_for_company(self, jobs: list[_Invocation]) -> None:
        """Wait, at most ``batch_wait``, until ``jobs`` holds as many requests as are expected now.

        Expected: the requests the last batch answered (their clients are about to send the next
        ones) plus those in ``jobs`` that queued before it was answered (other clients'). Without
        the wait, clients settle into two groups that take turns, one predicted while the other
        queues, and every request waits for two predictions; with it they share one. A lone
        client expects only itself and never waits; when fewer come than expected, the wait
        ends after ``batch_wait`` and the next batch expects fewer.
        """
        with self._lock:
            answered, answered_at = self._answered, self._answered_at
        expected = min(self.max_requests, answered + sum(1 for job in jobs if job.queued_at < answered_at))
        deadline = time.monotonic() + self.batch_wait
        while len(jobs) < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                more = self._queue.get(timeout=left)
            except queue.Empty:
                return
            if more is None:
                self._queue.put(None)  # stop after answering what was taken
                return
            jobs.append(more)
            if self._drain(jobs):
                return

    def _answer(self, jobs: list[_Invocation]) -> None:
        answers = self._answer_parsed_together(jobs) if len(jobs) > 1 else None
        self._settle_all(answers if answers is not None else self._answer_parsed_alone(jobs))

    def _answer_parsed_together(self, jobs: list[_Invocation]) -> list[_Answer] | None:
        """One ``batch_input_fn`` and one ``predict_fn`` call for every job; None to parse them alone.

        None when the handlers have no ``batch_input_fn`` or decline (it returns None), when the
        jobs differ in content type, or when parsing or predicting fails: then each job gets its
        own answer or error from :meth:`_answer_parsed_alone`.
        """
        inference = self.inference
        batch_input_fn = getattr(inference, "batch_input_fn", None)
        content_type = jobs[0].content_type
        if batch_input_fn is None or any(job.content_type != content_type for job in jobs):
            return None
        model = jobs[0].endpoint.model
        try:
            parsed = batch_input_fn([job.body for job in jobs], content_type, model)
            if parsed is None:
                return None
            frame, sizes = parsed
            if len(sizes) != len(jobs) or len(frame) != sum(sizes):
                raise ValueError(f"batch_input_fn gave {len(frame)} rows for sizes {sizes}")
            predictions = _split_prediction(inference.predict_fn(frame, model), sizes)
        except Exception:  # a bad request among them: it gets its own error when parsed alone
            return None
        self._count(predict_calls=1, invocations=len(jobs))
        return [self._respond(job, prediction) for job, prediction in zip(jobs, predictions)]

    def _answer_parsed_alone(self, jobs: list[_Invocation]) -> list[_Answer]:
        """``parse_request`` per job; frames with matching column types share a ``predict_fn`` call."""
        inference = self.inference
        parsed: dict[tuple, list[_Invocation]] = {}
        answers: list[_Answer] = []  # settled together at the end
        for job in jobs:
            try:
                job.frame = inference.parse_request(job.body, job.content_type, job.endpoint.model)
            except Exception as err:  # handed to the awaiting request
                answers.append((job, None, err))
                continue
            signature = (tuple(job.frame.columns), tuple(str(t) for t in job.frame.dtypes))
            parsed.setdefault(signature, []).append(job)
        for group in parsed.values():
            predictions = self._predict_together(group) if len(group) > 1 else None
            self._count(predict_calls=1 if predictions else len(group), invocations=len(group))
            answers += [self._respond(job, prediction)
                        for job, prediction in zip(group, predictions or [None] * len(group))]
        return answers

    def _respond(self, job: _Invocation, prediction: dict[str, Any] | None) -> _Answer:
        """``write_response`` for ``job`` (after its own ``predict_fn`` when ``prediction`` is None);
        an error is handed to the awaiting request."""
        try:
            if prediction is None:
                prediction = self.inference.predict_fn(job.frame, job.endpoint.model)
            return job, job.endpoint.respond(self.inference, prediction, job.accept), None
        except Exception as err:
            return job, None, err

    def _count(self, predict_calls: int, invocations: int) -> None:
        with self._lock:
            self.predict_calls += predict_calls
            self.invocations += invocations

    def _predict_together(self, group: list[_Invocation]) -> list[dict[str, Any]] | None:
        """One ``predict_fn`` call for the group, split per request; None when it failed."""
        import pandas as pd

        frames = [job.frame for job in group]
        try:
            combined = pd.concat(frames, ignore_index=True)
            prediction = self.inference.predict_fn(combined, group[0].endpoint.model)
            return _split_prediction(prediction, [len(frame) for frame in frames])
        except Exception:  # one request's rows broke the model: answer each request alone
            return None

    @staticmethod
    def _settle_all(answers: list[_Answer]) -> None:
        """Hand each (job, result, error) to its event loop: one wake-up per loop, not per job."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for answer in answers:
            answer[0].frame = None
            by_loop.setdefault(answer[0].loop, []).append(answer)

        def settle(answers: list[_Answer]) -> None:
            for job, result, error in answers:
                if job.future.done():  # the client went away and the request was cancelled
                    continue
                if error is not None:
                    job.future.set_exception(error)
                else:
                    job.future.set_result(result)

        for loop, some in by_loop.items():
            try:
                loop.call_soon_threadsafe(settle, some)
            except RuntimeError:  # the event loop is closed: nobody waits for these answers
                pass


# ---------------------------------------------------------------- the HTTP app
class EndpointRequest(BaseModel):
    """Body of ``PUT /admin/endpoints/{name}``."""

    config_name: str = Field(min_length=1)
    model_uri: str = Field(min_length=1)
    sha256: str
    environment: dict[str, str] = Field(default_factory=dict)
    serverless: bool = False  # the config is serverless: SageMaker's smaller payload limit applies
    account: str = ACCOUNT  # the account the endpoint belongs to


def _caller_account(request: Request) -> str | None:
    """The account an invocation is signed by (its SigV4 access key is an account id), or None."""
    match = CREDENTIAL.search(request.headers.get("authorization", ""))
    return match.group(1) if match else None


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """An error the way SageMaker sends it: botocore reads the code from ``x-amzn-ErrorType``."""
    return JSONResponse(
        {"ErrorCode": code, "Message": message, **extra},
        status_code=status,
        headers={"x-amzn-ErrorType": code},
    )


def _model_error(endpoint: str, original_status: int, original_message: str, log_path: Path,
                 account: str = ACCOUNT) -> JSONResponse:
    """A ``ModelError`` (HTTP 424) as SageMaker sends it when the model answers other than 200.

    ``original_status`` and ``original_message`` are the container's own status and body; the
    message and ``LogStreamArn`` name where the endpoint's log is (here: ``runtime.log``).
    """
    kind = "client" if original_status < 500 else "server"
    return _error(
        MODEL_ERROR_STATUS,
        "ModelError",
        f'Received {kind} error ({original_status}) from primary with message "{original_message}". '
        f"See {log_path} in account {account} for more information.",
        OriginalStatusCode=original_status,
        OriginalMessage=original_message,
        LogStreamArn=f"arn:aws:logs:{REGION}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint}",
    )


def _answer_type(mime: str) -> str:
    """The Content-Type the container answers with: its Flask server adds the charset to text/*
    types (werkzeug's ``get_content_type``), and SageMaker passes it on to the client."""
    return f"{mime}; charset=utf-8" if mime.startswith("text/") else mime


def _request_types(request: Request, endpoint: ServedEndpoint) -> tuple[str, str]:
    """(content type, accept) of an invocation as the container reads them.

    The content type is ``Content-Type`` (application/json when missing); the Accept header is
    handed on as it came, unless missing or ``*/*``: then it is the endpoint's default.
    """
    content_type = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
    accept = request.headers.get("accept")
    if not accept or accept == "*/*":
        accept = endpoint.default_accept()
    return content_type, accept


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None when it is over ``MAX_PAYLOAD_BYTES``.

    An oversized body is still drained (up to a hard cap) so the client reads the 413 instead
    of a connection reset in the middle of its upload.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > DRAIN_LIMIT_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_PAYLOAD_BYTES:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT_BYTES:
            break
    return b"".join(chunks) if size <= MAX_PAYLOAD_BYTES else None


class RequestLog:
    """ASGI middleware logging method, path, status and milliseconds of every request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status, logged = 500, False

        def write_line():
            nonlocal logged
            logged = True
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed)

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                write_line()  # before the last byte leaves, so a client never outruns the log
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if not logged:
                write_line()


def create_app(table: EndpointTable, runtime_dir: Path, batcher: PredictionBatcher | None = None) -> FastAPI:
    """The runtime's ASGI app serving ``table``, predicting on ``batcher``'s thread."""
    inference = table.inference
    batcher = batcher or PredictionBatcher(inference)
    log_path = log_file(runtime_dir)
    app = FastAPI(title="mlops local SageMaker runtime", docs_url=None, redoc_url=None)
    app.add_middleware(RequestLog)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        return _error(400, "ValidationError", f"invalid request: {exc.errors()}")

    @app.exception_handler(Exception)
    async def internal_failure(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, "InternalFailure", f"the runtime failed: {type(exc).__name__}: {exc}")

    @app.get("/ping")
    async def ping() -> dict[str, Any]:
        return {"status": "Healthy", "pid": os.getpid(), "runtime_dir": str(runtime_dir),
                "handlers": getattr(inference, "__file__", None), "prediction_workers": batcher.workers,
                "invocations": batcher.invocations, "predict_calls": batcher.predict_calls}

    @app.post("/endpoints/{name}/invocations")
    async def invoke_endpoint(name: str, request: Request):
        body = await _read_body(request)
        if body is None:  # SageMaker's front end answers this itself, without an error type
            return JSONResponse({"message": f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."},
                                status_code=413)
        if len(name) > NAME_MAX or not ENDPOINT_NAME.match(name):
            return _error(400, "ValidationError", (
                f"1 validation error detected: Value '{name}' at 'endpointName' failed to satisfy constraint: "
                f"Member must have length less than or equal to {NAME_MAX} and match the regular expression "
                f"pattern: {ENDPOINT_NAME.pattern}"))
        caller = _caller_account(request)
        endpoint = table.get(name, caller)
        if endpoint is None:
            return _error(400, "ValidationError", f"Endpoint {name} of account {caller or ACCOUNT} not found.")
        if endpoint.model is None:
            return _error(
                400, "ValidationError",
                f"Endpoint {name} of account {endpoint.account} is {FAILED}: {endpoint.failure_reason}",
            )
        if len(body) > endpoint.max_payload_bytes:
            return JSONResponse({"message": f"HTTP content length exceeded {endpoint.max_payload_bytes} bytes."},
                                status_code=413)
        content_type, accept = _request_types(request, endpoint)
        try:
            # Prediction is CPU-bound: the batcher's thread runs it, the event loop keeps serving.
            payload, mime = await batcher.invoke(endpoint, body, content_type, accept)
        except inference.RequestError as err:  # the container answers a refusal with its status
            refusal = inference.ErrorResponse.of(err)
            return _model_error(name, refusal.status, refusal.body, log_path, endpoint.account)
        except Exception as err:  # the container answers any other exception with 500
            log.exception("endpoint %s failed to answer", name)
            return _model_error(name, 500, f"{type(err).__name__}: {err}", log_path, endpoint.account)
        return Response(
            content=payload.encode("utf-8"),
            headers={"Content-Type": _answer_type(mime),
                     "x-Amzn-Invoked-Production-Variant": PRODUCTION_VARIANT},
        )

    @app.put("/admin/endpoints/{name}")
    def deploy_endpoint(name: str, spec: EndpointRequest):
        try:
            endpoint = table.deploy(name, spec.config_name, spec.model_uri, spec.sha256, spec.environment,
                                    serverless=spec.serverless, account=spec.account)
        except DigestMismatch as err:
            return _error(409, "DigestMismatch", str(err))
        except ValueError as err:
            return _error(400, "ValidationError", str(err))
        except Exception as err:
            log.exception("deploying endpoint %s failed", name)
            return _error(500, "ModelLoadError", f"{type(err).__name__}: {err}")
        return endpoint.describe()

    @app.get("/admin/endpoints")
    def list_endpoints(account: str | None = None) -> dict[str, Any]:
        return {"endpoints": [e.describe() for e in table.all(account)]}

    @app.get("/admin/endpoints/{name}")
    def describe_endpoint(name: str, account: str | None = None):
        endpoint = table.get(name, account)
        if endpoint is None:
            return _error(404, "ValidationError", f"Could not find endpoint {name}.")
        return endpoint.describe()

    @app.delete("/admin/endpoints/{name}")
    def delete_endpoint(name: str, account: str | None = None):
        if not table.delete(name, account):
            return _error(404, "ValidationError", f"Could not find endpoint {name}.")
        return {"name": name, "deleted": True}

    app.state.batcher = batcher
    return app


# ---------------------------------------------------------------- process control
def _configure_logging(runtime_dir: Path) -> None:
    """Send the runtime's and uvicorn's logs to ``runtime.log``.

    The handlers sit on these named loggers rather than the root, so the libraries' own INFO
    lines (s3fs, botocore) stay out of the request log; their warnings still reach stderr,
    which is ``runtime.log`` too when :func:`start_runtime` started the process.
    """
    handler = logging.FileHandler(log_file(runtime_dir), encoding="utf-8")
    handlers: list[logging.Handler] = [handler] + ([logging.StreamHandler()] if sys.stderr.isatty() else [])
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    for name in (MODULE, "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for each in handlers:
        each.setFormatter(formatter)


def serve(settings: Settings) -> int:
    """Bind ``MLOPS_RUNTIME_HOST:MLOPS_RUNTIME_PORT``, restore the endpoints and serve until SIGTERM/SIGINT."""
    import uvicorn

    runtime_dir = settings.runtime_dir
    runtime_dir.mkdir(parents=True, exist_ok=True)
    _configure_logging(runtime_dir)
    try:
        workers = int(_env_number("MLOPS_RUNTIME_WORKERS", PREDICTION_WORKERS, minimum=1))
        batch_wait = _env_number("MLOPS_RUNTIME_BATCH_WAIT_MS", BATCH_WAIT_S * 1000, minimum=0) / 1000
    except ValueError as err:
        log.error("%s", err)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.runtime_host, settings.runtime_port))
        sock.listen(2048)  # listening at once: a concurrent start now fails to bind or listen
    except OSError as err:
        sock.close()
        log.error("cannot bind %s:%d: %s (is another runtime running?)", settings.runtime_host,
                  settings.runtime_port, err)
        return 1
    # Written only once the port is ours, so a losing concurrent start leaves the file alone.
    _write_atomically(pid_file(runtime_dir), f"{os.getpid()}\n")
    try:
        table = EndpointTable(runtime_dir, inference_module())
        table.restore()
        batcher = PredictionBatcher(table.inference, workers=workers, batch_wait=batch_wait)
        # The prediction thread holds the GIL for long stretches of Python (pandas, scikit-learn);
        # CPython's default 5 ms hand-over made the event loop wait that long to read a request
        # or send an answer.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        freeze_heap()
        config = uvicorn.Config(
            create_app(table, runtime_dir, batcher), log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=5,
        )
        log.info("runtime %d serving %s:%d (%s) from %s", os.getpid(), settings.runtime_host,
                 settings.runtime_port, settings.runtime_url, runtime_dir)
        # uvicorn shuts down gracefully, then re-raises the signal to the handler it found:
        # make that handler a clean exit, so the finally below still runs.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _exit_cleanly)
        uvicorn.Server(config).run(sockets=[sock])
        batcher.stop()
    finally:
        _remove_pid_file(runtime_dir, os.getpid())
        log.info("runtime %d stopped", os.getpid())
    return 0


# Variables the runtime keeps from the environment of whoever starts it; everything else (an
# Airflow worker's AIRFLOW__*, AIRFLOW_CONN_*, _AIRFLOW_* among them) is left out.
RUNTIME_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
})
RUNTIME_ENV_PREFIXES = ("LC_", "MLOPS_", "AWS_")  # locale, project settings, AWS credentials/region/endpoint


def runtime_environment(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment the runtime starts with: an allowlist of ``environ``, plus ``settings``.

    Kept: :data:`RUNTIME_ENV_NAMES` (PATH, HOME, locale, TZ, TMPDIR, TLS certificates, proxies)
    and the ``LC_*``, ``MLOPS_*`` and ``AWS_*`` variables (the runtime reads ``s3://`` models
    with its own AWS credentials); ``PYTHONPATH`` is ``plugins/`` and then ``environ``'s entries;
    the ``MLOPS_*`` settings the runtime reads are set from ``settings``. Nothing else, in
    particular no Airflow variable: a task's environment blocks Airflow's database.

    :param environ: the starting process's environment; default ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    env = {name: value for name, value in environ.items()
           if name in RUNTIME_ENV_NAMES or name.startswith(RUNTIME_ENV_PREFIXES)}
    paths = [str(PLUGINS_DIR)] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(
        MLOPS_BACKEND=settings.backend,
        MLOPS_HOME=str(settings.home),
        MLOPS_DATA_URI=settings.data_uri,
        MLOPS_AWS_CONN_ID=settings.aws_conn_id,
        MLOPS_RUNTIME_PORT=str(settings.runtime_port),
        MLOPS_RUNTIME_HOST=settings.runtime_host,
    )
    env.pop("MLOPS_RUNTIME_URL", None)
    if settings.runtime_service_url:
        env["MLOPS_RUNTIME_URL"] = settings.runtime_service_url
    return env


def ping(settings: Settings) -> dict[str, Any] | None:
    """The runtime's ``/ping`` answer, or None when nothing answers in time.

    Raises ``RuntimeError`` when the URL is answered by something else, such as the runtime of
    another ``MLOPS_HOME``.
    """
    url = f"{settings.runtime_url}/ping"
    # Never through an HTTP(S)_PROXY: the runtime is on this machine or in the same network.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            info = json.loads(response.read())
    except (urllib.error.HTTPError, ValueError) as err:
        raise RuntimeError(f"{url} is answered by something other than the runtime") from err
    except OSError:
        return None
    served = info.get("runtime_dir") if isinstance(info, dict) else None
    if served is None:
        raise RuntimeError(f"{url} is answered by something other than the runtime")
    if served != str(settings.runtime_dir):
        raise RuntimeError(
            f"{url} is served by the runtime of {served}, not of {settings.runtime_dir}; "
            "give this MLOPS_HOME its own MLOPS_RUNTIME_PORT"
        )
    return info


def _runs_here(settings: Settings) -> bool:
    """Whether ``settings.runtime_url`` is on this machine's loopback (so this process may start it)."""
    host = urllib.parse.urlsplit(settings.runtime_url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def start_runtime(settings: Settings, timeout: float = 60.0) -> int:
    """Start the runtime of ``settings`` detached, unless it answers ``/ping`` already; return its pid.

    The process runs ``serve`` in a session of its own with :func:`runtime_environment` (never
    the caller's environment), in ``runtime_dir``, appending its output to ``runtime.log``; this
    waits until it answers ``/ping``. A runtime at a URL off this machine (``MLOPS_RUNTIME_URL``)
    is a service started elsewhere: it is only waited for.

    Raises ``RuntimeError`` naming the log when the runtime exits before answering or does not
    answer within ``timeout`` seconds, and when the URL is answered by something else.
    """
    info = ping(settings)
    if info is not None:
        return int(info["pid"])
    process = None
    if _runs_here(settings):
        runtime_dir = settings.runtime_dir
        runtime_dir.mkdir(parents=True, exist_ok=True)
        with log_file(runtime_dir).open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", MODULE, "serve"], env=runtime_environment(settings), cwd=runtime_dir,
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = ping(settings)
        if info is not None:
            return int(info["pid"])
        # Exited: fine if a runtime started concurrently holds the port, else a real failure.
        if process is not None and process.poll() is not None and not _port_listening(settings.runtime_port):
            raise RuntimeError(
                f"the local runtime exited with code {process.returncode} before answering "
                f"{settings.runtime_url}/ping; see {log_file(settings.runtime_dir)}"
            )
        time.sleep(0.1)
    where = (f"see {log_file(settings.runtime_dir)}" if process is not None
             else "it is a service of its own (MLOPS_RUNTIME_URL): is it running?")
    raise RuntimeError(f"the model runtime did not answer {settings.runtime_url}/ping within {timeout:.0f}s; {where}")


def _env_number(name: str, default: float, minimum: float) -> float:
    """A number from the environment variable ``name`` (``default`` when unset or empty)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{name}={raw!r} is not a number")
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def read_pid(runtime_dir: Path) -> int | None:
    try:
        text = pid_file(runtime_dir).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _remove_pid_file(runtime_dir: Path, pid: int | None) -> None:
    """Remove the pid file if it still names ``pid`` (a newer runtime may own it)."""
    if read_pid(runtime_dir) == pid:
        pid_file(runtime_dir).unlink(missing_ok=True)


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it first when it is our own exited child (no zombies)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_runtime_process(pid: int) -> bool:
    """Guard against a recycled pid: on Linux, check the command line names this module."""
    if not Path("/proc/self").exists():
        return True
    try:
        return MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


def stop_runtime(runtime_dir: Path, timeout: float = 10.0) -> int | None:
    """Stop the runtime named by the pid file: SIGTERM, wait ``timeout`` s, then SIGKILL.

    Returns the pid stopped, or None when nothing ran (not an error). The pid file is removed.
    """
    pid = read_pid(runtime_dir)
    if pid is None:
        pid_file(runtime_dir).unlink(missing_ok=True)
        return None
    if not is_alive(pid) or not _is_runtime_process(pid):
        _remove_pid_file(runtime_dir, pid)
        return None
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    _remove_pid_file(runtime_dir, pid)
    return pid


def status(settings: Settings) -> dict[str, Any]:
    """Pid, URL and endpoints of the runtime, as far as it answers."""
    pid = read_pid(settings.runtime_dir)
    info: dict[str, Any] = {
        "running": pid is not None and is_alive(pid), "pid": pid, "url": settings.runtime_url,
        "runtime_dir": str(settings.runtime_dir), "endpoints": None,
    }
    if info["running"]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{settings.runtime_url}/admin/endpoints", timeout=5) as response:
                info["endpoints"] = [
                    {k: e[k] for k in ("name", "status", "config_name", "sha256")}
                    for e in json.loads(response.read())["endpoints"]
                ]
        except OSError as err:
            info["error"] = f"runtime does not answer: {err}"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("serve", "start", "stop", "status"))
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "serve":
        return serve(settings)
    if args.command == "start":
        try:
            pid = start_runtime(settings)
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"runtime {pid} serving {settings.runtime_url} (log {log_file(settings.runtime_dir)})")
        return 0
    if args.command == "stop":
        pid = stop_runtime(settings.runtime_dir)
        print(f"stopped runtime {pid}" if pid else "no runtime running")
        return 0
    info = status(settings)
    print(json.dumps(info, indent=2))
    return 0 if info["running"] else 3


if __name__ == "__main__":
    sys.exit(main())
