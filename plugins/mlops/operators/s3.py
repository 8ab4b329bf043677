"""S3 (or the local object store) landing prefix -> raw date partition."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.sensor import BaseSensorOperator, PokeReturnValue


def _landing_files(prefix: str, pattern: str) -> list[str]:
    from mlops.storage import data_path

    root = data_path(*prefix.strip("/").split("/"))
    if not root.exists():
        return []
    return sorted(str(p) for p in root.iterdir() if p.is_file() and fnmatch.fnmatch(p.name, pattern))


class LandingFilesSensor(BaseSensorOperator):
    """Wait until files matching ``pattern`` appear under the landing ``prefix``.

    Works on ``file://`` and ``s3://`` roots alike (``ObjectStoragePath``). Returns the file URIs.

    :param prefix: landing prefix relative to the data root, e.g. ``landing/churn``.
    :param pattern: file-name glob, e.g. ``*.csv``.
    """

    template_fields: Sequence[str] = ("prefix", "pattern")

    def __init__(self, *, prefix: str, pattern: str = "*.csv", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        self.pattern = pattern

    def poke(self, context) -> PokeReturnValue:
        files = _landing_files(self.prefix, self.pattern)
        self.log.info("%d file(s) matching %s under %s", len(files), self.pattern, self.prefix)
        return PokeReturnValue(is_done=bool(files), xcom_value=files)


class LandingToRawOperator(BaseOperator):
    """Check landed CSV files against the use case's columns, publish them as the raw partition
    for the logical date, and only then move the originals to ``processed/``.

    A file with the wrong columns or unreadable bytes fails the task naming the file and the
    problem; nothing is moved, so a fixed file and a re-run finish the job. Re-running after a
    crash between commit and move re-publishes the same files (the partition is replaced, never
    appended to) and then moves them.

    :param use_case: pipeline name (columns come from ``include/pipelines/<use_case>.yaml``).
    :param files: landed file URIs (from :class:`LandingFilesSensor`).
    :param ds: logical date of the partition (templated).
    """

    template_fields: Sequence[str] = ("use_case", "files", "ds")

    def __init__(self, *, use_case: str, files: list[str] | str, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.files = files
        self.ds = ds

    def execute(self, context) -> dict[str, Any]:
        import pandas as pd
        import pyarrow as pa

        from mlops import partitions
        from mlops.config import load_pipeline
        from mlops.storage import data_path, to_path
        from mlops.validation import load_csv_strict

        config = load_pipeline(self.use_case)
        columns = config.schema["columns"]
        sources = [to_path(uri) for uri in (self.files or [])]
        if not sources:
            raise ValueError(f"no landed files for {self.use_case}")
        tables = []
        for source in sources:
            with source.open("rb") as handle:
                try:
                    frame = load_csv_strict(handle, columns)
                except ValueError as err:
                    raise ValueError(f"{source}: {err}") from err
            for column in config.schema.get("datetime_columns", []):
                frame[column] = pd.to_datetime(frame[column])
            for column in config.schema.get("text_columns", []):
                frame[column] = frame[column].astype("string")
            tables.append(pa.Table.from_pandas(frame[columns], preserve_index=False))
            self.log.info("%s: %d rows, columns ok", source.name, len(frame))
        directory = partitions.partition_path(self.use_case, self.ds)
        parts = partitions.write_parts(directory, tables, token=f"landing-t{context['ti'].try_number}")
        schema = {field.name: str(field.type) for field in tables[0].schema}
        manifest = partitions.commit(directory, parts, schema, {"kind": "landing", "files": [str(s) for s in sources]})
        processed = data_path("processed", self.use_case, f"ds={self.ds}")
        processed.mkdir(parents=True, exist_ok=True)
        for source in sources:
            source.rename(processed / source.name)
        self.log.info("published %d rows to %s; originals moved to %s", manifest["rows"], directory, processed)
        return {"partition_uri": str(directory), "rows": manifest["rows"], "files": len(sources)}
