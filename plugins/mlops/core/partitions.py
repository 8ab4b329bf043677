"""Date partitions in the object store, committed atomically by a manifest.

Layout: ``<root>/raw/<use_case>/ds=YYYY-MM-DD/`` holding ``part-<token>-NNNNN.parquet`` files and
``_manifest.json``. A partition is visible only once its manifest exists, and readers read only
the files the manifest lists: a crash mid-write leaves nothing visible, and a re-run for the same
date writes new files, commits a new manifest, then deletes the files of the old one, so rows are
never duplicated.

The manifest records the row count of every file (checked against the file's Parquet footer
before the commit), the schema (readable names and types, plus the Arrow schema every file is
read as), where the rows came from and a ``digest`` of its content (the files and their row
counts): a run that was told "partition X with digest D" can tell whether X still holds what it
was told. It is replaced atomically: a local file is written beside it and renamed over it; on
S3 a PUT is atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.core.storage import data_path, to_path

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

MANIFEST = "_manifest.json"
log = logging.getLogger(__name__)


class PartitionNotFound(FileNotFoundError):
    """No committed partition where one was expected."""


class PartitionChanged(RuntimeError):
    """A partition no longer holds the content a run was told about (re-committed since)."""


def partition_path(use_case: str, ds: str, zone: str = "raw") -> ObjectStoragePath:
    datetime.strptime(ds, "%Y-%m-%d")  # raises ValueError naming the bad date
    return data_path(zone, use_case, f"ds={ds}")


def new_part_name(token: str | None = None, index: int = 0) -> str:
    return f"part-{token or uuid.uuid4().hex[:12]}-{index:05d}.parquet"


def write_parts(directory: ObjectStoragePath, tables: Iterable[pa.Table], token: str) -> list[dict[str, Any]]:
    """Write each table as one Parquet file in ``directory``; return [{file, rows}] entries."""
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, table in enumerate(tables):
        name = new_part_name(token, index)
        try:
            with (directory / name).open("wb") as handle:
                pq.write_table(table, handle, compression="zstd")
        except BaseException:
            _remove_torn_part(directory / name)
            raise
        written.append({"file": name, "rows": table.num_rows})
    return written


def _remove_torn_part(path: ObjectStoragePath) -> None:
    """Remove a part whose write failed: no manifest lists it, but on a full disk it would hold
    the space the retry needs. When the store refuses (it is gone), the next commit removes it."""
    try:
        path.unlink(missing_ok=True)
    except Exception as err:  # noqa: BLE001 - the write's own failure is the one raised
        log.warning("could not remove the torn part %s (%s: %s); the next commit of its partition removes it",
                    path, type(err).__name__, str(err)[:300])


class PartitionCommitError(ValueError):
    """The files offered for a commit do not match what their manifest entries say."""


def _verify_parts(directory: ObjectStoragePath, parts: list[dict[str, Any]]) -> pa.Schema:
    """Check every part's row count against its Parquet footer; return the schema all parts are
    read as (their schemas unified, e.g. ``int64`` and ``double`` as ``double``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = []
    for part in parts:
        path = directory / part["file"]
        if not path.exists():
            raise PartitionCommitError(f"{path}: listed for the commit but missing")
        with path.open("rb") as handle:
            footer = pq.ParquetFile(handle)
            rows, schema = footer.metadata.num_rows, footer.schema_arrow
        if rows != part["rows"]:
            raise PartitionCommitError(f"{path}: the writer reported {part['rows']} rows, the file holds {rows}")
        schemas.append(schema.remove_metadata())
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise PartitionCommitError(f"the parts of {directory} have incompatible schemas: {err}") from err


def _write_manifest(directory: ObjectStoragePath, text: str) -> None:
    target = directory / MANIFEST
    if directory.protocol in ("file", "local"):
        temp = directory / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
        temp.write_text(text)
        temp.replace(target)  # rename(2): readers see the old manifest or the new one, never a torn one
    else:
        target.write_text(text)  # one PUT: an object store replaces the object atomically


def commit(directory: ObjectStoragePath, parts: list[dict[str, Any]], schema: dict[str, str] | None = None,
           source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Publish ``parts`` (``[{"file", "rows", ...}]``) as the partition's content, then remove
    the part files no manifest lists (earlier tries, crashed writers).

    :param schema: names and types to record when ``parts`` is empty; with parts the schema is
        read from the files themselves.
    :raises PartitionCommitError: a part is missing, its row count is not what the writer
        reported, or the parts' schemas cannot be unified. Nothing is published then.
    """
    import base64

    parts = [dict(p) for p in parts]
    arrow_schema = _verify_parts(directory, parts) if parts else None
    manifest = {
        "rows": sum(p["rows"] for p in parts),
        "digest": content_digest(parts),
        "files": parts,
        "schema": {f.name: str(f.type) for f in arrow_schema} if arrow_schema is not None else dict(schema or {}),
        "arrow_schema": base64.b64encode(arrow_schema.serialize().to_pybytes()).decode() if arrow_schema else None,
        "source": source or {},
        "committed_at": datetime.now(UTC).isoformat(),
    }
    _write_manifest(directory, json.dumps(manifest, indent=2, default=str))
    keep = {p["file"] for p in parts} | {MANIFEST}
    for path in directory.iterdir():
        stale_part = path.name.startswith("part-") and path.name not in keep
        stale_temp = path.name.startswith(f".{MANIFEST}.")
        if stale_part or stale_temp:
            path.unlink(missing_ok=True)
    return manifest


def content_digest(parts: list[dict[str, Any]]) -> str:
    """sha256 of what a manifest publishes: each file's name, row count and source digest."""
    canonical = [{k: p.get(k) for k in ("file", "rows", "sha256")} for p in sorted(parts, key=lambda p: p["file"])]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def manifest_schema(manifest: dict[str, Any]) -> pa.Schema | None:
    """The Arrow schema every file of a committed partition is read as (``None`` if unknown)."""
    import base64

    import pyarrow as pa

    encoded = manifest.get("arrow_schema")
    if not encoded:
        return None
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))


