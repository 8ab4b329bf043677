"""Data capture of the local runtime: sampled requests and answers in SageMaker's data-capture layout.

An endpoint deployed with a ``DataCaptureConfig`` (``EnableCapture``, ``InitialSamplingPercentage``,
``DestinationS3Uri``, ``CaptureOptions``, ``CaptureContentTypeHeader``) has its invocations
sampled and written the way SageMaker writes them::

    <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl

one JSON object a line::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8",
                                        "mode": "OUTPUT", "data": "...", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<the caller's>",
                       "inferenceTime": "2026-01-01T10:00:00.123Z"},
     "eventVersion": "0"}

The encoding is ``CSV`` for a content type the config lists under ``CsvContentTypes``, ``JSON``
under ``JsonContentTypes``, else ``BASE64`` (the data base64-encoded), as SageMaker does.

Off the request's critical path: :meth:`CaptureWriter.record` only samples and appends to a
bounded buffer (a record that finds it full is dropped and counted, never waited for); a
background thread writes the buffer out every ``flush_interval`` seconds, one file per
endpoint, variant and hour. Never imports Airflow: files are written whole with
:func:`~mlops.core.storage.write_bytes_without_airflow` (a reader never sees half a file; on S3,
one PUT under the runtime's own role, with no bucket probe).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops.core.storage import write_bytes_without_airflow

MAX_BUFFERED = 10_000  # records waiting to be written, at most (the rest are dropped and counted)
FLUSH_INTERVAL_S = 1.0
EVENT_VERSION = "0"

log = logging.getLogger(__name__)


def _base_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


@dataclass(frozen=True)
class CaptureSettings:
    """What an endpoint's ``DataCaptureConfig`` asks for (see :meth:`from_config`)."""

    destination: str
    sampling_percentage: int
    capture_input: bool = True
    capture_output: bool = True
    csv_types: tuple[str, ...] = ("text/csv",)
    json_types: tuple[str, ...] = ("application/json",)

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> CaptureSettings | None:
        """The settings of a ``DataCaptureConfig``; None when there is none or it is disabled.

        Raises ``ValueError`` naming the field that is malformed.
        """
        if not config or not config.get("EnableCapture", True):
            return None
        destination = config.get("DestinationS3Uri")
        if not isinstance(destination, str) or "://" not in destination:
            raise ValueError(f"DataCaptureConfig.DestinationS3Uri must be a URI, got {destination!r}")
        percentage = config.get("InitialSamplingPercentage")
        if not isinstance(percentage, int) or isinstance(percentage, bool) or not 0 <= percentage <= 100:
            raise ValueError(f"DataCaptureConfig.InitialSamplingPercentage must be 0-100, got {percentage!r}")
        modes = {str(option.get("CaptureMode", "")).upper() for option in config.get("CaptureOptions") or []}
        unknown = modes - {"INPUT", "OUTPUT"}
        if unknown or not modes:
            raise ValueError(f"DataCaptureConfig.CaptureOptions must name Input and/or Output, got {sorted(modes)}")
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            destination=destination.rstrip("/"), sampling_percentage=percentage,
            capture_input="INPUT" in modes, capture_output="OUTPUT" in modes,
            csv_types=tuple(_base_type(t) for t in header.get("CsvContentTypes", ["text/csv"])),
            json_types=tuple(_base_type(t) for t in header.get("JsonContentTypes", ["application/json"])),
        )

    def encode(self, content_type: str, data: bytes, mode: str) -> dict[str, str]:
        """One side of ``captureData``, encoded as SageMaker encodes it."""
        base = _base_type(content_type)
        if base in self.csv_types or base in self.json_types:
            try:
                text, encoding = data.decode("utf-8"), "CSV" if base in self.csv_types else "JSON"
            except UnicodeDecodeError:
                text, encoding = base64.b64encode(data).decode("ascii"), "BASE64"
        else:
            text, encoding = base64.b64encode(data).decode("ascii"), "BASE64"
        return {"observedContentType": content_type, "mode": mode, "data": text, "encoding": encoding}


