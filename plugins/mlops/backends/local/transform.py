"""Local twin of a SageMaker batch transform job (SplitType=Line, AssembleWith=Line, MultiRecord).

The model artifact is fetched and its recorded sha256 verified once per job
(``storage.unpack_model``); each worker process then loads it once through the serving
handlers (``include/serving/inference.py``: ``model_fn``, then ``parse_request`` -> ``predict_fn``
-> ``write_response`` per mini-batch, what the container's ``input_fn``/``output_fn`` run). Every CSV file at the input URI (one file, or every file under
a prefix; names starting with ``.`` or ``_`` are skipped) is read once, as a stream of
mini-batches of at most ``chunk_rows`` lines and ``max_payload_mb`` bytes (SageMaker's
``BatchStrategy=MultiRecord`` with ``MaxPayloadInMB``; a single line over the limit fails the
job, as on SageMaker). At most ``max_in_flight`` mini-batches are in memory or in the pool at
any time, and results are written in input order to ``<output_uri>/<input file name>.out``: one
output line per non-empty input line. Memory is therefore bounded by the mini-batch size and
the number of workers, not by the input size.

The parent process only moves bytes (read a mini-batch of raw lines, hand it to the pool, write
the returned bytes); decoding, CSV parsing, filtering, prediction and serialisation happen in
the workers, so the work scales with ``n_jobs``. A worker handles a plain mini-batch (UTF-8, no
quote character, the same number of fields on every line) column by column
(:func:`predict_columns`: pyarrow text columns for the fields the filters use, the handlers'
columnar input (the compiled feature step's matrix, or the typed frame) and CSV writer) and any
other record by record (:func:`predict_lines`); both write the same bytes and refuse the same
records. The workers are a
:class:`~mlops.backends.local.workers.WorkerPool`: fresh interpreters without Airflow's
environment variables or the caller's ``__main__`` (they start cleanly inside an Airflow task),
and a worker that dies fails the job with its exit code or signal and the end of its stderr.

``DataProcessing`` is honoured for CSV: ``input_filter`` and ``output_filter`` take the
JSONPath subset used with CSV records (``$``, ``$[2]``, ``$[0,-1]``, ``$[1:]``, ``$[:-1]``)
and ``join_source`` puts the input fields before the prediction fields (``JoinSource=Input``).

A job is a transaction: outputs are written under temporary names (``.<name>.out.<job>.partial``,
hidden from readers that skip names starting with ``.``, as Athena, Spark and the project's own
readers do) and renamed when complete, and ``<output_uri>/_SUCCESS`` (JSON: job name, row counts)
is written last. A job whose ``_SUCCESS`` names it is not run again. When the store fails under
a job (a full disk, an S3 endpoint that stops answering), the job raises
:class:`TransformOutputError` naming what it was writing and the store's own error (botocore's
names the endpoint URL); a temporary output that cannot be removed then (the store is gone) is
left under its hidden name, and the next try of any job on that output removes it before it
writes, so a retry publishes exactly one output.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.backends.base import BatchTransform, JobHandle, TransformResult
from mlops.backends.local.automl import check_name
from mlops.backends.local.workers import WorkerPool

if TYPE_CHECKING:
    from mlops.backends.local.automl import FlamlAutoML

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
CSV = "text/csv"
_INDEX = r"-?\d+"
_SLICE = re.compile(rf"^\$\[\s*({_INDEX})?\s*:\s*({_INDEX})?\s*\]$")
_INDICES = re.compile(rf"^\$\[\s*{_INDEX}\s*(,\s*{_INDEX}\s*)*\]$")
PARTIAL = ".partial"
MAX_CAUSE_CHARS = 600


class TransformOutputError(RuntimeError):
    """The transform's output could not be written to its store (a full disk, an unreachable S3
    endpoint): nothing is published, ``_SUCCESS`` is not written, a retry writes it again."""


@contextlib.contextmanager
def _writing(job_name: str, uri: Any) -> Iterator[None]:
    """Raise a store's failure inside as :class:`TransformOutputError` naming the job and ``uri``."""
    try:
        yield
    except Exception as err:
        cause = f"{type(err).__name__}: {err}"
        if len(cause) > MAX_CAUSE_CHARS:
            cause = cause[:MAX_CAUSE_CHARS] + "…"
        raise TransformOutputError(
            f"transform {job_name}: could not write {uri}: {cause}. Nothing is published ({SUCCESS} is "
            "written last); a retry writes the output again"
        ) from err


