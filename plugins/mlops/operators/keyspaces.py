"""Amazon Keyspaces -> object store, one Murmur3 token range per mapped task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from mlops.hooks.keyspaces import KeyspacesHook, token_ranges


class KeyspacesToS3Operator(BaseOperator):
    """Copy one token range of a Keyspaces table into Parquet files of a date partition.

    The files stay invisible until :func:`mlops.partitions.commit` writes the manifest (the DAG's
    commit task, after every range finished). Returns ``[{"file", "rows"}]`` for the manifest.

    :param keyspace: keyspace name.
    :param table: table name.
    :param partition_key: partition key column(s), comma-separated, for ``token(...)``.
    :param segment: index of this task's token range (0-based).
    :param segments: number of token ranges the ring is split into.
    :param use_case: pipeline name; the partition is ``raw/<use_case>/ds=<ds>``.
    :param ds: logical date of the partition (templated).
    :param fetch_size: rows per driver page; one page becomes one Parquet row group.
    """

    template_fields: Sequence[str] = ("keyspace", "table", "ds", "segment", "segments", "fetch_size")

    def __init__(self, *, keyspace: str, table: str, partition_key: str, segment: int | str, segments: int | str,
                 use_case: str, ds: str = "{{ ds }}", fetch_size: int | str = 5000,
                 keyspaces_conn_id: str = KeyspacesHook.default_conn_name,
                 consistency: str = "LOCAL_QUORUM", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keyspace = keyspace
        self.table = table
        self.partition_key = partition_key
        self.segment = segment
        self.segments = segments
        self.use_case = use_case
        self.ds = ds
        self.fetch_size = fetch_size
        self.keyspaces_conn_id = keyspaces_conn_id
        self.consistency = consistency

    def execute(self, context) -> list[dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mlops import partitions

        segment, segments = int(self.segment), int(self.segments)
        start, end = token_ranges(segments)[segment]
        query = (
            f'SELECT * FROM "{self.keyspace}"."{self.table}" '
            f"WHERE token({self.partition_key}) > %s AND token({self.partition_key}) <= %s"
        )
        hook = KeyspacesHook(self.keyspaces_conn_id, consistency=self.consistency)
        directory = partitions.partition_path(self.use_case, self.ds)
        directory.mkdir(parents=True, exist_ok=True)
        name = partitions.new_part_name(f"s{segment:04d}-t{context['ti'].try_number}")
        rows_total, writer, handle = 0, None, None
        try:
            for columns, _types, rows in hook.iter_pages(query, (start, end), int(self.fetch_size)):
                batch = pa.Table.from_pylist([dict(zip(columns, row)) for row in rows])
                if writer is None:
                    handle = (directory / name).open("wb")
                    writer = pq.ParquetWriter(handle, batch.schema, compression="zstd")
                writer.write_table(batch.cast(writer.schema))
                rows_total += len(rows)
                self.log.info("segment %d/%d: %d rows so far", segment + 1, segments, rows_total)
        finally:
            if writer is not None:
                writer.close()
            if handle is not None:
                handle.close()
            hook.close()
        self.log.info("segment %d/%d done: %d rows", segment + 1, segments, rows_total)
        return [{"file": name, "rows": rows_total}] if rows_total else []


def segment_indexes(segments: int) -> list[int]:
    """Indexes for ``.expand(segment=...)``; validates ``segments``."""
    token_ranges(segments)
    return list(range(segments))
