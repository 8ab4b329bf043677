"""Idempotent resource names derived from (dag_id, run_id, step).

SageMaker names allow ``[a-zA-Z0-9-]``, at most 63 characters. A retry of the same task gets
the same name, so it can describe the job first and re-attach instead of launching a second one.
On AWS every name also carries ``MLOPS_NAME_PREFIX`` (:func:`prefixed`), so an IAM policy can
scope the project to ``<type>/<prefix>-*`` and two installations can share an account.
"""

from __future__ import annotations

import hashlib
import re

MAX_LEN = 63


def slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9]+", "-", text)).strip("-").lower()


def resource_name(*parts: str, max_len: int = MAX_LEN) -> str:
    """A readable name made of ``parts`` plus a short hash of all of them (stable, unique)."""
    if max_len < 16:
        raise ValueError(f"max_len must be at least 16 to hold a readable part and a hash, got {max_len}")
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8]
    readable = slug("-".join(p for p in parts if p))[: max_len - len(digest) - 1].rstrip("-")
    return f"{readable}-{digest}" if readable else digest


def prefixed(prefix: str, name: str, max_len: int = MAX_LEN) -> str:
    """The name of ``name`` in an account shared by prefix: ``<prefix>-<name>`` (a slug) when it
    fits in ``max_len``, else a readable cut plus a hash of both (stable, distinct).

    Idempotent: a name that already starts with ``<prefix>-`` (a service's name read back from
    XCom) comes back as it is when it fits, so it is never prefixed twice.
    """
    head = f"{slug(prefix)}-"
    if len(head) < 2 or len(head) + len("-01234567") > max_len:
        raise ValueError(f"name prefix {prefix!r} does not leave room for a name of {max_len} characters")
    rest = name[len(head):] if name.startswith(head) else name
    full = slug(f"{head}{rest}")
    return full if len(full) <= max_len else resource_name(prefix, rest, max_len=max_len)


RETRY_ROOM = len("-r9")  # characters a retried job's name adds: -r2 ... -r9


MAX_ATTEMPTS = 9  # a job's names: base, base-r2 ... base-r9


def attempt_name(base: str, attempt: int, max_len: int | None = None) -> str:
    """Name of the ``attempt``-th job (1: ``base``; 2: ``base-r2``; ...).

    With ``max_len``, a base too long to take the suffix is cut to a readable head and a hash of
    it first (:func:`resource_name`), so a retried name fits and still starts like ``base``.
    """
    if attempt == 1:
        return base
    if max_len is not None and len(base) + RETRY_ROOM > max_len:
        base = resource_name(base, max_len=max_len - RETRY_ROOM)
    return f"{base}-r{attempt}"


def run_name(dag_id: str, run_id: str, step: str) -> str:
    """Name for one step of one DAG run, e.g. a training job or an endpoint config."""
    return resource_name(dag_id.replace("_", "-"), step, run_id)


def path_safe(run_id: str) -> str:
    """``run_id`` as a single path segment (run ids contain ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", run_id)


# The SageMaker console page of a resource (the "Resource" link, notifications).
CONSOLE = "https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{path}/{name}"
CONSOLE_PATHS = {
    "tuning": "hyper-tuning-jobs",
    "training": "jobs",
    "endpoint": "endpoints",
    "automl": "automl-jobs",
    "transform": "transform-jobs",
    "model-package": "model-registry",
}


def console_url(region: str, kind: str, name: str) -> str:
    """The SageMaker console page of the ``kind`` resource ``name`` (a key of :data:`CONSOLE_PATHS`)."""
    return CONSOLE.format(region=region, path=CONSOLE_PATHS[kind], name=name)
