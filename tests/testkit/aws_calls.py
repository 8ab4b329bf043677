"""The project's AWS calls: found in the source (call sites) and recorded while code runs.

* :func:`call_sites` reads ``plugins/mlops``, ``include`` and ``dags`` with ``ast`` and returns
  every place that calls an AWS API operation on a boto3 client: ``client.<operation>(...)``,
  ``client.get_paginator("<operation>")``, ``...get_waiter("<waiter>")`` (the operation the
  waiter polls, from botocore's or the amazon provider's or this project's waiter model).
* :class:`Recorder` wraps botocore's and aiobotocore's ``_make_api_call`` — the one place every
  client call passes, whatever made the client (boto3, an Airflow hook, a waiter, a paginator,
  s3fs) — and records ``(service, operation, params, site, account)`` in call order. ``site`` is the
  innermost frame of the project's own code, when the call is made on the
  caller's thread; s3fs runs its calls on an IO thread, so those carry ``site=None``. ``account``
  is the account the client's credentials belong to, as moto maps access keys to accounts (an
  assumed role's keys to the role's account): the account the call lands in.
  Sites are ``(path, enclosing function)``: line numbers move with every edit.

Both use botocore's service models, so an operation name that is not a real API call cannot
be recorded or found. A call the recorder sees has passed botocore's request validation
(clients validate parameters against the service model before anything is sent, whether moto
or Stubber answers).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("plugins/mlops", "include", "dags")
# Every AWS service the project makes a client for.
SERVICES = ("s3", "sagemaker", "sagemaker-runtime", "cloudwatch", "sts", "iam")
# Receivers that are boto3 clients in this code base (``self.sagemaker``, ``self._client("s3")``, ...).
CLIENT_RECEIVER = re.compile(r"client|sagemaker|\bs3\b|_s3\b|cloudwatch|runtime|conn\b|\biam\b", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class CallSite:
    path: str  # relative to the repository root
    function: str  # qualified name of the enclosing function, e.g. SageMakerTuner.submit
    service: str
    operation: str  # the API name, e.g. CreateTrainingJob
    line: int = 0

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What a recorded call is matched on: lines move with every edit, functions rarely."""
        return self.path, self.function, self.service, self.operation


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    site: tuple[str, str] | None = None  # (path, function) of the innermost project frame
    account: str | None = None  # the account of the client's credentials (moto's mapping)

    @property
    def key(self) -> tuple[str, str, str, str] | None:
        return None if self.site is None else (*self.site, self.service, self.operation)


@functools.cache
def operations() -> dict[str, list[tuple[str, str]]]:
    """``snake_name -> [(service, OperationName), ...]`` for :data:`SERVICES`."""
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    names: dict[str, list[tuple[str, str]]] = {}
    for service in SERVICES:
        for operation in session.get_service_model(service).operation_names:
            names.setdefault(xform_name(operation), []).append((service, operation))
    return names


@functools.cache
def waiter_operations() -> dict[str, tuple[str, str]]:
    """``waiter name (as passed to get_waiter) -> (service, OperationName)``.

    botocore's own waiters, the amazon provider's custom SageMaker waiters and this project's
    (``plugins/mlops/waiters``); names are matched both as written and in snake_case.
    """
    import botocore.session
    from airflow.providers.amazon.aws import waiters as provider_waiters
    from botocore import xform_name

    session = botocore.session.get_session()
    found: dict[str, tuple[str, str]] = {}
    for service in SERVICES:
        try:
            model = session.get_waiter_model(service)
        except Exception:  # noqa: S112 - services without waiters
            continue
        for name in model.waiter_names:
            operation = model.get_waiter(name).operation
            found[name] = found[xform_name(name)] = (service, operation)
    from mlops.hooks.sagemaker import APPROVAL_WAITER_MODEL

    custom = [json.loads(path.read_text()) for path in (
        Path(provider_waiters.__file__).parent / "sagemaker.json",
        *sorted((ROOT / "plugins/mlops/waiters").glob("*.json")))]
    for model in [*custom, APPROVAL_WAITER_MODEL]:  # all SageMaker's
        for name, spec in model["waiters"].items():
            found[name] = found[xform_name(name)] = ("sagemaker", spec["operation"])
    return found


def _service_of(candidates: list[tuple[str, str]], receiver: str) -> tuple[str, str]:
    if len(candidates) == 1:
        return candidates[0]
    for service, operation in candidates:
        hint = {"sagemaker-runtime": "runtime", "sagemaker": "sagemaker", "s3": "s3"}.get(service, service)
        if hint in receiver.lower():
            return service, operation
    raise ValueError(f"cannot tell which service {receiver} calls: {candidates}")


def _string_constants(body: list[ast.stmt]) -> dict[str, set[str]]:
    """``NAME = "text"`` assignments in ``body``: ``NAME -> {"text", ...}`` (empty strings left out)."""
    found: dict[str, set[str]] = {}
    for node in body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and node.value.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, set()).add(node.value.value)
    return found


def _module_name(relative: str) -> str:
    return relative.removeprefix("plugins/").removesuffix(".py").replace("/", ".")


