"""S3 URIs as the AWS ports read them and as SageMaker takes them."""

from __future__ import annotations


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "key/prefix")`` of an ``s3://`` URI.

    An ``ObjectStoragePath`` made with a connection prints as ``s3://<conn_id>@bucket/key``;
    the connection part is dropped. The key is kept as written (``?`` and ``#`` included).
    """
    if not uri.startswith("s3://"):
        raise ValueError(f"expected an s3:// URI, got {uri!r}")
    netloc, _, key = uri[len("s3://"):].partition("/")
    bucket = netloc.rpartition("@")[2]
    if not bucket:
        raise ValueError(f"expected an s3:// URI with a bucket, got {uri!r}")
    return bucket, key


def s3_uri(uri: str) -> str:
    """``uri`` as SageMaker takes it: ``s3://bucket/key``, no connection id, no trailing slash."""
    bucket, key = split_s3_uri(uri)
    return f"s3://{bucket}/{key}".rstrip("/")

