"""Amazon Keyspaces <-> object store: token-range reads into Parquet, Parquet upserts into tables."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops.hooks.keyspaces import Backoff, KeyspacesHook, quote_identifier, token_ranges

if TYPE_CHECKING:
    from mlops.hooks.keyspaces import WriteReport


def select_range_query(keyspace: str, table: str, partition_key: str, columns: Sequence[str] | None = None) -> str:
    """``SELECT`` of ``columns`` (all when ``None``) for one ``(start, end]`` token range."""
    names = ", ".join(quote_identifier(c) for c in columns) if columns else "*"
    key = quote_identifier(partition_key)
    # Identifiers are quoted by quote_identifier; the token bounds are bound parameters.
    return (f"SELECT {names} FROM {quote_identifier(keyspace)}.{quote_identifier(table)} "  # noqa: S608
            f"WHERE token({key}) > %s AND token({key}) <= %s")


@contextmanager
def paused_gc(pause: bool = True) -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a loop that makes many short-lived tuples.

    Every driver page is thousands of row tuples that live just long enough to be promoted to
    the oldest generation, so with the collector on, pages keep triggering full collections
    that walk the whole heap of the task process (Airflow, pandas, pyarrow...): that doubled
    the extraction time. Rows hold no reference cycles, so reference counting frees each page
    anyway; memory stays bounded. The collector is switched back on (if it was) and run once.
    """
    was_enabled = gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause and was_enabled:
            gc.enable()
            gc.collect(0)


def extract_to_parquet(hook: KeyspacesHook, query: str, parameters: Sequence[Any], fetch_size: int, path,
                       rename: dict[str, str] | None = None, casts: dict[str, str] | None = None,
                       on_page: Callable[[int], None] | None = None, pause_gc: bool = True) -> int:
    """Stream a query's pages into one Parquet file at ``path``, one row group per page.

    Memory holds one page (``fetch_size`` rows) at a time, whatever the row count. The file is
    only created once the first row arrives, and removed again if anything fails, so a crash
    leaves no partial file behind (and a killed process leaves at most a file no manifest lists).

    :param path: a ``pathlib.Path`` or ``ObjectStoragePath``.
    :param on_page: called with the running row count after each page.
    :param pause_gc: pause the cyclic garbage collector meanwhile (see :func:`paused_gc`).
    :return: rows written (0: no file was written).
    """
    with paused_gc(pause_gc):
        return _extract(hook, query, parameters, fetch_size, path, rename, casts, on_page)


def _extract(hook, query, parameters, fetch_size, path, rename, casts, on_page) -> int:
    import pyarrow.parquet as pq

    from mlops.ingest.cql_arrow import rows_to_table

    rows_total, writer, handle = 0, None, None
    try:
        for columns, types, rows in hook.iter_pages(query, parameters, fetch_size):
            table = rows_to_table(columns, types, rows, rename=rename, casts=casts)
            if writer is None:
                handle = path.open("wb")
                writer = pq.ParquetWriter(handle, table.schema, compression="zstd")
            elif not table.schema.equals(writer.schema):
                table = table.cast(writer.schema)
            writer.write_table(table, row_group_size=max(len(rows), 1))
            rows_total += len(rows)
            if on_page is not None:
                on_page(rows_total)
    except BaseException:
        if writer is not None:
            writer.close()
        if handle is not None:
            handle.close()
            path.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
        handle.close()
    return rows_total


