"""Object-store helpers shared by every step: paths, digests and model packages.

URIs are ``file://`` locally and ``s3://`` on AWS; both become ``ObjectStoragePath``s, so the
same code reads and writes either. Processes that are no Airflow task (the model runtime) read
artifacts with :func:`read_bytes_without_airflow` and write with :func:`write_bytes_without_airflow`
instead: fsspec directly, never importing Airflow.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

CHUNK = 1 << 20
SHA256 = re.compile(r"[0-9a-f]{64}")  # a digest as recorded: 64 lowercase hex digits


class DigestMismatch(RuntimeError):
    """An artifact's sha256 differs from the one recorded for it."""


def to_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """``ObjectStoragePath`` for ``uri``; ``s3://`` goes through ``conn_id`` (default the
    project's AWS connection) and :class:`~mlops.core.s3_filesystem.PrefixScopedS3FileSystem`, so
    existence checks and folders work with a role scoped to the data prefix."""
    from airflow.sdk import ObjectStoragePath

    if not uri.startswith("s3://"):
        return ObjectStoragePath(uri)
    from mlops.core.s3_filesystem import attach_to_connection
    from mlops.core.settings import get_settings

    conn_id = conn_id or get_settings().aws_conn_id
    attach_to_connection(conn_id)
    return ObjectStoragePath(uri, conn_id=conn_id)


def read_bytes(uri: str) -> bytes:
    """The bytes at ``uri`` through ``ObjectStoragePath`` (``s3://`` with the project's AWS connection)."""
    return to_path(uri).read_bytes()


def read_bytes_without_airflow(uri: str) -> bytes:
    """The bytes at a ``file://`` or ``s3://`` URI through fsspec/s3fs directly; Airflow is not imported.

    For processes that are no Airflow task, such as the model runtime: ``s3://`` is read with
    :class:`~mlops.core.s3_filesystem.PrefixScopedS3FileSystem` and this process's own AWS
    credentials (the standard chain: ``AWS_*`` variables, profile, instance or container role;
    ``AWS_ENDPOINT_URL_S3`` for an S3-compatible store),
    as a SageMaker endpoint reads its model with its own execution role. The ``conn_id@`` that
    ``str(ObjectStoragePath(..., conn_id=...))`` puts before the bucket
    (``s3://aws_default@bucket/key``) names an Airflow connection and is dropped.
    """
    protocol, _, rest = uri.partition("://")
    if protocol == "s3":
        from mlops.core.s3_filesystem import PrefixScopedS3FileSystem

        bucket, _, key = rest.partition("/")
        return PrefixScopedS3FileSystem().cat_file(f"{bucket.rpartition('@')[2]}/{key}")
    if protocol != "file":
        raise ValueError(f"{uri}: only file:// and s3:// artifacts can be read")
    import fsspec

    with fsspec.open(uri, "rb") as handle:
        return handle.read()


def write_bytes_without_airflow(uri: str, data: bytes) -> None:
    """Write ``data`` whole at a ``file://`` or ``s3://`` URI; Airflow is not imported.

    The writing twin of :func:`read_bytes_without_airflow`, with the same credentials: ``s3://``
    is one PUT of the key through :class:`~mlops.core.s3_filesystem.PrefixScopedS3FileSystem`
    (no bucket probe or creation, which a role scoped to the data prefix is refused); a local
    file is written beside its name and renamed into place, its folders made first.
    """
    protocol, _, rest = uri.partition("://")
    if protocol == "s3":
        from mlops.core.s3_filesystem import PrefixScopedS3FileSystem

        bucket, _, key = rest.partition("/")
        PrefixScopedS3FileSystem().pipe_file(f"{bucket.rpartition('@')[2]}/{key}", data)
        return
    if protocol != "file":
        raise ValueError(f"{uri}: only file:// and s3:// destinations can be written")
    path = Path(rest)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_local(path, data)


