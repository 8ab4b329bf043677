"""Local twin of SageMaker hosting: endpoints served by the model runtime process.

:class:`LocalHosting` starts the runtime (:mod:`mlops.backends.local.runtime`) on demand, as a
service with an environment of its own, and drives its admin API; callers invoke endpoints with
the real boto3 ``sagemaker-runtime`` client from :meth:`LocalHosting.runtime_client`, exactly as
on AWS.

Each :class:`LocalHosting` acts in one account (the registry's by default; a stage's from
:func:`mlops.backends.local.stage_hosting`): it sees, deploys and invokes only that account's
endpoints, and deploys another account's model version only when the registry shares its group
with this account (:meth:`~mlops.backends.local.registry.SQLiteRegistry.share_group`, the twin of
the model package group's resource policy and the data bucket's policy).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mlops.backends.base import (
    APPROVED,
    Endpoint,
    EndpointNotFound,
    EndpointSpec,
    Hosting,
    JobHandle,
)
from mlops.core.settings import Settings
from mlops.core.storage import DigestMismatch

REGION = "us-east-1"
REGISTRY_ACCOUNT = "000000000000"  # the local registry's account (its ARNs), and the default hosting's


class RuntimeRequestError(RuntimeError):
    """The runtime answered an admin request with an error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


