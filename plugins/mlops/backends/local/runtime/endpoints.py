"""The endpoint table of the local runtime: what each endpoint serves (config, model, digest, account,
status), persisted in ``endpoints.json`` and restored on start; a deploy swaps a model in only once
it has loaded."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops.core.storage import (
    SHA256,
    read_bytes_without_airflow,
    unpack_model,
    write_text_atomic,
)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint limit
# Serverless Inference: "The maximum request and response payload size is 4 MB" (Serverless
# Inference, feature exclusions and limits).
SERVERLESS_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
PRODUCTION_VARIANT = "AllTraffic"
ACCOUNT = "000000000000"  # the registry's account, and that of endpoints deployed without one
ACCOUNT_ID = re.compile(r"\d{12}")
REGION = "us-east-1"  # the region of local endpoints (LocalHosting's)
IN_SERVICE = "InService"
FAILED = "Failed"
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")  # SageMaker's EndpointName pattern
NAME_MAX = 63  # ... and its length limit

log = logging.getLogger(__name__)


def table_file(runtime_dir: Path) -> Path:
    return runtime_dir / "endpoints.json"


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
    data_capture: dict[str, Any] | None = None  # SageMaker's DataCaptureConfig, None: no capture

    @cached_property
    def capture(self):
        """The :class:`~mlops.backends.local.runtime.capture.CaptureSettings` of ``data_capture``, or None."""
        from mlops.backends.local.runtime.capture import CaptureSettings

        return CaptureSettings.from_config(self.data_capture)

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
            "data_capture": self.data_capture,
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
        serverless: bool = False, account: str = ACCOUNT, data_capture: dict[str, Any] | None = None,
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
        from mlops.backends.local.runtime.capture import CaptureSettings

        CaptureSettings.from_config(data_capture)  # a malformed DataCaptureConfig fails the deploy here
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
                    account=account, data_capture=data_capture,
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
        """Load every endpoint in ``endpoints.json``; one that fails to load is kept as Failed.

        The artifact's digest is checked again, as on a deploy (a SageMaker instance that
        replaces a lost one downloads the model again): an endpoint whose artifact no longer
        has the recorded sha256, or cannot be read, is Failed, never served from what an
        earlier process extracted.
        """
        path = table_file(self.runtime_dir)
        if not path.exists():
            return
        records = json.loads(path.read_text(encoding="utf-8")).get("endpoints", {})
        with self._admin:
            for name, record in records.items():
                endpoint = ServedEndpoint(name=name, **record)
                try:
                    model_dir = self._extract(endpoint.model_uri, endpoint.sha256)
                    model = self.inference.model_fn(str(model_dir))
                    keys = tuple(self.inference.response_keys(model, endpoint.environment))
                    endpoint = replace(endpoint, model=model, response_keys=keys)
                    log.info("restored endpoint %s (sha256 %s of %s verified)", name, endpoint.sha256,
                             endpoint.model_uri)
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
        write_text_atomic(table_file(self.runtime_dir), json.dumps(payload, indent=2, sort_keys=True))


# ---------------------------------------------------------------- files in runtime_dir
def pid_file(runtime_dir: Path) -> Path:
    return runtime_dir / "runtime.pid"


def log_file(runtime_dir: Path) -> Path:
    return runtime_dir / "runtime.log"


def freeze_heap() -> None:
    """Collect, then move every object alive now out of the garbage collector's sight.

    The modules and models a runtime loads are hundreds of thousands of objects that live as
    long as it does; left tracked, every full collection walks them all, pausing the process for
    20-140 ms (measured under load) — the slowest 1% of answers. Called once the endpoints are
    loaded and after every deploy.
    """
    gc.collect()
    gc.freeze()
DEFAULT_ACCEPT = "application/json"  # ... and without an Accept (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT)
