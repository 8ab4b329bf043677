"""Amazon Keyspaces tables -> raw partitions, one token range per mapped task."""

from __future__ import annotations

from airflow.sdk import Param, dag, task, task_group

from mlops.assets import raw_data
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
    },
    doc_md="""
### keyspaces_ingest
Reads each use case's Keyspaces table (`source.keyspaces` in `include/pipelines/*.yaml`,
DDL in `sql/keyspaces/`) through the `keyspaces_default` connection
(TLS + SigV4 on AWS, plain CQL for a local Cassandra), splitting the Murmur3 token ring into
`segments` ranges that run as mapped tasks, and streams pages into Parquet files of the raw
partition for the logical date. The commit task publishes the partition's manifest only after
every range finished; a re-run replaces the partition and never duplicates rows. Emits the
`<use case>_raw` asset.
""",
)
def keyspaces_ingest():
    @task
    def segment_list(params=None) -> list[int]:
        from mlops.operators.keyspaces import segment_indexes

        return segment_indexes(int(params["segments"]))

    segments = segment_list()

    for use_case in USE_CASES:

        @task_group(group_id=use_case)
        def ingest(use_case=use_case):
            parts = KeyspacesToS3Operator.partial(
                task_id="copy_token_range",
                segments="{{ params.segments }}",
                fetch_size="{{ params.fetch_size }}",
                use_case=use_case,
            ).expand(segment=segments)

            @task(outlets=[raw_data(use_case)])
            def commit_partition(parts: list[list[dict]], ds=None) -> dict:
                from mlops.partitions import commit_segments

                return commit_segments(use_case, ds, [p for group in parts for p in group],
                                       source={"kind": "keyspaces", "use_case": use_case})

            commit_partition(parts.output)

        ingest()


keyspaces_ingest()
