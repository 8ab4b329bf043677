"""Retail transactions -> RFM features -> named segments + KMeans clusters."""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from mlops.core.assets import raw_data, segments
from mlops.dag_defaults import DEFAULT_ARGS, START_DATE
from mlops.operators.keyspaces import S3ToKeyspacesOperator
from mlops.operators.validation import DataValidationOperator

USE_CASE = "retail"


@dag(
    dag_id="customer_segmentation",
    schedule=[raw_data(USE_CASE)],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["segmentation", "keyspaces"],
    params={
        "partition_uri": Param(None, type=["null", "string"],
                               description="Raw retail partition to segment, e.g. file:///.../raw/retail/ds=2026-01-01. "
                                           "Empty: the one the triggering retail_raw event announced, else the "
                                           "newest dated on or before the run's date."),
        "k_max": Param(None, type=["null", "integer"], minimum=2, maximum=20,
                       description="Largest k tried for KMeans (k is chosen by silhouette). "
                                   "Empty: segmentation.k_max from include/pipelines/retail.yaml."),
        "keyspaces_write": Param("auto", type="string", enum=["auto", "always", "never"],
                                 description="Write the cluster rows to the Keyspaces table ml_clustering_results: "
                                             "auto = when a keyspaces_default connection exists (skipped "
                                             "otherwise), always = fail without one, never = skip."),
    },
    doc_md="""
### customer_segmentation
The retail use case (`include/pipelines/retail.yaml`): validates the newest raw partition of the
Online Retail transactions, computes recency/frequency/monetary per customer (cancelled invoices
and missing customer ids handled), scores them in quintiles and names the classic RFM segments,
clusters the scaled RFM features with KMeans (fixed random_state, k chosen by silhouette over
`k_min..k_max`, reported), and writes a row for **every** cluster to `ml_clustering_results`
(Parquet in the object store, with bar charts and an HTML report). `write_results_to_keyspaces`
then upserts those rows, keyed by the run id, into the Keyspaces table of the same name
(`sql/keyspaces/`) when a `keyspaces_default` connection exists or `keyspaces_write=always`;
without a connection it is skipped, so the local demo needs none.
""",
)
def customer_segmentation():
    @task(multiple_outputs=True)
    def resolve_partition(**context) -> dict:
        from mlops.core.partitions import partition_for_run

        return partition_for_run(USE_CASE, context)

    partition = resolve_partition()
    validation = DataValidationOperator(task_id="validate", use_case=USE_CASE, partition_uri=partition["uri"])

    @task(outlets=[segments(USE_CASE)])
    def segment(partition_uri: str, validation: dict, **context) -> dict:
        from mlops.core.config import load_pipeline
        from mlops.core.naming import path_safe
        from mlops.core.runs import announce, run_date
        from mlops.core.storage import data_path
        from mlops.ml.segmentation_job import run_segmentation

        settings = load_pipeline(USE_CASE).section("segmentation")
        day, run_id = run_date(context), context["run_id"]
        out = data_path("segments", USE_CASE, f"ds={day}", path_safe(run_id))
        result = run_segmentation(partition_uri, str(out), run_id, day, settings["k_min"],
                                  context["params"]["k_max"] or settings["k_max"], settings["seed"])
        announce(context, segments(USE_CASE), {"results_uri": result["results_uri"], "partition_uri": partition_uri})
        return {**result, "validation_id": validation["validation_id"]}

    segmented = segment(partition["uri"], validation.output)
    segmented >> S3ToKeyspacesOperator(
        task_id="write_results_to_keyspaces",
        source_uri="{{ ti.xcom_pull(task_ids='segment')['results_uri'] }}",
        keyspace="mlops",
        table="ml_clustering_results",
        key_columns=["run_id", "segment"],
        write="{{ params.keyspaces_write }}",
    )


customer_segmentation()
