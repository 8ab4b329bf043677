"""An S3 server on loopback for tests: moto's server mode, which speaks the S3 REST protocol to
boto3 and s3fs, with IAM users whose policies it enforces.

What moto (5.x) enforces once :meth:`S3Server.enforce_iam` is on (``moto/core/authorization.py``,
``moto/iam/access_control.py``): every request must be SigV4-signed with the access key of an
IAM user it knows (it recomputes the signature); the request's IAM action, from
``moto/s3/responses.py``'s ``ACTION_MAP`` (GET or HEAD of a key: ``s3:GetObject``; PUT and the
multipart calls: ``s3:PutObject``; DELETE of a key: ``s3:DeleteObject``; DELETE with an
``uploadId``: ``s3:AbortMultipartUpload``; GET of a bucket: ``s3:ListBucket``; PUT of a bucket:
``s3:CreateBucket``), must be allowed on the object or bucket ARN by the user's policies
(``Allow``/``Deny``, ``*`` wildcards).

What it does not do, and what this server adds, as AWS documents it (evaluated with
:mod:`testkit.iam`, our own evaluator):

* **Conditions.** moto evaluates ``StringEquals`` only, against condition keys it is handed, and
  for S3 it is handed none: a ``StringLike`` on ``s3:prefix`` is ignored and ListBucket is
  allowed for any prefix. Here a listing is refused (403) unless the user's policy allows
  ``s3:ListBucket`` on the bucket with the request's ``s3:prefix``, ``s3:delimiter`` and
  ``s3:max-keys`` (each absent when the request does not send it).
* **403 for a missing key.** moto answers 404; S3 answers 404 only to a caller allowed
  ``s3:ListBucket`` on the bucket and 403 to anyone else (HeadObject and GetObject
  documentation). The GET or HEAD names no prefix, so here the 404 becomes 403 unless the policy
  allows ListBucket with no ``s3:prefix`` at all.

Left as moto does it: DeleteObjects (``POST ?delete``) is authorized on the bucket ARN, where S3
checks ``s3:DeleteObject`` per key (so a key-scoped policy cannot bulk-delete here);
HeadBucket is checked as ``s3:HeadBucket``, where S3 checks ``s3:ListBucket`` without a prefix
(both deny a prefix-scoped role). Bucket policies, SCPs, KMS keys and object ownership are not
modelled.

:attr:`S3Server.requests` records every S3 request (method, bucket, key, query, status, user).

**Outages.** :meth:`S3Server.stop` and :meth:`S3Server.start` take the endpoint down and bring it
back on the same port (the objects live in this process and survive); while it is down a
connection is refused, as when a store's host or network is gone. :meth:`S3Server.go_down_on`
takes it down at an exact moment: when a request it names arrives, that request's connection is
cut before it is answered (the client sees the connection drop mid-request) and the server stops.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import boto3
import requests

from testkit import iam
from testkit.net import free_port

REGION = "us-east-1"
ADMIN = "test-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "TheTestItself", "Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}
LIST_PARAMETERS = {"list-type", "prefix", "delimiter", "max-keys", "encoding-type", "continuation-token",
                   "start-after", "marker", "fetch-owner"}
LIST_CONDITION_KEYS = {"prefix": "s3:prefix", "delimiter": "s3:delimiter", "max-keys": "s3:max-keys"}
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")


class Credentials(NamedTuple):
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class S3Request:
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    status: int
    user: str | None

    @property
    def is_listing(self) -> bool:
        return self.method == "GET" and not self.key and set(self.query) <= LIST_PARAMETERS


def forget_object_stores() -> None:
    """Drop the filesystems Airflow caches per connection in this process.

    A task process attaches a connection's store once and ends; a test session outlives servers,
    so a later server behind the same connection name would otherwise be reached at the port of
    an earlier one.
    """
    from airflow.sdk.io import store

    store._STORE_CACHE.clear()  # noqa: SLF001 - Airflow has no public way to detach a store


class S3Server:
    """moto's S3 (and IAM) REST endpoint on 127.0.0.1, with the checks the module docstring lists.

    Use as a context manager. Users are made with :meth:`add_user`; :meth:`enforce_iam` makes
    every later request need an allowed, signed identity (the test's own ``admin`` one included).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._moto = _CheckedMotoServer(self._checked, port=self.port)
        self._users: dict[str, tuple[str, dict[str, Any]]] = {}  # access key -> (user, policy)
        self._previous_auth_count: str | None = None
        self.requests: list[S3Request] = []
        self.admin: Credentials | None = None
        self._lock = threading.Lock()
        self._down_on: Callable[[S3Request], bool] | None = None
        self._cutting = False  # between the request that took the store down and the server's stop
        self._stopper: threading.Thread | None = None
        self.went_down = threading.Event()
        self.cut: S3Request | None = None  # the request go_down_on cut

    def __enter__(self) -> S3Server:
        forget_object_stores()
        self._moto.start()
        # moto's backends live in this process, not in the server: start from an empty account
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        self.admin = self.add_user(ADMIN, ADMIN_POLICY)
        return self

    def __exit__(self, *exc) -> None:
        if not self.running:
            self.start()
        try:
            if self._previous_auth_count is not None:  # moto's switch is process-wide: put it back
                requests.post(f"{self.url}/moto-api/reset-auth", data=self._previous_auth_count, timeout=10)
        finally:
            self._moto.stop()
            forget_object_stores()

    # ------------------------------------------------------------ outages
    @property
    def running(self) -> bool:
        return self._moto.running

    def stop(self) -> None:
        """Take the endpoint down: from now on a connection to it is refused. Objects are kept."""
        with self._lock:
            self._down_on = None
            stopper = self._stopper
        if stopper is not None:
            stopper.join()
        if self._moto.running:
            self._moto.stop()
        self.went_down.set()

    def start(self) -> None:
        """Bring the endpoint back on the same port, with the objects, users and checks it had."""
        self.stop()  # a go_down_on still pending, or a stop under way, ends first
        with self._lock:
            self._cutting = False
            self._stopper = None
        self._moto.start()
        self.went_down.clear()

    def go_down_on(self, matches: Callable[[S3Request], bool]) -> threading.Event:
        """Take the endpoint down when a request ``matches`` arrives (``S3Request`` with status 0):
        its connection is cut before it is answered, like every request after it until the server
        has stopped; then connections are refused. Returns :attr:`went_down`, set once stopped;
        :attr:`cut` is the request that did it."""
        with self._lock:
            self.went_down.clear()
            self.cut = None
            self._down_on = matches
        return self.went_down

    def _cut_connection(self, environ: dict[str, Any], request: S3Request) -> None:
        with self._lock:
            if self._down_on is not None and self._down_on(request):
                self._down_on = None
                self._cutting = True
                self.cut = request
                self._stopper = threading.Thread(target=self._stop_after_cut, daemon=True)
                self._stopper.start()
            cutting = self._cutting
        if not cutting:
            return
        self.requests.append(S3Request(request.method, request.bucket, request.key, request.query, -1, None))
        connection = environ.get("werkzeug.socket")
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        # werkzeug treats a ConnectionError from the application as a dropped connection: no answer
        raise ConnectionResetError("the S3 store went down during this request")

    def _stop_after_cut(self) -> None:
        self._moto.stop()
        self.went_down.set()

    # ------------------------------------------------------------ identities
    def client(self, service: str = "s3", credentials: Credentials | None = None):
        credentials = credentials or self.admin
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=credentials.access_key, aws_secret_access_key=credentials.secret_key)

    def add_user(self, name: str, policy: dict[str, Any]) -> Credentials:
        """An IAM user with ``policy`` as its only (inline) policy; its access key."""
        iam_client = self.client("iam", self.admin or Credentials("bootstrap", "bootstrap"))
        iam_client.create_user(UserName=name)
        iam_client.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam_client.create_access_key(UserName=name)["AccessKey"]
        self._users[key["AccessKeyId"]] = (name, policy)
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def enforce_iam(self) -> None:
        """From now on every request needs a signed identity its policy allows (moto's check plus
        the ones this server adds)."""
        answer = requests.post(f"{self.url}/moto-api/reset-auth", data=b"0", timeout=10)
        answer.raise_for_status()
        if self._previous_auth_count is None:
            self._previous_auth_count = str(answer.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])

    # ------------------------------------------------------------ clients of the store
    def connection_uri(self, credentials: Credentials) -> str:
        """An Airflow ``aws`` connection (JSON, for ``AIRFLOW_CONN_<ID>``) reaching this server."""
        return json.dumps({"conn_type": "aws", "login": credentials.access_key, "password": credentials.secret_key,
                           "extra": {"endpoint_url": self.url, "region_name": REGION}})

    def environment(self, credentials: Credentials) -> dict[str, str]:
        """``AWS_*`` variables for a process that reaches this server with the standard chain."""
        return {"AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL_S3": self.url,
                "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, read as the test's admin."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    # ------------------------------------------------------------ the checks moto lacks
    def _checked(self, app: Callable) -> Callable:
        def middleware(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
            request = self._parse(environ)
            if request is None:
                return app(environ, start_response)
            self._cut_connection(environ, request)
            user, policy = self._users.get(_access_key(environ), (None, None))
            enforced = policy is not None and self._previous_auth_count is not None
            if enforced and request.is_listing and not self._may_list(policy, request):
                return self._deny(request, user, start_response)
            answered: list[Any] = []
            body = b"".join(app(environ, lambda status, headers, exc_info=None: answered.extend([status, headers])))
            status, headers = answered
            if (enforced and request.key and request.method in ("GET", "HEAD") and status.startswith("404")
                    and not iam.allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{request.bucket}", {})):
                return self._deny(request, user, start_response)
            self.requests.append(S3Request(request.method, request.bucket, request.key, request.query,
                                           int(status.split()[0]), user))
            start_response(status, headers)
            return [body]

        return middleware

    @staticmethod
    def _parse(environ: dict[str, Any]) -> S3Request | None:
        if "/s3/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
            return None  # IAM, moto's own API, unsigned
        bucket, _, key = environ.get("PATH_INFO", "/").lstrip("/").partition("/")
        query = {name: values[0] for name, values in
                 parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        return S3Request(environ["REQUEST_METHOD"], bucket, key, query, 0, None)

    @staticmethod
    def _may_list(policy: dict[str, Any], request: S3Request) -> bool:
        context = {LIST_CONDITION_KEYS[name]: value for name, value in request.query.items()
                   if name in LIST_CONDITION_KEYS}
        return iam.allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{request.bucket}", context)

    def _deny(self, request: S3Request, user: str | None, start_response: Callable) -> list[bytes]:
        self.requests.append(S3Request(request.method, request.bucket, request.key, request.query, 403, user))
        body = b"" if request.method == "HEAD" else ACCESS_DENIED
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]


class _CheckedMotoServer:
    """moto's ``ThreadedMotoServer``, its application wrapped by ``wrap`` before the first request
    is served (and again on every start: moto makes a new application each time)."""

    def __init__(self, wrap: Callable[[Callable], Callable], port: int) -> None:
        self._wrap = wrap
        self._port = port
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = self._wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", self._port, app, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name=f"s3-{self._port}")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket (werkzeug's ``serve_forever`` closes it)."""
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._thread = None


def _access_key(environ: dict[str, Any]) -> str:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    return authorization.partition("Credential=")[2].partition("/")[0]
