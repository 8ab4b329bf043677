"""The CQL DDL in sql/keyspaces/ and the load command (python -m tools.keyspaces_load)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mlops.core.config import load_pipeline
from mlops.hooks.keyspaces import KeyspacesHook
from mlops.ingest.cql_arrow import cql_to_arrow
from testkit.fake_cassandra import FakeSession
from tools import keyspaces_load
from tools.keyspaces_load import (
    TableDDL,
    apply_schema,
    cql_rows,
    parse_create_table,
    schema_statements,
    table_ddl,
)

PLAIN_CASSANDRA = json.dumps({"conn_type": "generic", "host": "cassandra", "extra": {"ssl": False}})


@pytest.fixture
def session(monkeypatch):
    fake = FakeSession()
    monkeypatch.setattr(KeyspacesHook, "get_session", lambda self: fake)
    monkeypatch.setattr(KeyspacesHook, "close", lambda self: None)
    monkeypatch.setenv("AIRFLOW_CONN_KEYSPACES_DEFAULT", PLAIN_CASSANDRA)
    return fake


# --- the DDL ------------------------------------------------------------------------------------

def test_the_seed_tables_are_defined_with_their_keys():
    assert table_ddl("ml_clustering_results") == TableDDL(
        "mlops", "ml_clustering_results",
        {"run_id": "text", "segment": "text", "total_customers": "int", "run_date": "date"},
        ("run_id",), ("segment",),
    )
    assert table_ddl("online_retail").primary_key == ("invoice", "line")
    assert table_ddl("customers").primary_key == ("phone",)
    assert table_ddl("predictions").primary_key == ("run_id", "record_id")


@pytest.mark.parametrize("table", ["ml_clustering_results", "predictions"])
def test_result_tables_are_keyed_by_run_id_first_so_a_rerun_upserts_its_own_rows(table):
    assert table_ddl(table).partition_key == ("run_id",)


@pytest.mark.parametrize("use_case", ["churn", "retail"])
def test_every_column_the_ingest_reads_exists_in_the_ddl_with_a_mappable_type(use_case):
    source = load_pipeline(use_case).source["keyspaces"]
    ddl = table_ddl(source["table"])

    assert ddl.keyspace == source["keyspace"]
    assert ddl.partition_key == (source["partition_key"],)
    assert set(source["columns"]) <= set(ddl.columns)
    for column in source["columns"]:
        cql_to_arrow(ddl.columns[column])


def test_the_churn_table_holds_the_seeds_21_columns():
    assert len(table_ddl("customers").columns) == 21


def test_parse_create_table_reads_inline_and_compound_keys_and_collections():
    ddl = parse_create_table('CREATE TABLE IF NOT EXISTS ks."Events" (id uuid PRIMARY KEY, tags set<text>, '
                             "attrs map<text, frozen<list<int>>>, at timestamp) WITH default_time_to_live = 0")

    assert ddl.name == "Events" and ddl.partition_key == ("id",)
    assert ddl.columns == {"id": "uuid", "tags": "set<text>", "attrs": "map<text, frozen<list<int>>>",
                           "at": "timestamp"}


def test_schema_statements_for_plain_cassandra_use_one_simple_replica():
    keyspaces = schema_statements(keyspaces=True)
    cassandra = schema_statements(keyspaces=False)

    assert "SingleRegionStrategy" in keyspaces[0]
    assert "'SimpleStrategy', 'replication_factor': 1" in cassandra[0]
    assert keyspaces[1:] == cassandra[1:]
    assert sum(s.upper().startswith("CREATE TABLE") for s in cassandra) == 4


def test_apply_schema_creates_every_table(session):
    tables = apply_schema(KeyspacesHook())

    assert tables == ["mlops.customers", "mlops.ml_clustering_results", "mlops.online_retail", "mlops.predictions"]
    assert set(session.tables) == set(tables)
    assert session.keyspaces == {"mlops"}
    assert "SimpleStrategy" in session.requests[0]["query"]  # the connection is a plain Cassandra


# --- sample rows --------------------------------------------------------------------------------

def test_retail_rows_get_a_line_number_per_invoice_and_exact_decimal_prices():
    frame = keyspaces_load.sample_frame("online_retail", 200, seed=1)

    columns, rows = cql_rows("online_retail", frame)
    rows = list(rows)

    assert columns == ["invoice", "line", "stockcode", "description", "quantity", "invoicedate", "price",
                       "customer_id", "country"]
    keys = [(row[0], row[1]) for row in rows]
    assert len(set(keys)) == len(rows) == 200
    assert all(isinstance(row[6], Decimal) for row in rows)
    assert any(row[7] is None for row in rows)  # guests keep a missing customer id


def test_load_writes_the_rows_with_concurrent_prepared_inserts(session, capsys):
    apply_schema(KeyspacesHook())

    code = keyspaces_load.main(["--table", "customers", "--rows", "750", "--seed", "3", "--concurrency", "8"])

    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert (report["rows"], report["written"], report["failed"]) == (750, 750, 0)
    assert len(session.tables["mlops.customers"]) == 750
    assert sum(r["kind"] == "write" for r in session.requests) == 750


def test_loading_the_same_rows_again_upserts_them(session):
    apply_schema(KeyspacesHook())

    for _ in range(2):
        keyspaces_load.load_sample(KeyspacesHook(), "online_retail", 300, seed=5)

    assert len(session.tables["mlops.online_retail"]) == 300


def test_load_with_create_schema_then_exits_nonzero_when_rows_fail(session, capsys):
    session.fail_rows(lambda row: row["line"] == 0)

    code = keyspaces_load.main(["--table", "online_retail", "--rows", "100", "--create-schema"])

    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1
    assert report["failed"] > 0 and report["written"] + report["failed"] == 100
    assert report["errors"] == {"InvalidRequest": report["failed"]}


def test_loaded_rows_read_back_through_the_ingest_as_the_generated_frame(session, mlops_home):
    from types import SimpleNamespace

    import pandas as pd

    from mlops.core import partitions
    from mlops.operators.keyspaces import KeyspacesToS3Operator

    apply_schema(KeyspacesHook())
    keyspaces_load.load_sample(KeyspacesHook(), "customers", 400, seed=9)
    parts = []
    for segment in range(3):
        parts += KeyspacesToS3Operator(task_id=f"s{segment}", use_case="churn", segment=segment, segments=3,
                                       ds="2026-01-02").execute({"ti": SimpleNamespace(try_number=1)})
    result = partitions.commit_segments("churn", "2026-01-02", parts, {})

    frame = partitions.read_partition(result["partition_uri"]).sort_values("Phone", ignore_index=True)
    expected = keyspaces_load.sample_frame("customers", 400, seed=9).sort_values("Phone", ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