def capture_record(settings: CaptureSettings, request: bytes, content_type: str, response: bytes,
                   response_type: str, inference_time: datetime, inference_id: str | None = None,
                   event_id: str | None = None) -> dict[str, Any]:
    """One line of a capture file (see the module docstring)."""
    data: dict[str, Any] = {}
    if settings.capture_input:
        data["endpointInput"] = settings.encode(content_type, request, "INPUT")
    if settings.capture_output:
        data["endpointOutput"] = settings.encode(response_type, response, "OUTPUT")
    metadata = {"eventId": event_id or str(uuid.uuid4()),
                "inferenceTime": inference_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{inference_time.microsecond // 1000:03d}Z"}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": EVENT_VERSION}


def hour_prefix(destination: str, endpoint: str, variant: str, moment: datetime) -> str:
    """``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh``: where the records of that hour go."""
    return f"{destination.rstrip('/')}/{endpoint}/{variant}/{moment.astimezone(UTC):%Y/%m/%d/%H}"


def write_capture_file(prefix: str, lines: list[str], moment: datetime) -> str:
    """Write ``lines`` as a new ``.jsonl`` file under ``prefix``; return its URI."""
    moment = moment.astimezone(UTC)
    name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    uri = f"{prefix}/{name}"
    write_bytes_without_airflow(uri, "".join(line + "\n" for line in lines).encode("utf-8"))
    return uri


class CaptureWriter:
    """Samples invocations and writes them out on a background thread (bounded memory).

    :param max_buffered: records waiting to be written at most; more are dropped (``dropped``).
    :param flush_interval: seconds between writes of the buffer.
    :param seed: seeds the sampling (tests); None: unpredictable.
    """

    def __init__(self, max_buffered: int = MAX_BUFFERED, flush_interval: float = FLUSH_INTERVAL_S,
                 seed: int | None = None):
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be at least 1, got {max_buffered}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be more than 0 seconds, got {flush_interval}")
        self.max_buffered = max_buffered
        self.flush_interval = flush_interval
        self._random = random.Random(seed)  # noqa: S311 - sampling, not security
        self._buffer: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.captured = 0  # records written, dropped (buffer full) and failed to write
        self.dropped = 0
        self.failed = 0

    def sampled(self, settings: CaptureSettings) -> bool:
        return settings.sampling_percentage >= 100 or self._random.random() * 100 < settings.sampling_percentage

    def record(self, settings: CaptureSettings | None, endpoint: str, variant: str, request: bytes,
               content_type: str, response: bytes, response_type: str, inference_id: str | None = None,
               when: datetime | None = None) -> bool:
        """Sample and buffer one invocation; True when it will be written. Never blocks on I/O."""
        if settings is None or not self.sampled(settings):
            return False
        when = when or datetime.now(UTC)
        line = capture_record(settings, request, content_type, response, response_type, when, inference_id)
        with self._lock:
            if len(self._buffer) >= self.max_buffered:
                self.dropped += 1
                return False
            self._buffer.append((hour_prefix(settings.destination, endpoint, variant, when), when.isoformat(), line))
        self._ensure_started()
        return True

    def flush(self) -> int:
        """Write every buffered record now (one file per endpoint, variant and hour); return how many."""
        with self._lock:
            taken, self._buffer = self._buffer, deque()
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for prefix, moment, line in taken:
            groups.setdefault(prefix, []).append((moment, line))
        written = 0
        for prefix, records in groups.items():
            try:
                first = datetime.fromisoformat(records[0][0])
                write_capture_file(prefix, [json.dumps(line, separators=(",", ":")) for _, line in records], first)
                written += len(records)
            except Exception:  # the endpoint keeps answering; the loss is counted and logged
                log.exception("writing %d captured record(s) under %s failed", len(records), prefix)
                with self._lock:
                    self.failed += len(records)
        with self._lock:
            self.captured += written
        return written

    def stop(self) -> None:
        """Write what is buffered and stop the background thread."""
        self._stopped.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        self.flush()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"captured": self.captured, "buffered": len(self._buffer), "dropped": self.dropped,
                    "failed": self.failed}

    def _ensure_started(self) -> None:
        if self._thread is None and not self._stopped.is_set():
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="data-capture", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            started = time.monotonic()
            self.flush()
            log.debug("data capture flushed in %.1f ms", (time.monotonic() - started) * 1000)
