"""Local twin of SageMaker hosting: endpoints served by the runtime process on 127.0.0.1.

:class:`LocalHosting` starts the runtime (:mod:`mlops.backends.local.runtime`) on demand and
drives its admin API; callers invoke endpoints with the real boto3 ``sagemaker-runtime`` client
from :meth:`LocalHosting.runtime_client`, exactly as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mlops.backends.base import Endpoint, EndpointSpec, Hosting, JobHandle, LongRunningPort
from mlops.settings import PROJECT_ROOT, Settings
from mlops.storage import DigestMismatch

REGION = "us-east-1"
PLUGINS_DIR = PROJECT_ROOT / "plugins"
RUNTIME_MODULE = "mlops.backends.local.runtime"


class EndpointNotFound(LookupError):
    """No endpoint of that name is hosted."""


class RuntimeRequestError(RuntimeError):
    """The runtime answered an admin request with an error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


class LocalHosting(Hosting, LongRunningPort):
    """Endpoints hosted by one local runtime process per ``MLOPS_HOME``.

    Every endpoint config is served by that one process: ``serverless`` and instance settings,
    data capture and the blue/green deployment config of the :class:`EndpointSpec` have no
    local meaning and are ignored (a local deploy is an atomic swap: the old model serves until
    the new one is loaded). Endpoints survive a restart of the runtime (it restores them from
    its endpoint table). Deploys are synchronous: :meth:`submit` returns a finished handle.

    :param settings: project settings; the runtime listens on ``settings.runtime_url`` and
        keeps its state in ``settings.runtime_dir``.
    :param start_timeout: seconds to wait for a freshly started runtime to answer ``/ping``.
    :param deploy_timeout: seconds to wait for a deploy (download, verify, load) to finish.
    """

    def __init__(self, settings: Settings, start_timeout: float = 60.0, deploy_timeout: float = 600.0):
        self.settings = settings
        self.start_timeout = start_timeout
        self.deploy_timeout = deploy_timeout
        self._process: subprocess.Popen | None = None
        # The runtime is on 127.0.0.1: never route these calls through an HTTP(S)_PROXY.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def log_path(self) -> Path:
        return self.settings.runtime_dir / "runtime.log"

    # ------------------------------------------------------------ runtime process
    def ensure_running(self) -> None:
        """Start the runtime detached unless it answers ``/ping``; wait until it does."""
        if self._ping() is not None:
            return
        runtime_dir = self.settings.runtime_dir
        runtime_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", RUNTIME_MODULE, "serve"],
                env=self._runtime_environment(),
                cwd=runtime_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._ping() is not None:
                return
            # Exited: fine if a runtime started concurrently holds the port, else a real failure.
            if self._process.poll() is not None and not self._port_listening():
                raise RuntimeError(
                    f"the local runtime exited with code {self._process.returncode} before "
                    f"answering {self.settings.runtime_url}/ping; see {self.log_path}"
                )
            time.sleep(0.1)
        raise RuntimeError(
            f"the local runtime did not answer {self.settings.runtime_url}/ping within "
            f"{self.start_timeout:.0f}s; see {self.log_path}"
        )

    def stop(self) -> None:
        """Stop the runtime of this ``MLOPS_HOME``; not an error when none runs."""
        from mlops.backends.local.runtime import stop_runtime

        stop_runtime(self.settings.runtime_dir)
        if self._process is not None:  # reap the runtime this object started
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None

    def _runtime_environment(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(PLUGINS_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.update(
            MLOPS_BACKEND=self.settings.backend,
            MLOPS_HOME=str(self.settings.home),
            MLOPS_DATA_URI=self.settings.data_uri,
            MLOPS_AWS_CONN_ID=self.settings.aws_conn_id,
            MLOPS_RUNTIME_PORT=str(self.settings.runtime_port),
        )
        return env

    def _ping(self) -> dict[str, Any] | None:
        """The runtime's ``/ping`` answer, or None when nothing answers in time.

        Raises ``RuntimeError`` when the port is answered by something else, such as the
        runtime of another ``MLOPS_HOME``.
        """
        url = f"{self.settings.runtime_url}/ping"
        try:
            with self._opener.open(url, timeout=2) as response:
                info = json.loads(response.read())
        except (urllib.error.HTTPError, ValueError) as err:
            raise RuntimeError(f"{url} is answered by something other than the runtime") from err
        except OSError:
            return None
        served = info.get("runtime_dir") if isinstance(info, dict) else None
        if served is None:
            raise RuntimeError(f"{url} is answered by something other than the runtime")
        if served != str(self.settings.runtime_dir):
            raise RuntimeError(
                f"{url} is served by the runtime of {served}, not of "
                f"{self.settings.runtime_dir}; give this MLOPS_HOME its own MLOPS_RUNTIME_PORT"
            )
        return info

    def _port_listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.settings.runtime_port)) == 0

    # ------------------------------------------------------------ admin API
    def _admin(self, method: str, name: str | None = None, payload: dict | None = None,
               timeout: float = 30.0) -> dict[str, Any]:
        path = "/admin/endpoints" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")
        request = urllib.request.Request(  # noqa: S310 - runtime_url is always http://127.0.0.1:<port>
            self.settings.runtime_url + path,
            method=method,
            data=None if payload is None else json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", "replace")
            try:
                detail = json.loads(body)
            except ValueError:
                detail = {"Message": body}
            raise RuntimeRequestError(
                err.code, detail.get("ErrorCode", ""), detail.get("Message") or body or err.reason
            ) from None
        except OSError as err:
            raise RuntimeError(
                f"{method} {path} to the local runtime failed: {err}; see {self.log_path}"
            ) from err

    def _endpoint(self, info: dict[str, Any]) -> Endpoint:
        runtime_url = self.settings.runtime_url
        name = info["name"]
        return Endpoint(
            name=name,
            config_name=info["config_name"],
            status=info["status"],
            url=f"{runtime_url}/endpoints/{urllib.parse.quote(name, safe='')}/invocations",
            runtime_endpoint_url=runtime_url,
            region=REGION,
        )

    # ------------------------------------------------------------ the Hosting port
    def deploy(self, spec: EndpointSpec) -> Endpoint:
        """Create ``spec.endpoint_name`` or swap it to ``spec.config_name``; return it InService.

        Raises :class:`~mlops.storage.DigestMismatch` when the artifact's sha256 differs from
        ``spec.sha256``; the endpoint keeps serving its previous model then.
        """
        self.ensure_running()
        payload = {
            "config_name": spec.config_name,
            "model_uri": spec.model_uri,
            "sha256": spec.sha256,
            "environment": dict(spec.environment),
        }
        try:
            info = self._admin("PUT", spec.endpoint_name, payload, timeout=self.deploy_timeout)
        except RuntimeRequestError as err:
            if err.status == 409:
                raise DigestMismatch(str(err)) from None
            raise RuntimeError(f"deploying endpoint {spec.endpoint_name} failed: {err}") from None
        return self._endpoint(info)

    def submit(self, spec: EndpointSpec) -> JobHandle:
        """:meth:`deploy`, as a finished handle (the LongRunningPort shape SageMaker hosting has)."""
        return JobHandle(kind="endpoint", name=spec.endpoint_name, done=True, result=self.deploy(spec).to_dict())

    def ensure_rollback_alarms(self, requests: list[dict[str, Any]]) -> list[str]:
        """No CloudWatch here: a local deploy cannot roll back half-way. Returns the alarm names."""
        return [request["AlarmName"] for request in requests]

    def describe(self, endpoint_name: str) -> Endpoint:
        """Raises :class:`EndpointNotFound` when no such endpoint is hosted."""
        self.ensure_running()
        try:
            return self._endpoint(self._admin("GET", endpoint_name))
        except RuntimeRequestError as err:
            if err.status == 404:
                raise EndpointNotFound(str(err)) from None
            raise

    def list_endpoints(self) -> list[Endpoint]:
        self.ensure_running()
        return [self._endpoint(info) for info in self._admin("GET")["endpoints"]]

    def delete(self, endpoint_name: str) -> None:
        self.ensure_running()
        try:
            self._admin("DELETE", endpoint_name)
        except RuntimeRequestError as err:
            if err.status != 404:
                raise

    def runtime_client(self):
        """A ``sagemaker-runtime`` client for the local runtime (started if it is not running).

        The credentials are dummies: botocore insists on signing, and the local runtime ignores
        the SigV4 signature. Real credentials are neither needed nor sent anywhere.
        """
        import boto3
        from botocore.config import Config

        self.ensure_running()
        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=self.settings.runtime_url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the loopback runtime checks no signature
            config=Config(proxies={}, read_timeout=70, retries={"mode": "standard", "max_attempts": 3}),
        )