class KeyspacesToS3Operator(BaseOperator):
    """Copy one token range of a use case's Keyspaces table into a Parquet file of a date partition.

    The token range is this segment's share of the ring of the cluster's partitioner, read from
    ``system.local`` (:meth:`~mlops.hooks.keyspaces.KeyspacesHook.token_ring`): Murmur3, Random,
    or Amazon Keyspaces' ``DefaultPartitioner`` (Random's tokens); any other fails the task
    naming it, where splitting an assumed ring would skip rows silently.
    The table, partition key, column names and casts come from the ``source.keyspaces`` section
    of ``include/pipelines/<use_case>.yaml``: only the mapped columns are selected and they are
    renamed to the schema's names, so the partition looks the same whichever ingest wrote it.
    Each driver page becomes one Parquet row group, so memory stays bounded by ``fetch_size``.
    The file stays invisible until :func:`mlops.core.partitions.commit_segments` writes the manifest
    (the DAG's commit task, after every range finished). Every try writes a file of its own name,
    so a retry or a second run for the same date never touches a file a manifest lists.

    :param use_case: pipeline name; the partition is ``raw/<use_case>/ds=<ds>``.
    :param segment: index of this task's token range (0-based, templated).
    :param segments: number of token ranges the ring is split into (templated).
    :param ds: date of the partition, ``YYYY-MM-DD`` (templated); default the run's logical date,
        or its ``run_after`` date when it has none.
    :param fetch_size: rows per driver page (templated).
    :param keyspaces_conn_id: Airflow connection to Keyspaces or Cassandra.
    :param consistency: ``LOCAL_QUORUM`` (default) or ``LOCAL_ONE`` (templated).
    :param request_timeout: seconds per page request.
    :param max_attempts: attempts per page before throttling or timeouts fail the task.
    :return: ``[{"file", "rows"}]`` for the manifest (empty when the range holds no rows).
    """

    template_fields: Sequence[str] = ("ds", "segment", "segments", "fetch_size", "consistency")

    def __init__(self, *, use_case: str, segment: int | str, segments: int | str, ds: str | None = None,
                 fetch_size: int | str = 5000, keyspaces_conn_id: str = KeyspacesHook.default_conn_name,
                 consistency: str = "LOCAL_QUORUM", request_timeout: float = 30.0, max_attempts: int = 8,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.segment = segment
        self.segments = segments
        self.ds = ds
        self.fetch_size = fetch_size
        self.keyspaces_conn_id = keyspaces_conn_id
        self.consistency = consistency
        self.request_timeout = request_timeout
        self.max_attempts = max_attempts

    def execute(self, context) -> list[dict[str, Any]]:
        from mlops.core import partitions
        from mlops.core.config import load_pipeline
        from mlops.core.runs import run_date

        source = load_pipeline(self.use_case).source["keyspaces"]
        segment, segments = int(self.segment), int(self.segments)
        token_ranges(segments)  # validates segments
        if not 0 <= segment < segments:
            raise ValueError(f"segment {segment} is not in 0..{segments - 1}")
        rename = source.get("columns")
        query = select_range_query(source["keyspace"], source["table"], source["partition_key"],
                                   list(rename) if rename else None)
        hook = KeyspacesHook(self.keyspaces_conn_id, consistency=self.consistency,
                             request_timeout=float(self.request_timeout), backoff=Backoff(max_attempts=self.max_attempts))
        directory = partitions.partition_path(self.use_case, self.ds or run_date(context))
        name = partitions.new_part_name(f"s{segment:04d}-t{context['ti'].try_number}-{uuid.uuid4().hex[:8]}")
        try:
            ring = hook.token_ring()  # the ring the cluster really has, not an assumed Murmur3 one
            start, end = ring.ranges(segments)[segment]
            self.log.info("segment %d/%d: tokens (%d, %d] of %s.%s (%s) -> %s", segment + 1, segments, start, end,
                          source["keyspace"], source["table"], ring.partitioner, directory / name)
            directory.mkdir(parents=True, exist_ok=True)
            rows = extract_to_parquet(
                hook, query, (start, end), int(self.fetch_size), directory / name, rename=rename,
                casts=source.get("casts"),
                on_page=lambda total: self.log.info("segment %d/%d: %d rows so far", segment + 1, segments, total),
            )
        finally:
            hook.close()
        self.log.info("segment %d/%d done: %d rows", segment + 1, segments, rows)
        return [{"file": name, "rows": rows}] if rows else []


def require_connection(conn_id: str = KeyspacesHook.default_conn_name) -> None:
    """Fail the task without retries when the Keyspaces connection is not defined, saying how
    to define it (reading a table without it could only fail slowly, once per token range)."""
    if KeyspacesHook.connection_exists(conn_id):
        return
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(
        f"no Airflow connection {conn_id!r}: keyspaces_ingest reads Amazon Keyspaces (or Cassandra) through "
        f"it. Add it in the UI (Admin > Connections, type generic) or with `airflow connections add {conn_id} "
        "--conn-type generic --conn-host cassandra.<region>.amazonaws.com --conn-port 9142 --conn-extra "
        "'{\"auth\": \"sigv4\", \"aws_conn_id\": \"aws_default\", \"region_name\": \"<region>\"}'`, or as the "
        f"environment variable AIRFLOW_CONN_{conn_id.upper()}; see the README's 'Pointing it at AWS'"
    )


def segment_indexes(segments: int) -> list[int]:
    """Indexes for ``.expand(segment=...)``; validates ``segments``."""
    token_ranges(segments)
    return list(range(segments))


class S3ToKeyspacesOperator(BaseOperator):
    """Upsert the rows of a Parquet file in the object store into a Keyspaces table.

    The write path for results (segment sizes, predictions): prepared ``INSERT`` statements at
    ``LOCAL_QUORUM``, ``concurrency`` in flight, throttled rows retried with backoff. Every row
    carries ``run_id`` (the Airflow run by default), which leads the tables' primary keys in
    ``sql/keyspaces/``: a re-run of the same run overwrites its own rows and never duplicates
    them. Rows that still fail are counted by error; more than ``max_failed_rows`` failures fail
    the task with the counts and samples (:class:`~mlops.hooks.keyspaces.KeyspacesWriteError`).

    :param source_uri: Parquet file to read (templated), read in batches of ``chunk_size`` rows.
    :param keyspace: target keyspace.
    :param table: target table.
    :param columns: source column -> CQL column; default: every source column under its own name.
    :param run_id: value of the ``run_id`` column (templated); ``None`` keeps the source's.
    :param key_columns: columns that identify a row in failure samples.
    :param write: ``auto`` (write when the connection exists, else skip), ``always`` (a missing
        connection fails the task) or ``never`` (templated).
    :param max_failed_rows: failed rows tolerated before the task fails (default 0).
    :return: the write report (rows, written, failed, retried, errors, samples).
    """

    template_fields: Sequence[str] = ("source_uri", "run_id", "write")

    def __init__(self, *, source_uri: str, keyspace: str, table: str, columns: dict[str, str] | None = None,
                 run_id: str | None = "{{ run_id }}", key_columns: Sequence[str] | None = None,
                 write: str = "auto", keyspaces_conn_id: str = KeyspacesHook.default_conn_name,
                 concurrency: int = 32, chunk_size: int = 2000, max_failed_rows: int = 0,
                 request_timeout: float = 30.0, max_attempts: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_uri = source_uri
        self.keyspace = keyspace
        self.table = table
        self.columns = columns
        self.run_id = run_id
        self.key_columns = key_columns
        self.write = write
        self.keyspaces_conn_id = keyspaces_conn_id
        self.concurrency = concurrency
        self.chunk_size = chunk_size
        self.max_failed_rows = max_failed_rows
        self.request_timeout = request_timeout
        self.max_attempts = max_attempts

    def execute(self, context) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.hooks.keyspaces import KeyspacesWriteError

        mode = str(self.write).lower()
        if mode not in ("auto", "always", "never"):
            raise ValueError(f"write={self.write!r} is not auto, always or never")
        if mode == "never":
            raise AirflowSkipException(f"writing to {self.keyspace}.{self.table} is turned off (write=never)")
        if not KeyspacesHook.connection_exists(self.keyspaces_conn_id):
            message = (f"no Airflow connection {self.keyspaces_conn_id!r}; the results stay in {self.source_uri}. "
                       "Add the connection (Amazon Keyspaces or Cassandra) to write them to "
                       f"{self.keyspace}.{self.table}.")
            if mode == "always":
                raise ValueError(message)
            raise AirflowSkipException(message)
        hook = KeyspacesHook(self.keyspaces_conn_id, request_timeout=float(self.request_timeout),
                             backoff=Backoff(max_attempts=self.max_attempts))
        try:
            report = self.write_file(hook)
        finally:
            hook.close()
        self.log.info("write report: %s", report.to_dict())
        if report.failed > self.max_failed_rows:
            raise KeyspacesWriteError(report)
        return report.to_dict()

    def write_file(self, hook: KeyspacesHook) -> WriteReport:
        import pyarrow.parquet as pq

        from mlops.core.storage import to_path

        with to_path(self.source_uri).open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            source_columns = list(self.columns or parquet.schema_arrow.names)
            targets = [(self.columns or {}).get(c, c) for c in source_columns]
            with_run_id = self.run_id is not None
            if with_run_id and "run_id" in targets:
                index = targets.index("run_id")
                del targets[index], source_columns[index]
            columns = (["run_id"] if with_run_id else []) + targets

            def rows():
                for batch in parquet.iter_batches(batch_size=self.chunk_size, columns=source_columns):
                    values = [_cql_values(batch.column(c)) for c in source_columns]
                    prefix = [[self.run_id] * batch.num_rows] if with_run_id else []
                    yield from zip(*prefix, *values)

            return hook.write_rows(self.keyspace, self.table, columns, rows(), concurrency=self.concurrency,
                                   chunk_size=self.chunk_size, key_columns=self.key_columns)


def _cql_values(array) -> list[Any]:
    """An Arrow column as the Python values the driver binds (maps as dicts)."""
    import pyarrow as pa

    values = array.to_pylist()
    if pa.types.is_map(array.type):
        return [None if v is None else dict(v) for v in values]
    return values
