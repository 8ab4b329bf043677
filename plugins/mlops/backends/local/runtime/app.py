"""The HTTP app of the local runtime: SageMaker Runtime's InvokeEndpoint path, ``/ping``, and the
admin API LocalHosting drives; errors answered with SageMaker Runtime's status codes and shapes."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from mlops.backends.local.runtime.batcher import PredictionBatcher
from mlops.backends.local.runtime.capture import CaptureWriter
from mlops.backends.local.runtime.endpoints import (
    ACCOUNT,
    ENDPOINT_NAME,
    FAILED,
    MAX_PAYLOAD_BYTES,
    NAME_MAX,
    PRODUCTION_VARIANT,
    REGION,
    EndpointTable,
    ServedEndpoint,
    log_file,
)
from mlops.core.storage import (
    DigestMismatch,
)

DRAIN_LIMIT_BYTES = 8 * MAX_PAYLOAD_BYTES
CREDENTIAL = re.compile(r"Credential=(\d{12})/")  # a SigV4 Authorization header signed by an account id
MODEL_ERROR_STATUS = 424  # SageMaker's status for a ModelError, whatever the container answered
DEFAULT_CONTENT_TYPE = "application/json"  # what the container assumes without a Content-Type

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the HTTP app
class EndpointRequest(BaseModel):
    """Body of ``PUT /admin/endpoints/{name}``."""

    config_name: str = Field(min_length=1)
    model_uri: str = Field(min_length=1)
    sha256: str
    environment: dict[str, str] = Field(default_factory=dict)
    serverless: bool = False  # the config is serverless: SageMaker's smaller payload limit applies
    account: str = ACCOUNT  # the account the endpoint belongs to
    data_capture: dict[str, Any] | None = None  # SageMaker's DataCaptureConfig


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


INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"  # InvokeEndpoint's InferenceId


def create_app(table: EndpointTable, runtime_dir: Path, batcher: PredictionBatcher | None = None,
               capture: CaptureWriter | None = None, code: str | None = None) -> FastAPI:
    """The runtime's ASGI app serving ``table``, predicting on ``batcher``'s thread; the invocations
    of endpoints with a ``DataCaptureConfig`` are sampled into ``capture``'s buffer. ``/ping``
    names ``code``, the digest of the code the runtime runs (:func:`~mlops.core.code_version.content_digest`)."""
    inference = table.inference
    batcher = batcher or PredictionBatcher(inference)
    capture = capture or CaptureWriter()
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
        return {"status": "Healthy", "pid": os.getpid(), "runtime_dir": str(runtime_dir), "code": code,
                "handlers": getattr(inference, "__file__", None), "prediction_workers": batcher.workers,
                "invocations": batcher.invocations, "predict_calls": batcher.predict_calls,
                "capture": capture.stats()}

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
        answer = payload.encode("utf-8")
        if endpoint.data_capture:  # buffered; a background thread writes it out
            capture.record(endpoint.capture, name, PRODUCTION_VARIANT, body, content_type, answer,
                           _answer_type(mime), request.headers.get(INFERENCE_ID_HEADER))
        return Response(
            content=answer,
            headers={"Content-Type": _answer_type(mime),
                     "x-Amzn-Invoked-Production-Variant": PRODUCTION_VARIANT},
        )

    @app.post("/admin/capture/flush")
    def flush_capture() -> dict[str, Any]:
        """Write the buffered captured records now (a stop does too); the writer's counters."""
        capture.flush()
        return capture.stats()

    @app.put("/admin/endpoints/{name}")
    def deploy_endpoint(name: str, spec: EndpointRequest):
        try:
            endpoint = table.deploy(name, spec.config_name, spec.model_uri, spec.sha256, spec.environment,
                                    serverless=spec.serverless, account=spec.account,
                                    data_capture=spec.data_capture)
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
    app.state.capture = capture
    return app
