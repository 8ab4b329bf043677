"""Date partitions in the object store, committed atomically by a manifest.

Layout: ``<root>/raw/<use_case>/ds=YYYY-MM-DD/`` holding ``part-<token>-NNNNN.parquet`` files and
``_manifest.json``. A partition is visible only once its manifest exists, and readers read only
the files the manifest lists: a crash mid-write leaves nothing visible, and a re-run for the same
date writes new files, commits a new manifest, then deletes the files of the old one, so rows are
never duplicated.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.storage import data_path, to_path

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

MANIFEST = "_manifest.json"


class PartitionNotFound(FileNotFoundError):
    """No committed partition where one was expected."""


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
        with (directory / name).open("wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        written.append({"file": name, "rows": table.num_rows})
    return written


def commit(directory: ObjectStoragePath, parts: list[dict[str, Any]], schema: dict[str, str],
           source: dict[str, Any]) -> dict[str, Any]:
    """Publish ``parts`` as the partition's content, then remove files no manifest lists."""
    manifest = {
        "rows": sum(p["rows"] for p in parts),
        "files": parts,
        "schema": schema,
        "source": source,
        "committed_at": datetime.now(UTC).isoformat(),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    keep = {p["file"] for p in parts} | {MANIFEST}
    for path in directory.iterdir():
        if path.name not in keep and path.name.startswith("part-"):
            path.unlink()
    return manifest


def commit_segments(use_case: str, ds: str, parts: list[dict[str, Any]], source: dict[str, Any]) -> dict[str, Any]:
    """Commit the part files that parallel writers (e.g. token-range tasks) left in the partition."""
    import pyarrow.parquet as pq

    directory = partition_path(use_case, ds)
    directory.mkdir(parents=True, exist_ok=True)
    parts = sorted(parts, key=lambda p: p["file"])
    schema: dict[str, str] = {}
    if parts:
        with (directory / parts[0]["file"]).open("rb") as handle:
            schema = {f.name: str(f.type) for f in pq.read_schema(handle)}
    manifest = commit(directory, parts, schema, source)
    return {"partition_uri": str(directory), "rows": manifest["rows"], "files": len(parts)}


def read_manifest(directory: ObjectStoragePath | str) -> dict[str, Any]:
    directory = to_path(directory) if isinstance(directory, str) else directory
    manifest = directory / MANIFEST
    if not manifest.exists():
        raise PartitionNotFound(f"{directory} has no {MANIFEST}: the partition was never committed")
    return json.loads(manifest.read_text())


def latest_partition(use_case: str, zone: str = "raw") -> ObjectStoragePath:
    """The newest committed ``ds=`` partition of ``use_case``."""
    root = data_path(zone, use_case)
    committed = sorted(
        (p for p in (root.iterdir() if root.exists() else []) if p.name.startswith("ds=") and (p / MANIFEST).exists()),
        key=lambda p: p.name,
    )
    if not committed:
        raise PartitionNotFound(f"no committed partition under {root}; run an ingest DAG first")
    return committed[-1]


def resolve(use_case: str, uri: str | None = None) -> str:
    """``uri`` if given, else the newest committed partition; either way it must be committed."""
    path = to_path(uri) if uri else latest_partition(use_case)
    read_manifest(path)
    return str(path)


def read_partition(directory: ObjectStoragePath | str) -> pd.DataFrame:
    """Read exactly the files the manifest lists, in manifest order."""
    import pandas as pd
    import pyarrow.parquet as pq

    directory = to_path(directory) if isinstance(directory, str) else directory
    manifest = read_manifest(directory)
    frames = []
    for part in manifest["files"]:
        with (directory / part["file"]).open("rb") as handle:
            frames.append(pq.read_table(handle).to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(manifest["schema"]))
    return pd.concat(frames, ignore_index=True)
