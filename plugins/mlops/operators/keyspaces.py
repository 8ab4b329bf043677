"""Amazon Keyspaces -> object store, one Murmur3 token range per mapped task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from mlops.hooks.keyspaces import KeyspacesHook, token_ranges


class KeyspacesToS3Operator(BaseOperator):
    """Copy one token range of a use case's Keyspaces table into Parquet files of a date partition.

    The table, partition key, column names and casts come from the ``source.keyspaces`` section
    of ``include/pipelines/<use_case>.yaml``: columns are renamed to the schema's names (columns
    the mapping does not name are dropped), so the partition looks the same whichever ingest
    wrote it. Each driver page becomes one Parquet row group, so memory stays bounded by
    ``fetch_size``. The files stay invisible until :func:`mlops.partitions.commit_segments`
    writes the manifest (the DAG's commit task, after every range finished).

    :param use_case: pipeline name; the partition is ``raw/<use_case>/ds=<ds>``.
    :param segment: index of this task's token range (0-based, templated).
    :param segments: number of token ranges the ring is split into (templated).
    :param ds: logical date of the partition (templated).
    :param fetch_size: rows per driver page (templated).
    :param keyspaces_conn_id: Airflow connection to Keyspaces or Cassandra.
    :param consistency: ``LOCAL_QUORUM`` (default) or ``LOCAL_ONE``.
    :return: ``[{"file", "rows"}]`` for the manifest (empty when the range holds no rows).
    """

    template_fields: Sequence[str] = ("ds", "segment", "segments", "fetch_size")

    def __init__(self, *, use_case: str, segment: int | str, segments: int | str, ds: str = "{{ ds }}",
                 fetch_size: int | str = 5000, keyspaces_conn_id: str = KeyspacesHook.default_conn_name,
                 consistency: str = "LOCAL_QUORUM", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.segment = segment
        self.segments = segments
        self.ds = ds
        self.fetch_size = fetch_size
        self.keyspaces_conn_id = keyspaces_conn_id
        self.consistency = consistency

    def execute(self, context) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        from mlops import partitions
        from mlops.config import load_pipeline
        from mlops.hooks.keyspaces import rows_to_table

        source = load_pipeline(self.use_case).source["keyspaces"]
        segment, segments = int(self.segment), int(self.segments)
        start, end = token_ranges(segments)[segment]
        key = source["partition_key"]
        query = (f'SELECT * FROM "{source["keyspace"]}"."{source["table"]}" '
                 f"WHERE token({key}) > %s AND token({key}) <= %s")
        hook = KeyspacesHook(self.keyspaces_conn_id, consistency=self.consistency)
        directory = partitions.partition_path(self.use_case, self.ds)
        directory.mkdir(parents=True, exist_ok=True)
        name = partitions.new_part_name(f"s{segment:04d}-t{context['ti'].try_number}")
        rows_total, writer, handle = 0, None, None
        try:
            for columns, types, rows in hook.iter_pages(query, (start, end), int(self.fetch_size)):
                table = rows_to_table(columns, types, rows, rename=source.get("columns"),
                                      casts=source.get("casts"))
                if writer is None:
                    handle = (directory / name).open("wb")
                    writer = pq.ParquetWriter(handle, table.schema, compression="zstd")
                writer.write_table(table.cast(writer.schema))
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
