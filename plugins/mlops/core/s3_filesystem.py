"""The S3 filesystem behind the project's ``s3://`` paths: s3fs without the requests a
prefix-scoped role may not make.

The Airflow role (``include/iam/airflow-execution-role.json``) may read and write objects under
the data prefix and list the bucket only with an ``s3:prefix`` under it; it has no bucket-level
permission. Two things s3fs does by default need more than that:

* **Existence and metadata** (``exists()``, ``is_file()``, ``stat()``, opening for reading):
  s3fs asks ``HEAD Object`` first. For a key that does not exist, S3 answers 404 only to a
  caller with ``s3:ListBucket`` on the bucket and 403 to anyone else (HeadObject's
  documentation). A HEAD request names no prefix, so a prefix-conditioned ListBucket does not
  make it 404: ``exists()`` of a missing file or of a folder would raise ``PermissionError``.
  Here they are answered by ``ListObjectsV2`` with the key as the prefix, which the role may
  send: one request for a file, two for a folder or a missing key.
* **mkdir**: s3fs probes the bucket (``HeadBucket``, ``GetBucketLocation``) and creates it when
  the probes fail. S3 has no folders, so making one under a bucket is a no-op here; the bucket
  is created once by an administrator, never by a task.

And one thing it does silently: removing a file sends ``DeleteObjects`` and ignores the errors
in its answer, so a refused delete (the original of a moved file) would pass unnoticed. One
file is removed here with ``DeleteObject``, whose refusal raises ``PermissionError``.

Nothing here imports Airflow; :func:`attach_to_connection` (used by :func:`mlops.core.storage.to_path`)
puts this filesystem behind every ``ObjectStoragePath`` of an Airflow connection.
"""

from __future__ import annotations

from typing import Any

from fsspec.asyn import sync_wrapper
from fsspec.core import has_magic
from s3fs import S3FileSystem


class PrefixScopedS3FileSystem(S3FileSystem):
    """``s3fs.S3FileSystem`` whose existence checks list the key's prefix and whose ``mkdir``
    under a bucket does nothing (see the module's docstring). Takes ``S3FileSystem``'s arguments."""

    async def _info(self, path, bucket=None, key=None, refresh=False, version_id=None) -> dict[str, Any]:
        bucket, key, path_version = self.split_path(path)
        if not key or version_id or path_version or self.version_aware:
            return await super()._info(path, bucket, key, refresh=refresh, version_id=version_id)
        name = f"{bucket}/{key}"
        if not refresh:
            cached = self._ls_from_cache(name)  # raises FileNotFoundError if its folder's listing lacks it
            if cached is not None:
                return next((entry for entry in cached if entry["name"] == name),
                            {"name": name, "size": 0, "type": "directory", "StorageClass": "DIRECTORY"})
        key = key.rstrip("/")
        # The key itself sorts first among the keys it prefixes, so one key answers "is it a file".
        listed = await self._call_s3("list_objects_v2", self.kwargs, Bucket=bucket, Prefix=key, MaxKeys=1)
        for item in listed.get("Contents", []):
            if item["Key"] == key:
                return {"name": f"{bucket}/{key}", "type": "file", "size": item["Size"], "ETag": item.get("ETag", ""),
                        "LastModified": item.get("LastModified", ""),
                        "StorageClass": item.get("StorageClass", "STANDARD"), "VersionId": None}
        below = await self._call_s3("list_objects_v2", self.kwargs, Bucket=bucket, Prefix=f"{key}/", MaxKeys=1)
        if below.get("Contents"):
            return {"name": f"{bucket}/{key}", "type": "directory", "size": 0, "StorageClass": "DIRECTORY"}
        raise FileNotFoundError(path)

    async def _mkdir(self, path, acl=False, create_parents=True, **kwargs) -> None:
        _, key, _ = self.split_path(path)
        if key:
            return  # no folders in S3; the bucket is an administrator's, never probed or created here
        await super()._mkdir(path, acl=acl, create_parents=create_parents, **kwargs)

    mkdir = sync_wrapper(_mkdir)  # s3fs binds its own sync mkdir to its own _mkdir

    async def _rm(self, path, recursive=False, **kwargs) -> None:
        _, key, _ = self.split_path(path) if isinstance(path, str) else ("", "", None)
        if recursive or not key or has_magic(path):
            return await super()._rm(path, recursive=recursive, **kwargs)
        # One key: DeleteObject, whose refusal raises. s3fs sends DeleteObjects, whose per-key
        # errors it ignores, so a denied delete (a moved file's original) would pass in silence.
        self.invalidate_cache(self._parent(path))
        await self._rm_file(path)


def attach_to_connection(conn_id: str) -> None:
    """Make every ``ObjectStoragePath(..., conn_id=conn_id)`` of ``s3://`` use
    :class:`PrefixScopedS3FileSystem`, configured from the connection as the amazon provider
    configures its own (credentials, ``endpoint_url``, ``config_kwargs``).

    Call it before making the paths: a path keeps the filesystem it was made with.

    :raises ValueError: the connection asks for a custom request signer, which this filesystem
        cannot carry over.
    """
    from airflow.sdk.io.store import attach

    store = attach("s3", conn_id)
    if isinstance(store.__dict__.get("fs"), PrefixScopedS3FileSystem):
        return
    from airflow.providers.amazon.aws.fs.s3 import get_fs
    from botocore import UNSIGNED

    options = get_fs(conn_id).storage_options
    if (options.get("config_kwargs") or {}).get("signature_version") is UNSIGNED:
        raise ValueError(f"Airflow connection {conn_id!r} configures a custom S3 signer, which the project's "
                         "S3 store does not support; use the connection's credentials or role instead")
    store.fs = PrefixScopedS3FileSystem(**options)
