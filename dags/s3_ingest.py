"""Landing prefix -> raw partition, for every use case."""

from __future__ import annotations

from airflow.sdk import Param, dag, task_group

from mlops.core.assets import raw_data
from mlops.dag_defaults import DEFAULT_ARGS, START_DATE, USE_CASES
from mlops.operators.s3 import LandingFilesSensor, LandingToRawOperator


@dag(
    dag_id="s3_ingest",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    # A waiting scheduled run must not hold back a run someone triggered: runs overlap, and the
    # publishing tasks take turns (max_active_tis_per_dag=1), so no file is published twice.
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=["ingest", "s3"],
    params={
        "pattern": Param("*.csv", type="string", minLength=1,
                         description="Glob of the landed files to pick up, on their path below landing/<use case>/."),
        "wait_for_files": Param(False, type="boolean",
                                description="Triggered runs look once and skip a use case with no files. "
                                            "On: wait for files (up to 50 minutes) like the scheduled runs."),
    },
    doc_md="""
### s3_ingest
Waits for CSV files under `landing/<use case>/` in the object store (`s3://` on AWS, a local
folder otherwise). The wait is **deferrable**: after one look the sensor hands over to the
triggerer (the amazon provider's `S3KeyTrigger` on S3, a file-listing trigger locally), so no
worker slot is held. It then checks each file against `include/pipelines/<use case>.yaml`
(columns, numeric and date columns), publishes every file landed for the date as the raw
partition `raw/<use case>/ds=<date>/` (Parquet + manifest, atomic), and only then moves the
originals to `processed/<use case>/ds=<date>/`. The date is the run's logical date, or the day
it was triggered for a run without one. A failure at any point loses nothing: before the
commit nothing is moved, and a re-run after a crash during the moves publishes nothing twice
(files are known by their sha256) and finishes the moves. A bad file fails the task naming the
file and the problem and is left in place.

Scheduled runs wait up to 50 minutes for files and skip a use case without any. A run you
trigger (UI, REST) looks once and skips a use case with nothing landed, unless `wait_for_files`
is on. Runs may overlap (a triggered run never waits behind a scheduled one), and their publish
tasks take turns: files another run already published are skipped, never published twice.
Emits the `<use case>_raw` asset with the partition's URI, content digest, date and row count in
the event's extra: it triggers training or segmentation on exactly that partition.
""",
)
def s3_ingest():
    for use_case in USE_CASES:

        @task_group(group_id=use_case)
        def ingest(use_case: str = use_case):
            landed = LandingFilesSensor(
                task_id="wait_for_files",
                prefix=f"landing/{use_case}",
                pattern="{{ params.pattern }}",
                wait_on_manual="{{ params.wait_for_files }}",
                deferrable=True,
                poke_interval=30,
                timeout=50 * 60,
                soft_fail=True,
            )
            LandingToRawOperator(
                task_id="publish_raw_partition",
                use_case=use_case,
                files=landed.output,
                prefix=f"landing/{use_case}",
                outlets=[raw_data(use_case)],
                max_active_tis_per_dag=1,
            )

        ingest()


s3_ingest()
