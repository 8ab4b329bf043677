"""S3ToKeyspacesOperator: result rows (segments, predictions) upserted into Keyspaces, keyed by run id."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from mlops.core.storage import data_path
from mlops.hooks.keyspaces import KeyspacesHook, KeyspacesWriteError
from mlops.operators.keyspaces import S3ToKeyspacesOperator
from testkit.fake_cassandra import FakeSession, table_from_ddl

CONNECTION = json.dumps({"conn_type": "generic", "host": "cassandra", "extra": {"ssl": False}})
CONTEXT = {"ti": SimpleNamespace(try_number=1)}


@pytest.fixture
def session(monkeypatch):
    fake = FakeSession({f"mlops.{t}": table_from_ddl(t) for t in ("ml_clustering_results", "predictions")})
    monkeypatch.setattr(KeyspacesHook, "get_session", lambda self: fake)
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    return fake


@pytest.fixture
def connected(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KEYSPACES_DEFAULT", CONNECTION)


def results_file(mlops_home, run_id="manual__1", segments=6) -> str:
    frame = pd.DataFrame({
        "run_id": run_id,
        "segment": [f"Cluster {i}: Champions" for i in range(segments)],
        "total_customers": list(range(100, 100 + segments)),
        "run_date": date(2026, 1, 2),
    })
    path = data_path("segments", "retail", "ml_clustering_results.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        frame.to_parquet(handle, index=False)
    return str(path)


def operator(source_uri, **kwargs) -> S3ToKeyspacesOperator:
    kwargs.setdefault("run_id", "manual__1")
    return S3ToKeyspacesOperator(task_id="write", source_uri=source_uri, keyspace="mlops",
                                 table="ml_clustering_results", key_columns=["run_id", "segment"], **kwargs)


def test_every_result_row_is_written_keyed_by_the_run_id(mlops_home, session, connected):
    report = operator(results_file(mlops_home, segments=6)).execute(CONTEXT)

    stored = session.tables["mlops.ml_clustering_results"].rows
    assert (report["rows"], report["written"], report["failed"]) == (6, 6, 0)
    assert sorted(row[1] for row in stored) == [f"Cluster {i}: Champions" for i in range(6)]
    assert {row[0] for row in stored} == {"manual__1"}
    assert {row[3].date() for row in stored} == {date(2026, 1, 2)}


def test_rerunning_the_same_run_overwrites_its_rows_and_never_duplicates(mlops_home, session, connected):
    uri = results_file(mlops_home)

    operator(uri).execute(CONTEXT)
    operator(uri).execute(CONTEXT)
    operator(uri, run_id="scheduled__2").execute(CONTEXT)

    assert len(session.tables["mlops.ml_clustering_results"]) == 12


def test_the_run_id_of_the_task_wins_over_the_files(mlops_home, session, connected):
    operator(results_file(mlops_home, run_id="stale"), run_id="manual__9").execute(CONTEXT)

    assert {row[0] for row in session.tables["mlops.ml_clustering_results"].rows} == {"manual__9"}


def test_failed_rows_fail_the_task_with_counts_and_samples(mlops_home, session, connected):
    session.fail_rows(lambda row: row["segment"].startswith("Cluster 3"))

    with pytest.raises(KeyspacesWriteError) as raised:
        operator(results_file(mlops_home)).execute(CONTEXT)

    assert raised.value.report.failed == 1 and raised.value.report.written == 5
    assert "1 of 6 rows failed" in str(raised.value) and "InvalidRequest: 1" in str(raised.value)
    assert "Cluster 3" in str(raised.value)


def test_a_tolerated_number_of_failures_is_reported_not_raised(mlops_home, session, connected):
    session.fail_rows(lambda row: row["segment"].startswith("Cluster 3"))

    report = operator(results_file(mlops_home), max_failed_rows=1).execute(CONTEXT)

    assert report["failed"] == 1 and report["errors"] == {"InvalidRequest": 1}


def test_without_a_connection_auto_skips_and_writes_nothing(mlops_home, session, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_KEYSPACES_DEFAULT", raising=False)

    with pytest.raises(AirflowSkipException, match="no Airflow connection 'keyspaces_default'"):
        operator(results_file(mlops_home)).execute(CONTEXT)

    assert session.requests == []


def test_without_a_connection_always_fails(mlops_home, session, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_KEYSPACES_DEFAULT", raising=False)

    with pytest.raises(ValueError, match="no Airflow connection"):
        operator(results_file(mlops_home), write="always").execute(CONTEXT)


def test_never_skips_even_with_a_connection(mlops_home, session, connected):
    with pytest.raises(AirflowSkipException, match="write=never"):
        operator(results_file(mlops_home), write="never").execute(CONTEXT)

    assert session.requests == []


def test_predictions_are_written_through_a_column_mapping(mlops_home, session, connected):
    frame = pd.DataFrame({"Phone": ["382-4657", "371-7191"], "predicted_label": ["True.", "False."],
                          "probability": [0.91, 0.12], "model_name": "churn-v3",
                          "predicted_at": pd.Timestamp("2026-01-02 03:04:05", tz="UTC")})
    path = data_path("predictions", "churn", "predictions.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        frame.to_parquet(handle, index=False)

    report = S3ToKeyspacesOperator(
        task_id="write", source_uri=str(path), keyspace="mlops", table="predictions", run_id="batch__1",
        columns={"Phone": "record_id", "predicted_label": "predicted_label", "probability": "probability",
                 "model_name": "model_name", "predicted_at": "predicted_at"},
    ).execute(CONTEXT)

    rows = {row[1]: row for row in session.tables["mlops.predictions"].rows}
    assert report["written"] == 2
    assert rows["382-4657"][:5] == ("batch__1", "382-4657", "True.", 0.91, "churn-v3")
    assert rows["382-4657"][5].isoformat() == "2026-01-02T03:04:05"  # UTC, as the driver returns it