def _remove_quietly(path: Any, job_name: str) -> None:
    """Remove a temporary output after a failure; when the store refuses (it is gone), say so and
    leave it: it keeps its hidden name, and the next try removes it (``_remove_temporary_outputs``)."""
    try:
        path.unlink(missing_ok=True)
    except Exception as err:  # noqa: BLE001 - the failure being raised matters more than this one
        log.warning("transform %s: could not remove the temporary output %s (%s: %s); the next try "
                    "removes it", job_name, path, type(err).__name__, str(err)[:MAX_CAUSE_CHARS])


# ---------------------------------------------------------------- JSONPath filters
@dataclass(frozen=True)
class FieldFilter:
    """A JSONPath expression over one CSV record's fields, as SageMaker's DataProcessing takes it.

    Supported: ``$`` (all fields), ``$[i]``, ``$[i,j,...]`` and ``$[a:b]`` slices, with negative
    indices counting from the end.
    """

    expression: str
    indices: tuple[int, ...] | None = None
    start: int | None = None
    stop: int | None = None

    @classmethod
    def parse(cls, expression: str | None) -> FieldFilter:
        text = "$" if expression is None else str(expression).strip()
        if text == "$":
            return cls(text)
        if match := _SLICE.match(text):
            start, stop = (int(v) if v is not None else None for v in match.groups())
            return cls(text, start=start, stop=stop)
        if _INDICES.match(text):
            return cls(text, indices=tuple(int(v) for v in text[2:-1].split(",")))
        raise ValueError(
            f"unsupported JSONPath filter {expression!r}: use $, $[i], $[i,j,...] or $[a:b] "
            "(e.g. $[1:], $[:-1], $[0,-1])"
        )

    @property
    def selects_all(self) -> bool:
        return self.expression == "$"

    def apply(self, fields: list[str]) -> list[str]:
        if self.indices is None:
            return fields[self.start:self.stop]
        try:
            return [fields[i] for i in self.indices]
        except IndexError:
            raise ValueError(
                f"filter {self.expression} selects a field beyond the {len(fields)} fields of a record"
            ) from None


# ---------------------------------------------------------------- one mini-batch (runs in a worker)
_WORKER: dict[str, Any] = {}


def load_worker(model_dir: str, environment: dict[str, str], input_filter: str | None,
                join_source: bool, output_filter: str | None, threads: int | None = None) -> None:
    """Load the model once for this process (a pool initializer, or in-process for n_jobs=1).

    ``threads`` caps the native thread pools (OpenMP, BLAS) while this process predicts: the
    parallelism comes from the worker processes, and ``n_jobs`` processes each running an
    OpenMP team as wide as the machine spin-wait against each other.
    """
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    model = inference.model_fn(model_dir)
    if threads:  # after loading: threadpoolctl only reaches the native libraries already loaded
        from threadpoolctl import threadpool_limits

        _WORKER["limits"] = threadpool_limits(limits=threads)
    _WORKER.update(
        inference=inference, model=model, keys=inference.response_keys(model, environment),
        input_filter=FieldFilter.parse(input_filter), join_source=join_source,
        output_filter=FieldFilter.parse(output_filter),
    )


