"""Prediction threads of the local runtime: invocations of one endpoint that queue up are answered
by one ``predict_fn`` call and split back per request; one bad request never fails another."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from mlops.backends.local.runtime.endpoints import ServedEndpoint

MAX_BATCH_REQUESTS = 64  # invocations answered by one predict_fn call, at most
BATCH_WAIT_S = 0.003  # how long a batch waits, at most, for the clients the last one answered
NATIVE_THREADS = 1  # OpenMP/BLAS threads of each prediction thread
PREDICTION_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))  # a core stays free for HTTP
PER_MODEL_KEYS = frozenset({"labels"})  # predict_fn keys that describe the model, not a record

log = logging.getLogger(__name__)


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


def _signature(frame: Any) -> tuple:
    """Parsed requests with equal signatures can be predicted together (:func:`_combine`): frames
    whose columns and dtypes agree, or the handlers' own inputs whose ``signature`` agrees."""
    import pandas as pd

    if isinstance(frame, pd.DataFrame):
        return ("frame", tuple(frame.columns), tuple(str(t) for t in frame.dtypes))
    signature = getattr(frame, "signature", None)
    return (type(frame).__name__, signature if signature is not None else id(frame))


def _combine(frames: list[Any]) -> Any:
    """One input of every row of ``frames`` (equal :func:`_signature`), in order."""
    import pandas as pd

    if isinstance(frames[0], pd.DataFrame):
        return pd.concat(frames, ignore_index=True)
    return type(frames[0]).concat(frames)


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
            parsed.setdefault(_signature(job.frame), []).append(job)
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
        frames = [job.frame for job in group]
        try:
            combined = _combine(frames)
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