def data_path(*parts: str) -> ObjectStoragePath:
    """A path under the project's data root, e.g. ``data_path("raw", "churn")``."""
    from mlops.core.settings import get_settings

    settings = get_settings()
    path = to_path(settings.data_uri, settings.aws_conn_id)
    for part in parts:
        path = path / part
    return path


def relative_name(path: ObjectStoragePath, root: ObjectStoragePath) -> str:
    """``path``'s name below ``root`` (``"a/b.csv"``), for ``file://`` and ``s3://`` paths alike
    (``ObjectStoragePath.relative_to`` is not implemented for object stores).

    :raises ValueError: ``path`` is not below ``root``.
    """
    base = root.path.rstrip("/") + "/"
    if not path.path.startswith(base):
        raise ValueError(f"{path} is not below {root}")
    return path.path[len(base):]


def sha256_of(uri_or_path: str | Path | ObjectStoragePath) -> str:
    """Streaming sha256 of one file."""
    path = to_path(uri_or_path) if isinstance(uri_or_path, str) else uri_or_path
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(uri: str, payload: Any) -> str:
    path = to_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    return uri


def read_json(uri: str) -> Any:
    return json.loads(to_path(uri).read_text())


def pack_model(model_dir: Path, dest_uri: str) -> tuple[str, str]:
    """Tar+gzip ``model_dir``'s files into ``dest_uri`` (``.../model.tar.gz``); return (uri, sha256).

    The archive is deterministic (sorted names, zeroed mtimes and owners) so re-packing the same
    files gives the same digest.
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as tar:
        for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            info = tar.gettarinfo(str(file), arcname=str(file.relative_to(model_dir)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with file.open("rb") as handle:
                tar.addfile(info, handle)
    data = buffer.getvalue()
    dest = to_path(dest_uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(dest, data)
    return dest_uri, hashlib.sha256(data).hexdigest()


def write_bytes_atomic(dest: ObjectStoragePath, data: bytes) -> None:
    """Write ``data`` to ``dest`` so that it is there whole or not at all.

    A local file is written beside ``dest`` and renamed over it; a failed write (a full disk)
    removes it and leaves ``dest`` as it was. An object store's PUT is atomic already.
    """
    if dest.protocol not in ("file", "local"):
        dest.write_bytes(data)
        return
    _replace_local(Path(dest.path), data)


def unpack_model(model_uri: str, dest_dir: Path, expected_sha256: str,
                 read: Callable[[str], bytes] = read_bytes) -> Path:
    """Download ``model_uri``, verify its sha256 *before* opening it, extract into ``dest_dir``.

    The digest is required: an artifact is never opened unverified. Raises
    :class:`DigestMismatch` when it differs; nothing is extracted then.

    :param read: reads the artifact's bytes: :func:`read_bytes` (Airflow's ``ObjectStoragePath``
        and connection) in tasks, :func:`read_bytes_without_airflow` in the model runtime.
    """
    if not (isinstance(expected_sha256, str) and SHA256.fullmatch(expected_sha256)):
        raise ValueError(f"{model_uri}: expected_sha256 must be a 64-character hex sha256, got {expected_sha256!r}")
    data = read(model_uri)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise DigestMismatch(
            f"{model_uri}: sha256 {actual} does not match the recorded {expected_sha256}; "
            "refusing to load a changed artifact"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest_dir, filter="data")
    return dest_dir


def write_text_atomic(path: Path, text: str) -> None:
    """Write a local file so readers see the old or the new content, never a torn one.

    Writes a temp file beside ``path``, fsyncs it, then ``os.replace``s it into place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_local(path, text.encode("utf-8"))


def _replace_local(path: Path, data: bytes) -> None:
    """``data`` into a temp file beside ``path``, fsynced, then ``os.replace``d into place; the temp
    file is removed when anything fails (a full disk leaves nothing half-written visible)."""
    import os

    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"mlops-{prefix}-"))