def _csv_lines(rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def split_records(payload: bytes) -> list[str]:
    """The non-empty lines of a mini-batch, without line endings (``\\n`` or ``\\r\\n``)."""
    return [line for line in (raw.rstrip("\r") for raw in payload.decode("utf-8").split("\n")) if line.strip()]


def predict_lines(lines: list[str]) -> str:
    """Output lines (newline-terminated, in order) for ``lines``, one per input line."""
    inference, model, keys = _WORKER["inference"], _WORKER["model"], _WORKER["keys"]
    input_filter, output_filter = _WORKER["input_filter"], _WORKER["output_filter"]
    join_source = _WORKER["join_source"]
    records = None
    if input_filter.selects_all:
        body = "\n".join(lines)
    else:
        records = list(csv.reader(lines))
        body = _csv_lines(input_filter.apply(fields) for fields in records)
    frame = inference.parse_request(body, CSV, model)
    prediction = inference.predict_fn(frame, model)
    text, _ = inference.write_response(prediction, CSV, keys)
    if join_source or not output_filter.selects_all:
        predicted = csv.reader(io.StringIO(text))
        if join_source:
            records = records if records is not None else list(csv.reader(lines))
            predicted = (source + fields for source, fields in zip(records, predicted, strict=True))
        text = _csv_lines(output_filter.apply(fields) for fields in predicted)
    produced = text.count("\n")
    if produced != len(lines):
        raise RuntimeError(f"a mini-batch of {len(lines)} records produced {produced} output lines")
    return text


@dataclass(frozen=True)
class ColumnPlan:
    """Where each field comes from for records of ``n_fields`` fields: the positions of the feature
    fields (after the input filter), and per output field a source field position or a response key
    index (after the join and the output filter)."""

    features: list[int]
    outputs: list[tuple[str, int]]

    @property
    def sources(self) -> list[int]:
        return sorted({index for kind, index in self.outputs if kind == "source"})


def column_plan(n_fields: int) -> ColumnPlan | None:
    """The :class:`ColumnPlan` for this worker's filters, or None when records of ``n_fields`` fields
    cannot be predicted column by column (the filters select fields they lack, or not one per feature):
    the row-by-row path then fails them as it always has."""
    plans = _WORKER.setdefault("plans", {})
    if n_fields not in plans:
        model, keys = _WORKER["model"], _WORKER["keys"]
        try:
            features = _WORKER["input_filter"].apply(list(range(n_fields)))
            joined = n_fields if _WORKER["join_source"] else 0
            chosen = _WORKER["output_filter"].apply(list(range(joined + len(keys))))
        except ValueError:
            chosen = features = []
        plans[n_fields] = None if len(features) != len(model.feature_columns) or not chosen else ColumnPlan(
            features, [("source", i) if i < joined else ("key", i - joined) for i in chosen])
    return plans[n_fields]


def predict_columns(payload: bytes) -> tuple[int, bytes] | None:
    """``(records, output bytes)`` for a plain mini-batch, read, predicted and written column by
    column; None when it is not plain CSV (quoted fields, a record of another width, ...): then
    :func:`predict_lines` decides, record by record. Both give the same bytes."""
    inference, model = _WORKER["inference"], _WORKER["model"]
    body = payload.lstrip(b"\r\n")
    end = body.find(b"\n")
    first = body if end < 0 else body[:end]
    if not first.strip():
        return None
    plan = column_plan(first.count(b",") + 1)
    if plan is None:
        return None
    wanted = plan.features + plan.sources
    columns = inference.plain_csv_columns(payload, first.count(b",") + 1, wanted)
    if columns is None:
        return None
    frame = inference.columnar_input(columns[:len(plan.features)], model)
    if frame is None:
        return None
    fields = inference.csv_response_fields(inference.predict_fn(frame, model), _WORKER["keys"])
    if fields is None:
        return None
    sources = dict(zip(plan.sources, (column.to_pylist() for column in columns[len(plan.features):])))
    text = inference.csv_lines([sources[i] if kind == "source" else fields[i] for kind, i in plan.outputs])
    return len(frame), text.encode("utf-8")


def predict_chunk(payload: bytes) -> tuple[int, bytes]:
    """``(records, output bytes)`` for one mini-batch of raw input lines."""
    if (done := predict_columns(payload)) is not None:
        return done
    lines = split_records(payload)
    if not lines:
        return 0, b""
    return len(lines), predict_lines(lines).encode("utf-8")


# ---------------------------------------------------------------- the BatchTransform port
class LocalBatchTransform(BatchTransform):
    """SageMaker batch transform on this machine: streaming, mini-batched, parallel.

    :param automl: where models are recorded (``describe_model``).
    :param chunk_rows: most lines per mini-batch. SageMaker sizes a MultiRecord mini-batch by
        ``MaxPayloadInMB`` alone; the cap keeps a worker's matrix small (20,000 churn rows: 1.8 MB
        of input), and a worker handles a mini-batch of 20,000 churn rows about 7% faster a row
        than one of 5,000 (what is paid once per mini-batch: reading it, the estimator's call
        per tree, writing the answer).
    :param n_jobs: worker processes; ``1`` predicts in this process.
    :param max_in_flight: mini-batches read ahead of the writer; default ``2 * n_jobs``.
    :param max_payload_mb: most bytes per mini-batch (SageMaker's ``MaxPayloadInMB``).
    :param threads_per_worker: native threads (OpenMP, BLAS) each worker predicts with;
        ``None`` leaves the libraries' default (all cores, per process).
    :param log_every_s: seconds between progress lines.
    """

    def __init__(self, automl: FlamlAutoML, chunk_rows: int = 20_000, n_jobs: int = 2,
                 max_in_flight: int | None = None, max_payload_mb: float = 6,
                 threads_per_worker: int | None = 1, log_every_s: float = 10.0):
        if not 1 <= chunk_rows <= 100_000:
            raise ValueError(f"chunk_rows must be between 1 and 100000, not {chunk_rows}")
        if n_jobs < 1:
            raise ValueError(f"n_jobs must be at least 1, not {n_jobs}")
        if not 0 < max_payload_mb <= 100:
            raise ValueError(f"max_payload_mb must be above 0 and at most 100, not {max_payload_mb}")
        self.automl = automl
        self.chunk_rows = chunk_rows
        self.n_jobs = n_jobs
        self.max_in_flight = max_in_flight or 2 * n_jobs
        self.max_payload_bytes = int(max_payload_mb * 1024 * 1024)
        self.threads_per_worker = threads_per_worker
        self.log_every_s = log_every_s

    def submit(self, job_name: str, model_name: str, input_uri: str, output_uri: str,
               content_type: str = CSV, input_filter: str | None = None, join_source: bool = False,
               output_filter: str | None = None) -> JobHandle:
        """Run the transform here and now; the handle is done and carries the result."""
        result = self.transform(job_name, model_name, input_uri, output_uri, content_type, input_filter,
                                join_source, output_filter)
        return JobHandle(kind="transform", name=job_name, done=True, result=result.to_dict())

    def transform(
        self, job_name: str, model_name: str, input_uri: str, output_uri: str,
        content_type: str = CSV, input_filter: str | None = None,
        join_source: bool = False, output_filter: str | None = None,
    ) -> TransformResult:
        from mlops.core.storage import scratch_dir, to_path, unpack_model

        check_name("transform job", job_name)
        if (content_type or CSV).split(";")[0].strip().lower() != CSV:
            raise ValueError(f"content type {content_type!r} is not supported: the local transform "
                             f"reads {CSV}")
        FieldFilter.parse(input_filter)
        FieldFilter.parse(output_filter)
        output_uri = output_uri.rstrip("/")
        out_dir = to_path(output_uri)
        success = out_dir / SUCCESS
        if success.exists():
            done = json.loads(success.read_text())
            if done.get("job_name") == job_name:
                log.info("transform %s already succeeded at %s: reusing it", job_name, output_uri)
                return TransformResult(job_name, output_uri, int(done["input_rows"]),
                                       int(done["output_rows"]))
            log.info("%s holds job %s's output: replacing it", output_uri, done.get("job_name"))
            success.unlink()

        model = self.automl.describe_model(model_name)
        container = model["PrimaryContainer"]
        inputs = self._input_files(input_uri)
        sizes = [path.stat().st_size for _, path in inputs]
        log.info("transform %s: model %s, %d file(s), %.1f MB, mini-batches of <= %d rows and <= %.1f MB, "
                 "%d worker(s)", job_name, model_name, len(inputs), sum(sizes) / 1e6, self.chunk_rows,
                 self.max_payload_bytes / 2**20, self.n_jobs)

        model_dir = scratch_dir("transform")
        try:
            unpack_model(container["ModelDataUrl"], model_dir, model["sha256"])
            worker_args = (str(model_dir), dict(container.get("Environment") or {}), input_filter,
                           bool(join_source), output_filter, self.threads_per_worker)
            started = last_log = time.monotonic()
            with _writing(job_name, out_dir):
                out_dir.mkdir(parents=True, exist_ok=True)
                self._remove_temporary_outputs(out_dir, job_name)
            outputs, input_rows, output_rows, bytes_read = [], 0, 0, 0
            with self._runner(job_name, worker_args) as submit:
                for relative, path in inputs:
                    target = out_dir / f"{relative}.out"
                    partial = target.parent / f".{target.name}.{job_name}{PARTIAL}"
                    file_in = file_out = 0
                    sink = None
                    try:
                        with _writing(job_name, partial):
                            target.parent.mkdir(parents=True, exist_ok=True)
                            sink = partial.open("wb")
                        for n_bytes, (n_records, data) in self._ordered(submit, self._chunks(path)):
                            with _writing(job_name, partial):
                                sink.write(data)
                            file_in += n_records
                            file_out += data.count(b"\n")
                            bytes_read += n_bytes
                            if time.monotonic() - last_log >= self.log_every_s:
                                last_log = time.monotonic()
                                log.info("transform %s: %d rows, %.0f%% of the input, %.0f rows/s", job_name,
                                         input_rows + file_in, 100 * bytes_read / max(sum(sizes), 1),
                                         (input_rows + file_in) / max(last_log - started, 1e-9))
                        if file_out != file_in:
                            raise RuntimeError(
                                f"transform {job_name}: {path} has {file_in} records but {file_out} output "
                                "lines were written"
                            )
                        with _writing(job_name, target):
                            sink.close()  # the upload: an S3 object appears whole here, or not at all
                            partial.replace(target)
                    except BaseException:
                        if sink is not None:
                            with contextlib.suppress(Exception):
                                sink.close()
                        _remove_quietly(partial, job_name)
                        raise
                    outputs.append(str(target))
                    input_rows += file_in
                    output_rows += file_out
        finally:
            shutil.rmtree(model_dir, ignore_errors=True)

        if input_rows != output_rows:
            raise RuntimeError(f"transform {job_name}: {input_rows} input rows but {output_rows} output rows")
        seconds = time.monotonic() - started
        with _writing(job_name, success):
            success.write_text(json.dumps({
                "job_name": job_name, "model_name": model_name, "input_uri": input_uri,
                "output_uri": output_uri, "input_rows": input_rows, "output_rows": output_rows,
                "outputs": outputs, "seconds": round(seconds, 3),
            }, indent=2, sort_keys=True))
        log.info("transform %s: %d rows in %.1f s (%.0f rows/s) -> %s", job_name, input_rows, seconds,
                 input_rows / max(seconds, 1e-9), output_uri)
        return TransformResult(job_name, output_uri, input_rows, output_rows)

    @staticmethod
    def _remove_temporary_outputs(out_dir: Any, job_name: str) -> None:
        """Remove the temporary outputs (``.*.partial``) earlier tries left under ``out_dir``: a
        try whose store went away could not remove its own."""
        if not out_dir.exists():
            return
        left = [p for p in out_dir.rglob(f"*{PARTIAL}") if p.name.startswith(".") and p.is_file()]
        for path in left:
            path.unlink(missing_ok=True)
        if left:
            log.info("transform %s: removed %d temporary output(s) earlier tries left: %s", job_name, len(left),
                     ", ".join(p.name for p in left[:5]) + (", …" if len(left) > 5 else ""))

    # ------------------------------------------------------------ input
    @staticmethod
    def _input_files(input_uri: str) -> list[tuple[str, Any]]:
        """(name relative to the input prefix, path) of every input file, in name order."""
        from mlops.core.storage import relative_name, to_path

        root = to_path(input_uri)
        if root.is_file():
            return [(root.name, root)]
        if not root.exists():
            raise FileNotFoundError(f"transform input {input_uri} does not exist")
        files = sorted(
            (relative_name(p, root), p) for p in root.rglob("*") if p.is_file()
            and not any(part.startswith((".", "_")) for part in relative_name(p, root).split("/"))
        )
        if not files:
            raise ValueError(f"no input files under {input_uri}")
        return files

    def _chunks(self, path) -> Iterator[bytes]:
        """Mini-batches of raw lines: at most ``chunk_rows`` lines and ``max_payload_bytes`` bytes."""
        limit = self.max_payload_bytes
        with path.open("rb") as handle:
            while lines := list(itertools.islice(handle, self.chunk_rows)):
                payload = b"".join(lines)
                if len(payload) <= limit:
                    yield payload
                    continue
                batch: list[bytes] = []
                size = 0
                for number, line in enumerate(lines, 1):
                    if len(line) > limit:
                        raise ValueError(
                            f"{path}: a record of {len(line)} bytes exceeds the mini-batch payload limit of "
                            f"{limit} bytes (max_payload_mb); line {number} of its mini-batch"
                        )
                    if size + len(line) > limit:
                        yield b"".join(batch)
                        batch, size = [], 0
                    batch.append(line)
                    size += len(line)
                if batch:
                    yield b"".join(batch)

    # ------------------------------------------------------------ execution
    def _runner(self, job_name: str, worker_args: tuple) -> _Runner:
        return _Runner(f"transform {job_name}", self.n_jobs, worker_args)

    def _ordered(self, submit: Callable[[bytes], Future], chunks: Iterator[bytes]
                 ) -> Iterator[tuple[int, tuple[int, bytes]]]:
        """(payload bytes, (records, output bytes)) per mini-batch, in input order, with at most
        ``max_in_flight`` pending."""
        pending: deque[tuple[int, Future]] = deque()
        for chunk in chunks:
            pending.append((len(chunk), submit(chunk)))
            if len(pending) >= self.max_in_flight:
                n, future = pending.popleft()
                yield n, future.result()
        while pending:
            n, future = pending.popleft()
            yield n, future.result()


class _Runner:
    """Context manager giving a ``submit(payload) -> Future``: a :class:`WorkerPool`, or this process.

    Leaving it raises :class:`~mlops.backends.local.workers.WorkerDied` when a worker died.
    """

    def __init__(self, job: str, n_jobs: int, worker_args: tuple):
        self.job = job
        self.n_jobs = n_jobs
        self.worker_args = worker_args
        self.pool: WorkerPool | None = None

    def __enter__(self) -> Callable[[bytes], Future]:
        if self.n_jobs == 1:
            load_worker(*self.worker_args)
            return self._submit_here
        self.pool = WorkerPool(self.job, self.n_jobs, initializer=load_worker, initargs=self.worker_args)
        return lambda payload: self.pool.submit(predict_chunk, payload)

    @staticmethod
    def _submit_here(payload: bytes) -> Future:
        future: Future = Future()
        try:
            future.set_result(predict_chunk(payload))
        except BaseException as err:  # surfaces at .result(), like a pool's future
            future.set_exception(err)
        return future

    def __exit__(self, *exc) -> None:
        try:
            if self.pool is not None:
                self.pool.__exit__(*exc)
        finally:
            limits = _WORKER.get("limits")
            if limits is not None:  # in-process: give the caller its thread pools back
                limits.restore_original_limits()
            _WORKER.clear()
