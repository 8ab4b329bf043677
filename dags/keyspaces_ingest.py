"""Amazon Keyspaces tables -> raw partitions, one token range per mapped task."""

from __future__ import annotations

from airflow.sdk import Param, dag, task, task_group

from mlops.core.assets import raw_data
from mlops.dag_defaults import DEFAULT_ARGS, START_DATE, USE_CASES
from mlops.operators.keyspaces import KeyspacesToS3Operator


@dag(
    dag_id="keyspaces_ingest",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ingest", "keyspaces"],
    params={
        "segments": Param(4, type="integer", minimum=1, maximum=256,
                          description="Token-range segments per table; each runs as one mapped task."),
        "fetch_size": Param(5000, type="integer", minimum=100, maximum=100000,
                            description="Rows per Keyspaces page (one Parquet row group per page)."),
        "read_consistency": Param("LOCAL_QUORUM", type="string", enum=["LOCAL_QUORUM", "LOCAL_ONE"],
                                  description="Consistency of the reads: LOCAL_QUORUM (default) or LOCAL_ONE "
                                              "(half the read capacity on Keyspaces, possibly stale rows)."),
    },
    doc_md="""
### keyspaces_ingest
Reads each use case's Keyspaces table (`source.keyspaces` in `include/pipelines/*.yaml`,
DDL in `sql/keyspaces/`) through the `keyspaces_default` connection
(TLS with certificate verification and SigV4 or service credentials on AWS, plain CQL for a
local Cassandra), splitting the token ring of the cluster's partitioner (read from `system.local`:
Murmur3, Random or Keyspaces' default; any other fails the task naming it) into `segments` ranges that run as mapped
tasks. Each range streams pages of `fetch_size` rows (at `read_consistency`) into Parquet row
groups of the raw partition for the run's date (its logical date, or the day it was triggered),
so memory stays bounded; throttling and
timeouts are retried with exponential backoff and jitter. The commit task checks every file's
row count and publishes the partition's manifest only after every range finished: until then
nothing is visible, and a re-run replaces the partition and never duplicates rows. Emits the
`<use case>_raw` asset announcing the partition (URI, content digest, date, rows). Without a
`keyspaces_default` connection the first task fails at once and says how to add one. Load sample rows into a table with
`python -m tools.keyspaces_load --table customers --rows 5000`.
""",
)
def keyspaces_ingest():
    @task
    def segment_list(params=None) -> list[int]:
        """Fail at once (no retry), naming the connection, when there is nothing to read from."""
        from mlops.operators.keyspaces import require_connection, segment_indexes

        require_connection()
        return segment_indexes(int(params["segments"]))

    segments = segment_list()

    for use_case in USE_CASES:

        @task_group(group_id=use_case)
        def ingest(use_case=use_case):
            parts = KeyspacesToS3Operator.partial(
                task_id="copy_token_range",
                segments="{{ params.segments }}",
                fetch_size="{{ params.fetch_size }}",
                consistency="{{ params.read_consistency }}",
                use_case=use_case,
            ).expand(segment=segments)

            @task(outlets=[raw_data(use_case)])
            def commit_partition(parts: list[list[dict]], **context) -> dict:
                from mlops.core.partitions import commit_segments
                from mlops.core.runs import announce, run_date

                committed = commit_segments(use_case, run_date(context), [p for group in parts for p in group],
                                            source={"kind": "keyspaces", "use_case": use_case})
                announce(context, raw_data(use_case), committed)
                return committed

            commit_partition(parts.output)

        ingest()


keyspaces_ingest()