def _literals(node: ast.expr, names: dict[str, set[str]], attributes: dict[str, set[str]]) -> set[str]:
    """The strings ``node`` can be: a literal, a (module or imported) constant, ``self.<constant>``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name):
        return names.get(node.id, set())
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self":
        return attributes.get(node.attr, set())
    return set()


def _calls(tree: ast.Module) -> Iterator[tuple[ast.Call, str]]:
    """Every ``<expr>.<name>(...)`` call with the qualified name of the function it is in."""

    def visit(node: ast.AST, scope: tuple[str, ...], in_function: bool) -> Iterator[tuple[ast.Call, str]]:
        for child in ast.iter_child_nodes(node):
            inner, nested = scope, in_function
            if isinstance(child, ast.ClassDef) and not in_function:
                inner = (*scope, child.name)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and not in_function:
                inner, nested = (*scope, child.name), True  # a nested function counts as its parent
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                yield child, ".".join(scope) or "<module>"
            yield from visit(child, inner, nested)

    yield from visit(tree, (), False)


@functools.cache
def call_sites() -> tuple[CallSite, ...]:
    """Every AWS API call site in the project's source, sorted by path and line (read once).

    A waiter or paginator name must be a literal, a module constant (imported ones included) or
    a class constant read as ``self.<name>``; a name passed through as a parameter is the
    caller's call site, not this one.
    """
    ops = operations()
    waiters = waiter_operations()
    trees = {path.relative_to(ROOT).as_posix(): ast.parse(path.read_text(), filename=str(path))
             for folder in SOURCE_DIRS for path in sorted((ROOT / folder).rglob("*.py"))}
    module_constants = {_module_name(relative): _string_constants(tree.body) for relative, tree in trees.items()}
    sites: set[CallSite] = set()
    for relative, tree in trees.items():
        names = dict(module_constants[_module_name(relative)])
        attributes: dict[str, set[str]] = {}  # class constants, for self.<name>
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in module_constants:
                for alias in node.names:
                    if alias.name in module_constants[node.module]:
                        names[alias.asname or alias.name] = module_constants[node.module][alias.name]
            elif isinstance(node, ast.ClassDef):
                for name, values in _string_constants(node.body).items():
                    attributes.setdefault(name, set()).update(values)
        literals = functools.partial(_literals, names=names, attributes=attributes)

        for node, function in _calls(tree):
            name, receiver = node.func.attr, ast.unparse(node.func.value)
            found: list[tuple[str, str]] = []
            if name == "get_waiter" and node.args:
                found = [waiters[literal] for literal in sorted(literals(node.args[0]))]
            elif name == "get_paginator" and node.args:
                found = [_service_of(ops[literal], receiver) for literal in sorted(literals(node.args[0]))]
            elif any(keyword.arg == "waiter_name" for keyword in node.keywords):
                # A waiter trigger (``super().__init__(waiter_name=...)``): its inherited run()
                # makes the calls, in the triggerer.
                value = next(keyword.value for keyword in node.keywords if keyword.arg == "waiter_name")
                found = [waiters[literal] for literal in sorted(literals(value))]
                function = function.rsplit(".", 1)[0] + ".run"
            elif name in ops and CLIENT_RECEIVER.search(receiver):
                found = [_service_of(ops[name], receiver)]
            sites.update(CallSite(relative, function, service, operation, node.lineno)
                         for service, operation in found)
    return tuple(sorted(sites))


def _site() -> tuple[str, str] | None:
    """``(path, function)`` of the innermost frame of the project's own code on this thread.

    A nested function counts as the function it is defined in. A method the project inherits
    from a library (a waiter trigger's ``run``) counts as the project class's method.
    """
    frame = sys._getframe(2)
    prefixes = tuple(str(ROOT / folder) + "/" for folder in SOURCE_DIRS)
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(prefixes):
            return (Path(code.co_filename).relative_to(ROOT).as_posix(),
                    code.co_qualname.split(".<locals>")[0])
        owner = type(frame.f_locals.get("self"))
        source = getattr(sys.modules.get(owner.__module__), "__file__", None) or ""
        if source.startswith(prefixes):
            return Path(source).relative_to(ROOT).as_posix(), f"{owner.__qualname__}.{code.co_name}"
        frame = frame.f_back
    return None


def account_of(client: Any) -> str | None:
    """The account of ``client``'s credentials as moto sees them (moto's default account for keys
    it did not issue); None without credentials or without moto."""
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    key = getattr(credentials, "_access_key", None) or getattr(credentials, "access_key", None)
    if not isinstance(key, str):
        return None
    try:
        from moto.iam.models import get_account_id_from
    except ImportError:  # pragma: no cover - the tests that record run on moto
        return None
    return get_account_id_from(key)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    def default(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return f"<{len(value)} bytes>"
        if hasattr(value, "read"):
            return "<stream>"
        return str(value)

    return json.loads(json.dumps(params, default=default, sort_keys=True))


@dataclass
class Recorder:
    """Records every AWS call made while it is active (see the module docstring)."""

    calls: list[Call] = field(default_factory=list)

    def _record(self, client: Any, operation: str, params: dict[str, Any]) -> None:
        service = client.meta.service_model.service_name
        self.calls.append(Call(service, operation, _jsonable(params), _site(), account_of(client)))

    @contextlib.contextmanager
    def active(self) -> Iterator[Recorder]:
        from unittest import mock

        from botocore.client import BaseClient

        recorder = self
        original = BaseClient._make_api_call

        def make_api_call(client, operation_name, api_params):
            recorder._record(client, operation_name, api_params)
            return original(client, operation_name, api_params)

        patches = [mock.patch.object(BaseClient, "_make_api_call", make_api_call)]
        try:
            from aiobotocore.client import AioBaseClient
        except ImportError:  # pragma: no cover - aiobotocore comes with s3fs
            AioBaseClient = None
        if AioBaseClient is not None:
            aio_original = AioBaseClient._make_api_call

            async def aio_make_api_call(client, operation_name, api_params):
                recorder._record(client, operation_name, api_params)
                return await aio_original(client, operation_name, api_params)

            patches.append(mock.patch.object(AioBaseClient, "_make_api_call", aio_make_api_call))
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            yield self