def commit_segments(use_case: str, ds: str, parts: list[dict[str, Any]], source: dict[str, Any]) -> dict[str, Any]:
    """Commit the part files that parallel writers (e.g. token-range tasks) left in the partition."""
    directory = partition_path(use_case, ds)
    directory.mkdir(parents=True, exist_ok=True)
    parts = sorted(parts, key=lambda p: p["file"])
    manifest = commit(directory, parts, None, source)
    return {"partition_uri": str(directory), "digest": manifest["digest"], "ds": ds, "rows": manifest["rows"],
            "files": len(parts), "use_case": use_case}


def read_manifest(directory: ObjectStoragePath | str) -> dict[str, Any]:
    directory = to_path(directory) if isinstance(directory, str) else directory
    manifest = directory / MANIFEST
    if not manifest.exists():
        raise PartitionNotFound(f"{directory} has no {MANIFEST}: the partition was never committed")
    return json.loads(manifest.read_text())


def latest_partition(use_case: str, zone: str = "raw", as_of: str | None = None) -> ObjectStoragePath:
    """The newest committed ``ds=`` partition of ``use_case``; with ``as_of`` (``YYYY-MM-DD``),
    the newest dated on or before it."""
    root = data_path(zone, use_case)
    committed = sorted(
        (p for p in (root.iterdir() if root.exists() else []) if p.name.startswith("ds=") and (p / MANIFEST).exists()
         and (as_of is None or p.name.removeprefix("ds=") <= as_of)),
        key=lambda p: p.name,
    )
    if not committed:
        on_or_before = f" dated on or before {as_of}" if as_of else ""
        raise PartitionNotFound(f"no committed partition{on_or_before} under {root}; run an ingest DAG first")
    return committed[-1]


def reference(directory: ObjectStoragePath | str) -> dict[str, Any]:
    """What a run needs to name a committed partition: ``uri``, ``digest``, ``ds``, ``rows``."""
    directory = to_path(directory) if isinstance(directory, str) else directory
    manifest = read_manifest(directory)
    return {"uri": str(directory), "digest": manifest.get("digest") or content_digest(manifest["files"]),
            "ds": directory.name.removeprefix("ds="), "rows": manifest["rows"]}


def resolve(use_case: str, uri: str | None = None, digest: str | None = None,
            as_of: str | None = None) -> dict[str, Any]:
    """The partition a run works on, as a :func:`reference`.

    ``uri`` when given (a Param, or what an Asset event announced), else the newest committed
    partition dated on or before ``as_of`` (the run's date, so a re-run picks the same one).
    Either way it must be committed; with ``digest`` (announced with the ``uri``) it must
    still hold that content.

    :raises PartitionNotFound: nothing committed there.
    :raises PartitionChanged: the partition was re-committed with other content since.
    """
    ref = reference(uri if uri else latest_partition(use_case, as_of=as_of))
    if digest and ref["digest"] != digest:
        raise PartitionChanged(
            f"{ref['uri']} holds other content (digest {ref['digest'][:12]}…) than this run was triggered with "
            f"({digest[:12]}…): it was re-committed since; trigger a new run for the new content"
        )
    return ref


def read_partition(directory: ObjectStoragePath | str) -> pd.DataFrame:
    """Read exactly the files the manifest lists, in manifest order."""
    import pandas as pd
    import pyarrow.parquet as pq

    directory = to_path(directory) if isinstance(directory, str) else directory
    manifest = read_manifest(directory)
    schema = manifest_schema(manifest)
    frames = []
    for part in manifest["files"]:
        with (directory / part["file"]).open("rb") as handle:
            table = pq.read_table(handle)
        if schema is not None and not table.schema.equals(schema, check_metadata=False):
            table = table.select(schema.names).cast(schema)
        frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(manifest["schema"]))
    return pd.concat(frames, ignore_index=True)


def partition_for_run(use_case: str, context: dict[str, Any]) -> dict[str, Any]:
    """The partition a run of a consuming DAG (training, segmentation) works on.

    In order: the run's ``partition_uri`` Param; the partition the triggering ``<use case>_raw``
    Asset event announced (checked against the digest it announced); the newest partition dated
    on or before the run's date. The same run resolves the same partition when it is cleared.
    """
    from mlops.core.assets import raw_data
    from mlops.core.runs import announced, run_date

    given = (context.get("params") or {}).get("partition_uri")
    if given:
        return resolve(use_case, given)
    event = announced(context, raw_data(use_case))
    if event and event.get("partition_uri"):
        return resolve(use_case, event["partition_uri"], event.get("digest"))
    return resolve(use_case, as_of=run_date(context))
