"""Against a real Cassandra: the DDL, the load command, the token-range ingest and the write path.

Runs when ``CASSANDRA_HOST`` is set (``docker compose up -d cassandra`` provides one on
``localhost:9042``; ``CASSANDRA_PORT``, ``CASSANDRA_USER`` and ``CASSANDRA_PASSWORD`` are read too),
and is skipped otherwise. It uses the ``mlops`` keyspace and empties the tables it touches.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pandas as pd
import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("CASSANDRA_HOST"),
    reason="CASSANDRA_HOST is not set (docker compose up -d cassandra provides one)",
)

DS = "2026-01-02"
CONTEXT = {"ti": SimpleNamespace(try_number=1)}


@pytest.fixture(scope="module")
def hook():
    from mlops.hooks.keyspaces import KeyspacesHook
    from tools.keyspaces_load import apply_schema

    connection = {"conn_type": "generic", "host": os.environ["CASSANDRA_HOST"],
                  "port": int(os.environ.get("CASSANDRA_PORT", "9042")), "extra": {"ssl": False}}
    if os.environ.get("CASSANDRA_USER"):
        connection |= {"login": os.environ["CASSANDRA_USER"], "password": os.environ.get("CASSANDRA_PASSWORD", "")}
    previous = os.environ.get("AIRFLOW_CONN_KEYSPACES_DEFAULT")
    os.environ["AIRFLOW_CONN_KEYSPACES_DEFAULT"] = json.dumps(connection)
    hook = KeyspacesHook(request_timeout=60.0)
    apply_schema(hook, keyspaces=False)
    for table in ("customers", "online_retail", "ml_clustering_results"):
        hook.execute(f"TRUNCATE mlops.{table}")
    yield hook
    hook.close()
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_KEYSPACES_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_KEYSPACES_DEFAULT"] = previous


def ingest(use_case: str, segments: int, fetch_size: int) -> dict:
    from mlops.core import partitions
    from mlops.operators.keyspaces import KeyspacesToS3Operator

    parts = []
    for segment in range(segments):
        operator = KeyspacesToS3Operator(task_id=f"s{segment}", use_case=use_case, segment=segment,
                                         segments=segments, ds=DS, fetch_size=fetch_size)
        parts += operator.execute(CONTEXT)
    return partitions.commit_segments(use_case, DS, parts, {"kind": "keyspaces"})


def test_loaded_customers_come_back_through_the_token_range_ingest(hook, mlops_home):
    from mlops.core import partitions
    from tools.keyspaces_load import load_sample, sample_frame

    report = load_sample(hook, "customers", 2000, seed=4, concurrency=32)
    result = ingest("churn", segments=5, fetch_size=150)

    frame = partitions.read_partition(result["partition_uri"]).sort_values("Phone", ignore_index=True)
    expected = sample_frame("customers", 2000, seed=4).sort_values("Phone", ignore_index=True)
    assert (report.written, report.failed) == (2000, 0)
    assert result["rows"] == 2000 and frame["Phone"].is_unique
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)


def test_retail_lines_keep_exact_prices_timestamps_and_missing_ids(hook, mlops_home):
    from mlops.core import partitions
    from tools.keyspaces_load import load_sample, sample_frame

    load_sample(hook, "online_retail", 3000, seed=8)
    result = ingest("retail", segments=3, fetch_size=500)

    frame = partitions.read_partition(result["partition_uri"])
    expected = sample_frame("online_retail", 3000, seed=8)
    assert result["rows"] == 3000
    assert frame["Customer ID"].isna().sum() == expected["Customer ID"].isna().sum()
    assert sorted(frame["Price"].round(2)) == sorted(expected["Price"].round(2))
    assert str(frame["InvoiceDate"].dt.tz) == "UTC"


def test_segment_rows_are_upserted_keyed_by_run_id(hook, mlops_home):
    from datetime import date

    from mlops.core.storage import data_path
    from mlops.operators.keyspaces import S3ToKeyspacesOperator

    path = data_path("segments", "ml_clustering_results.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pd.DataFrame({"run_id": "it__1", "segment": [f"Cluster {i}" for i in range(6)],
                      "total_customers": range(6), "run_date": date(2026, 1, 2)}).to_parquet(handle, index=False)
    operator = S3ToKeyspacesOperator(task_id="write", source_uri=str(path), keyspace="mlops",
                                     table="ml_clustering_results", run_id="it__1", write="always")

    operator.execute(CONTEXT)
    report = operator.execute(CONTEXT)

    rows = list(hook.execute("SELECT segment, total_customers FROM mlops.ml_clustering_results WHERE run_id = %s",
                             ("it__1",)))
    assert report["written"] == 6
    assert sorted((row[0], row[1]) for row in rows) == [(f"Cluster {i}", i) for i in range(6)]
