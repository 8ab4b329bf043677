"""S3 (or the local object store) landing prefix -> raw date partition."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.sensor import BaseSensorOperator, PokeReturnValue

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def _landing_root(prefix: str) -> ObjectStoragePath:
    from mlops.core.storage import data_path

    return data_path(*prefix.strip("/").split("/"))


def _landing_files(prefix: str, pattern: str) -> list[str]:
    from mlops.triggers.object_storage import list_landed_files

    root = _landing_root(prefix)
    return list_landed_files(str(root), pattern, root.conn_id)


class LandingFilesSensor(BaseSensorOperator):
    """Wait until files matching ``pattern`` appear under the landing ``prefix``; return their URIs.

    Looks once on the worker; if nothing has landed it defers (``deferrable=True``, the default)
    so no worker slot is held while waiting: on ``s3://`` to the amazon provider's
    ``S3KeyTrigger`` (wildcard on ``<prefix>/<pattern>``), elsewhere (``file://``) to
    :class:`~mlops.triggers.object_storage.LandingFilesTrigger`. When the trigger fires the
    files are listed again, so the task returns what is there now. ``deferrable=False`` pokes
    (``mode="poke"`` or ``"reschedule"``).

    A run someone triggered (UI, REST) rather than the schedule looks once and is skipped when
    nothing has landed, unless ``wait_on_manual`` is set: a person triggers a run for the files
    they just landed, and an idle wait would hold that run open for ``timeout`` seconds.

    :param prefix: landing prefix relative to the data root, e.g. ``landing/churn`` (templated).
    :param pattern: glob on the path below the prefix, e.g. ``*.csv`` (templated).
    :param deferrable: wait in the triggerer.
    :param wait_on_manual: wait (up to ``timeout``) in manually triggered runs too (templated).
    """

    template_fields: Sequence[str] = ("prefix", "pattern", "wait_on_manual")

    def __init__(self, *, prefix: str, pattern: str = "*.csv", deferrable: bool = True,
                 wait_on_manual: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        self.pattern = pattern
        self.deferrable = deferrable
        self.wait_on_manual = wait_on_manual

    def _look_once(self, context) -> bool:
        """Whether this run looks once instead of waiting: a triggered run, unless told to wait."""
        wait = self.wait_on_manual if isinstance(self.wait_on_manual, bool) \
            else str(self.wait_on_manual).strip().lower() in ("true", "1", "yes")
        return str(context["dag_run"].run_type).split(".")[-1].lower() == "manual" and not wait

    def poke(self, context) -> PokeReturnValue:
        files = _landing_files(self.prefix, self.pattern)
        self.log.info("%d file(s) matching %s under %s", len(files), self.pattern, self.prefix)
        return PokeReturnValue(is_done=bool(files), xcom_value=files)

    def execute(self, context) -> list[str] | None:
        if self._look_once(context):
            files = _landing_files(self.prefix, self.pattern)
            if not files:
                from airflow.sdk.exceptions import AirflowSkipException

                raise AirflowSkipException(f"nothing matching {self.pattern} under {self.prefix} (a triggered "
                                           "run looks once; the scheduled runs wait for files)")
            self.log.info("%d file(s) matching %s under %s", len(files), self.pattern, self.prefix)
            return files
        if not self.deferrable:
            return super().execute(context)
        files = _landing_files(self.prefix, self.pattern)
        if files:
            self.log.info("%d file(s) matching %s under %s", len(files), self.pattern, self.prefix)
            return files
        self._defer()

    def trigger(self):
        """The trigger that waits for this sensor's files."""
        from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger

        from mlops.triggers.object_storage import LandingFilesTrigger

        root = _landing_root(self.prefix)
        if root.protocol in ("s3", "s3a"):
            return S3KeyTrigger(bucket_name=root.bucket, bucket_key=f"{root.key.strip('/')}/{self.pattern}",
                                wildcard_match=True, aws_conn_id=root.conn_id, poke_interval=self.poke_interval)
        return LandingFilesTrigger(str(root), self.pattern, poke_interval=self.poke_interval, timeout=self.timeout,
                                   conn_id=root.conn_id)

    def _defer(self) -> None:
        self.log.info("nothing matching %s under %s yet; deferring", self.pattern, self.prefix)
        self.defer(trigger=self.trigger(), method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> list[str]:
        from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

        status = (event or {}).get("status")
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message") or f"no {self.pattern} under {self.prefix}")
        if status not in ("success", "running"):
            raise AirflowException(f"waiting for {self.pattern} under {self.prefix} failed: {event}")
        files = _landing_files(self.prefix, self.pattern)
        if not files:  # gone again since the trigger fired (e.g. another run took them): wait again
            self._defer()
        self.log.info("%d file(s) matching %s under %s", len(files), self.pattern, self.prefix)
        return files


class LandingToRawOperator(BaseOperator):
    """Check landed CSV files against the use case's schema, publish them as the raw partition
    for the logical date, and only then move the originals to ``processed/<use case>/ds=<ds>/``.

    The partition for a date holds every file landed for that date: the files already moved to
    ``processed/`` by earlier runs of the date (their Parquet parts are reused, not re-read) and
    the newly landed ones. Files are identified by the sha256 of their bytes, so the same
    content is published once however often it lands. What a failure leaves behind:

    * a bad file (wrong columns, unreadable bytes, non-numeric values in a numeric column,
      unparseable dates) fails the task naming the file and the problem before anything is
      published or moved; a fixed file and a re-run finish the job;
    * a crash before the commit leaves the previous manifest (and so the partition) unchanged
      and every original in place;
    * a crash after the commit, during the moves, leaves some originals in ``landing/``: the
      re-run finds their content already published (same sha256), publishes nothing twice,
      and moves them. A copy that reached ``processed/`` before the crash is recognised too.

    When none of ``files`` is left in the landing prefix (another run published them), the task
    is skipped and announces nothing. The DAG runs at most one of these tasks at a time
    (``max_active_tis_per_dag=1``), so concurrent runs never publish the same files twice.
    Each outlet's Asset event announces the partition: ``partition_uri``, ``digest``, ``ds``,
    ``rows``, ``use_case``.

    :param use_case: pipeline name (schema from ``include/pipelines/<use_case>.yaml``).
    :param files: landed file URIs (from :class:`LandingFilesSensor`, templated).
    :param ds: date of the partition, ``YYYY-MM-DD`` (templated); default the run's logical date,
        or its ``run_after`` date when it has none (Asset-triggered and REST runs).
    :param prefix: landing prefix the files came from (default ``landing/<use_case>``); their
        paths below it are kept under ``processed/``.
    """

    template_fields: Sequence[str] = ("use_case", "files", "ds", "prefix")

    def __init__(self, *, use_case: str, files: list[str] | str | None, ds: str | None = None,
                 prefix: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.files = files
        self.ds = ds
        self.prefix = prefix

    def execute(self, context) -> dict[str, Any]:
        import uuid

        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.core import partitions
        from mlops.core.config import load_pipeline
        from mlops.core.runs import announce, run_date
        from mlops.core.storage import data_path, to_path

        ds = self.ds or run_date(context)
        config = load_pipeline(self.use_case)
        landing_root = _landing_root(self.prefix or f"landing/{self.use_case}")
        processed_root = data_path("processed", self.use_case, f"ds={ds}")
        directory = partitions.partition_path(self.use_case, ds)
        token = f"landing-t{context['ti'].try_number}-{uuid.uuid4().hex[:8]}"

        landed = [to_path(uri) for uri in (self.files or [])]
        if not landed:
            raise ValueError(f"no landed files given for {self.use_case}: {self.files!r}")
        present = [path for path in landed if path.exists()]
        for path in set(landed) - set(present):
            self.log.warning("%s is no longer in the landing prefix (moved by an earlier try?)", path)
        processed = [path for path in (processed_root.rglob("*") if processed_root.exists() else []) if path.is_file()]
        # None left: another run published them, unless an earlier try of this one moved them to
        # processed/ after its commit (then this try finishes the job).
        if not present and (context["ti"].try_number == 1 or not processed):
            raise AirflowSkipException(f"none of the {len(landed)} file(s) is still under {landing_root}"
                                       + ("" if context["ti"].try_number == 1 else
                                          f" and no earlier try moved any to {processed_root}")
                                       + ": another run published them")
        directory.mkdir(parents=True, exist_ok=True)

        try:
            previous = partitions.read_manifest(directory)["files"]
        except partitions.PartitionNotFound:
            previous = []
        previous = [e for e in previous if "sha256" in e and (directory / e["file"]).exists()]
        by_processed = {e.get("processed"): e for e in previous}
        by_digest = {e["sha256"]: e for e in previous}

        entries: list[dict[str, Any]] = []
        published: set[str] = set()
        new_parts = 0
        for path in sorted(processed, key=str):  # published by an earlier run of this date
            entry = by_processed.get(str(path))
            if entry is None:
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                entry = None if digest in published else self._convert(config, path, data, digest, directory,
                                                                       f"{token}-{len(entries)}", str(path))
                new_parts += entry is not None
            if entry is not None and entry["sha256"] not in published:
                entries.append(entry)
                published.add(entry["sha256"])

        moves: list[tuple[ObjectStoragePath, ObjectStoragePath, str]] = []
        for path in sorted(present, key=str):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            target = _processed_target(path, landing_root, processed_root, digest)
            moves.append((path, target, digest))
            if digest in published:
                self.log.info("%s: content already published (sha256 %s…)", path.name, digest[:12])
                continue
            entry = by_digest.get(digest)
            if entry is None:
                entry = self._convert(config, path, data, digest, directory, f"{token}-{len(entries)}", str(target))
                new_parts += 1
            entries.append({**entry, "processed": str(target)})
            published.add(digest)

        sources = [e["processed"] for e in entries]
        manifest = partitions.commit(directory, entries, None, {"kind": "landing", "files": sources})
        self.log.info("published %d rows from %d file(s) (%d new) to %s", manifest["rows"], len(entries),
                      new_parts, directory)

        for path, target, digest in moves:  # only now: the partition already holds their rows
            self._move(path, target, digest)
        self.log.info("moved %d original(s) to %s", len(moves), processed_root)
        published = {"partition_uri": str(directory), "digest": manifest["digest"], "ds": ds,
                     "rows": manifest["rows"], "use_case": self.use_case}
        for outlet in self.outlets:
            announce(context, outlet, published)
        return {**published, "files": len(entries), "new_files": new_parts, "moved": len(moves)}

    @staticmethod
    def _move(path: ObjectStoragePath, target: ObjectStoragePath, digest: str) -> None:
        if target.exists() and _sha256(target) == digest:
            path.unlink(missing_ok=True)  # copied before a crash; the original is redundant
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)

    def _convert(self, config, path: ObjectStoragePath, data: bytes, digest: str, directory: ObjectStoragePath,
                 token: str, processed: str) -> dict[str, Any]:
        """Check one CSV file against the schema and write it as one Parquet part."""
        from mlops.core import partitions
        from mlops.ingest.csv_files import landed_csv_to_table

        table = landed_csv_to_table(data, config.schema, str(path),
                                    extra_columns=config.validation.get("extra_columns", "fail"))
        (part,) = partitions.write_parts(directory, [table], token=token)
        self.log.info("%s: %d rows, schema ok -> %s", path.name, table.num_rows, part["file"])
        return {**part, "source": str(path), "sha256": digest, "processed": processed}


def _processed_target(path: ObjectStoragePath, landing_root: ObjectStoragePath, processed_root: ObjectStoragePath,
                      digest: str) -> ObjectStoragePath:
    """Where ``path`` goes under ``processed/``: its path below the landing prefix, with the
    content digest added when a different file of that name is already there."""
    relative = str(path)[len(str(landing_root).rstrip("/")) + 1:] if str(path).startswith(str(landing_root)) \
        else path.name
    target = processed_root.joinpath(*relative.split("/"))
    if target.exists() and _sha256(target) != digest:
        target = target.with_name(f"{target.stem}-{digest[:12]}{target.suffix}")
    return target


def _sha256(path: ObjectStoragePath) -> str:
    from mlops.core.storage import sha256_of

    return sha256_of(path)