class LocalHosting(Hosting):
    """Endpoints hosted by one local runtime process per ``MLOPS_HOME``.

    Every endpoint config is served by that one process. Its ``DataCaptureConfig`` is honoured: the
    runtime samples invocations into SageMaker's capture layout under the destination
    (:mod:`mlops.backends.local.runtime.capture`). ``serverless`` and instance settings and the
    blue/green deployment config of the :class:`EndpointSpec` have no local meaning: they are checked against SageMaker's limits (:mod:`mlops.backends.limits`), as on AWS,
    then ignored (a local deploy is an atomic swap: the old model serves until
    the new one is loaded). Endpoints survive a restart of the runtime (it restores them from
    its endpoint table). Deploys are synchronous: :meth:`submit` returns a finished handle.

    :param settings: project settings; the runtime listens on ``settings.runtime_url`` and
        keeps its state in ``settings.runtime_dir``.
    :param start_timeout: seconds to wait for a freshly started runtime to answer ``/ping``.
    :param deploy_timeout: seconds to wait for a deploy (download, verify, load) to finish.
    :param account: the account this hosting acts in (12 digits).
    """

    def __init__(self, settings: Settings, start_timeout: float = 60.0, deploy_timeout: float = 600.0,
                 account: str = REGISTRY_ACCOUNT):
        if not (isinstance(account, str) and len(account) == 12 and account.isdigit()):
            raise ValueError(f"account {account!r} is not 12 digits")
        self.settings = settings
        self.start_timeout = start_timeout
        self.deploy_timeout = deploy_timeout
        self.account = account
        # The runtime is on this machine or in the same network: never route these calls through an
        # HTTP(S)_PROXY.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def log_path(self) -> Path:
        return self.settings.runtime_dir / "runtime.log"

    # ------------------------------------------------------------ runtime process
    def ensure_running(self) -> None:
        """Start the runtime unless it answers ``/ping``; wait until it does.

        One starter for every caller (:func:`~mlops.backends.local.runtime.start_runtime`): a
        detached process with a clean environment of its own, never this process's (under an
        Airflow worker, a task's environment blocks Airflow's database).
        """
        from mlops.backends.local.runtime.service import start_runtime

        start_runtime(self.settings, timeout=self.start_timeout)

    def stop_runtime(self) -> None:
        """Stop the runtime of this ``MLOPS_HOME``; not an error when none runs. (Not
        :meth:`~mlops.backends.base.LongRunningPort.stop`, which stops one job a task started.)"""
        from mlops.backends.local.runtime.service import stop_runtime

        stop_runtime(self.settings.runtime_dir)

    # ------------------------------------------------------------ admin API
    def _admin(self, method: str, name: str | None = None, payload: dict | None = None,
               timeout: float = 30.0) -> dict[str, Any]:
        path = "/admin/endpoints" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")
        path += f"?account={self.account}" if payload is None else ""
        request = urllib.request.Request(  # noqa: S310 - runtime_url is the runtime's http:// URL
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

        Raises :class:`~mlops.core.storage.DigestMismatch` when the artifact's sha256 differs from
        ``spec.sha256``; the endpoint keeps serving its previous model then. Settings SageMaker
        would reject (names, serverless sizes, a deployment config the fleet cannot take) raise
        :class:`~mlops.backends.limits.LimitError` before anything happens, as on AWS.
        """
        from mlops.backends.limits import check_endpoint_spec

        check_endpoint_spec(spec)
        if spec.model_package_arn:
            self._check_shared(spec.model_package_arn)
        self.ensure_running()
        payload = {
            "config_name": spec.config_name,
            "model_uri": spec.model_uri,
            "sha256": spec.sha256,
            "environment": dict(spec.environment),
            "serverless": spec.serverless is not None,
            "account": self.account,
            "data_capture": spec.data_capture_config,
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

    def flush_capture(self) -> dict[str, int]:
        """Have the runtime write its buffered captured records now; its capture counters."""
        self.ensure_running()
        request = urllib.request.Request(self.settings.runtime_url + "/admin/capture/flush", method="POST")  # noqa: S310
        with self._opener.open(request, timeout=30) as response:
            return json.loads(response.read())

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

    # ------------------------------------------------------------ another account's versions
    def _registry(self):
        from mlops.backends.local.registry import SQLiteRegistry

        return SQLiteRegistry(self.settings.registry_db)

    def _check_shared(self, package_arn: str) -> None:
        """Another account's version is readable here only when its group is shared with this
        account (what the model package group's and the bucket's policies grant on AWS)."""
        if self.account == REGISTRY_ACCOUNT:
            return
        group = package_arn.split(":model-package/", 1)[-1].rsplit("/", 1)[0]
        if self.account not in self._registry().shared_accounts(group):
            raise PermissionError(
                f"account {self.account} may not read model package group {group} of account {REGISTRY_ACCOUNT} "
                f"({package_arn}): the registry does not share the group with it (Registry.share_group, the "
                "model package group's resource policy on AWS)")

    def check_package(self, package: dict[str, Any]) -> None:
        """From this account: the group is shared with it, the version is Approved with the
        registered digest, and the artifact's sha256 still is that digest."""
        from mlops.core.storage import sha256_of

        self._check_shared(package["arn"])
        version = self._registry().get(package["arn"])
        if version.status != APPROVED:
            raise ValueError(f"{version.arn} is {version.status}; only Approved versions are deployed")
        if version.sha256 != package["sha256"] or version.model_uri != package["model_uri"]:
            raise DigestMismatch(f"{version.arn} records {version.model_uri} with sha256 {version.sha256}, the "
                                 f"deploy was given {package['model_uri']} with {package['sha256']}")
        actual = sha256_of(version.model_uri)
        if actual != version.sha256:
            raise DigestMismatch(f"{version.arn}: artifact {version.model_uri} has sha256 {actual}, registered "
                                 f"{version.sha256}; refusing to deploy a changed artifact")

    def runtime_client(self):
        """A ``sagemaker-runtime`` client for the local runtime (started if it is not running),
        signed as this hosting's account: it reaches that account's endpoints only.

        The credentials are dummies (the access key is the account id): botocore insists on
        signing, and the local runtime does not check the signature. Real credentials are neither
        needed nor sent anywhere.
        """
        import boto3
        from botocore.config import Config

        self.ensure_running()
        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=self.settings.runtime_url,
            region_name=REGION,
            aws_access_key_id=self.account,
            aws_secret_access_key="local",  # noqa: S106 - the loopback runtime checks no signature
            config=Config(proxies={}, read_timeout=70, retries={"mode": "standard", "max_attempts": 3}),
        )
