"""Landing prefix -> raw partition, for every use case."""

from __future__ import annotations

from airflow.sdk import Param, dag, task_group

from mlops.assets import raw_data
from mlops.dag_defaults import DEFAULT_ARGS, START_DATE, USE_CASES
from mlops.operators.s3 import LandingFilesSensor, LandingToRawOperator


@dag(
    dag_id="s3_ingest",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ingest", "s3"],
    params={
        "pattern": Param("*.csv", type="string", minLength=1,
                         description="Glob of the landed files to pick up, on their path below landing/<use case>/."),
    },
    doc_md="""
### s3_ingest
Waits for CSV files under `landing/<use case>/` in the object store (`s3://` on AWS, a local
folder otherwise). The wait is **deferrable**: after one look the sensor hands over to the
triggerer (the amazon provider's `S3KeyTrigger` on S3, a file-listing trigger locally), so no
worker slot is held. It then checks each file against `include/pipelines/<use case>.yaml`
(columns, numeric and date columns), publishes every file landed for the date as the raw
partition `raw/<use case>/ds=<date>/` (Parquet + manifest, atomic), and only then moves the
originals to `processed/<use case>/ds=<date>/`. A failure at any point loses nothing: before the
commit nothing is moved, and a re-run after a crash during the moves publishes nothing twice
(files are known by their sha256) and finishes the moves. A bad file fails the task naming the
file and the problem and is left in place. A use case with no files within 50 minutes is
skipped for that run. Emits the `<use case>_raw` asset, which triggers training or segmentation.
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
            )

        ingest()


s3_ingest()
