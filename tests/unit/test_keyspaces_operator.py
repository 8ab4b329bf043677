"""KeyspacesToS3Operator: token-range segments of a Keyspaces table land as one committed partition,
atomically (nothing visible before the commit, nothing left half-written by a crash) and
idempotently (a re-run for the date replaces the partition with identical content)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops.core import partitions
from mlops.core.config import load_pipeline
from mlops.core.entrypoints import generators_module
from mlops.hooks.keyspaces import (
    Backoff,
    KeyspacesHook,
    KeyspacesRetriesExhausted,
    UnsupportedPartitioner,
    token_ranges,
    token_ring,
)
from mlops.operators.keyspaces import KeyspacesToS3Operator, segment_indexes
from testkit.fake_cassandra import KEYSPACES_DEFAULT, RANDOM, FakeSession, tables_from_sample_data

DS = "2026-01-02"
SEGMENTS = 4


@pytest.fixture(scope="module")
def samples():
    generators = generators_module()
    return generators.churn(500), generators.retail(300)


@pytest.fixture(scope="module")
def sample_tables(samples):
    return tables_from_sample_data(*samples)


@pytest.fixture
def session(sample_tables, monkeypatch):
    fake = FakeSession(dict(sample_tables))
    monkeypatch.setattr(KeyspacesHook, "get_session", lambda self: fake)
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # backoff waits are not what is tested here
    return fake


def run_segment(use_case: str, segment: int, try_number: int = 1, fetch_size: int = 200, **kwargs) -> list[dict]:
    operator = KeyspacesToS3Operator(
        task_id=f"ingest_{segment}", use_case=use_case, segment=segment, segments=SEGMENTS, ds=DS,
        fetch_size=fetch_size, **kwargs,
    )
    return operator.execute({"ti": SimpleNamespace(try_number=try_number)})


def ingest(use_case: str, try_number: int = 1) -> tuple[list[list[dict]], dict]:
    """Run every segment's task, then the commit task, as the DAG does."""
    outputs = [run_segment(use_case, segment, try_number) for segment in range(SEGMENTS)]
    parts = [part for output in outputs for part in output]
    result = partitions.commit_segments(use_case, DS, parts, {"kind": "keyspaces", "segments": SEGMENTS})
    return outputs, result


def sorted_rows(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by, kind="stable").reset_index(drop=True)


def test_churn_partition_holds_exactly_the_source_rows(mlops_home, session, samples):
    churn, _ = samples
    _, result = ingest("churn")

    frame = partitions.read_partition(result["partition_uri"])

    assert result["rows"] == len(churn) == len(frame)
    assert frame["Phone"].is_unique
    pd.testing.assert_frame_equal(
        sorted_rows(frame, ["Phone"]), sorted_rows(churn, ["Phone"]), check_dtype=False,
    )


def test_churn_segments_split_the_rows_without_overlap(mlops_home, session, samples):
    churn, _ = samples
    outputs, result = ingest("churn")

    counts = [sum(part["rows"] for part in output) for output in outputs]

    assert sum(counts) == len(churn)
    assert all(count > 0 for count in counts)
    assert result["files"] == SEGMENTS


def test_churn_columns_are_the_pipeline_schema_names(mlops_home, session):
    _, result = ingest("churn")

    frame = partitions.read_partition(result["partition_uri"])

    assert list(frame.columns) == load_pipeline("churn").schema["columns"]


def test_churn_columns_have_the_cql_types(mlops_home, session):
    _, result = ingest("churn")

    frame = partitions.read_partition(result["partition_uri"])
    manifest = partitions.read_manifest(result["partition_uri"])

    assert frame["Day Mins"].dtype == "float64"
    assert frame["Account Length"].dtype == "int32"
    assert pd.api.types.is_string_dtype(frame["Phone"])
    assert manifest["schema"]["Day Mins"] == "double"
    assert manifest["schema"]["Churn?"] == "string"


def test_rerun_with_a_new_try_gives_identical_content(mlops_home, session):
    _, first = ingest("churn", try_number=1)
    before = sorted_rows(partitions.read_partition(first["partition_uri"]), ["Phone"])

    _, second = ingest("churn", try_number=2)
    after = sorted_rows(partitions.read_partition(second["partition_uri"]), ["Phone"])

    assert second["partition_uri"] == first["partition_uri"]
    pd.testing.assert_frame_equal(after, before)


def test_rerun_leaves_no_files_of_the_first_try(mlops_home, session):
    ingest("churn", try_number=1)
    outputs, result = ingest("churn", try_number=2)

    directory = partitions.partition_path("churn", DS)
    files = {p.name for p in directory.iterdir()}

    assert files == {part["file"] for output in outputs for part in output} | {partitions.MANIFEST}
    assert all("-t2-" in name for name in files - {partitions.MANIFEST})


def test_segment_files_are_invisible_before_the_commit(mlops_home, session):
    parts = run_segment("churn", 0)

    assert parts and parts[0]["rows"] > 0
    with pytest.raises(partitions.PartitionNotFound):
        partitions.read_partition(partitions.partition_path("churn", DS))


def test_operator_reads_its_own_token_range(mlops_home, session):
    run_segment("churn", 2)

    assert [(call[1], call[2]) for call in session.calls] == [token_ranges(SEGMENTS)[2]]


@pytest.mark.parametrize("partitioner", [RANDOM, KEYSPACES_DEFAULT])
def test_a_ring_with_random_tokens_is_split_as_it_is_and_every_row_arrives(mlops_home, samples, monkeypatch,
                                                                          partitioner):
    churn, retail = samples
    fake = FakeSession(tables_from_sample_data(churn, retail, partitioner), partitioner=partitioner)
    monkeypatch.setattr(KeyspacesHook, "get_session", lambda self: fake)

    outputs, result = ingest("churn")

    frame = partitions.read_partition(result["partition_uri"])
    assert result["rows"] == len(churn) == len(frame)
    assert sorted(frame["Phone"]) == sorted(churn["Phone"])
    assert [(call[1], call[2]) for call in fake.calls] == token_ring(partitioner).ranges(SEGMENTS)
    assert all(sum(part["rows"] for part in output) > 0 for output in outputs)  # the rows spread over the ring


def test_a_partitioner_it_cannot_split_fails_the_segment_before_any_table_read(mlops_home, samples, monkeypatch):
    fake = FakeSession(tables_from_sample_data(*samples), partitioner="org.apache.cassandra.dht.ByteOrderedPartitioner")
    monkeypatch.setattr(KeyspacesHook, "get_session", lambda self: fake)

    with pytest.raises(UnsupportedPartitioner, match="ByteOrderedPartitioner"):
        run_segment("churn", 0)

    assert fake.calls == [] and part_files("churn") == set()


def test_a_segment_of_many_driver_pages_writes_one_file_with_a_row_group_per_page(mlops_home, session):
    (part,) = run_segment("retail", 1, fetch_size=16)

    with (partitions.partition_path("retail", DS) / part["file"]).open("rb") as handle:
        parquet = pq.ParquetFile(handle)
        row_groups, rows = parquet.num_row_groups, parquet.metadata.num_rows

    assert rows == part["rows"] > 16
    assert row_groups == math.ceil(part["rows"] / 16)


def test_retail_partition_holds_exactly_the_source_rows(mlops_home, session, samples):
    _, retail = samples
    _, result = ingest("retail")

    frame = partitions.read_partition(result["partition_uri"])
    columns = load_pipeline("retail").schema["columns"]
    expected = retail[columns].assign(InvoiceDate=retail["InvoiceDate"].dt.tz_localize("UTC"))

    assert list(frame.columns) == columns
    assert result["rows"] == len(retail)
    pd.testing.assert_frame_equal(
        sorted_rows(frame, columns), sorted_rows(expected, columns), check_dtype=False,
    )


def test_retail_price_is_cast_to_float(mlops_home, session):
    _, result = ingest("retail")

    frame = partitions.read_partition(result["partition_uri"])

    assert frame["Price"].dtype == "float64"
    assert partitions.read_manifest(result["partition_uri"])["schema"]["Price"] == "double"


def test_retail_invoice_date_is_a_utc_timestamp(mlops_home, session):
    _, result = ingest("retail")

    frame = partitions.read_partition(result["partition_uri"])

    assert isinstance(frame["InvoiceDate"].dtype, pd.DatetimeTZDtype)
    assert str(frame["InvoiceDate"].dt.tz) == "UTC"


def test_retail_missing_customer_ids_stay_missing(mlops_home, session, samples):
    _, retail = samples
    _, result = ingest("retail")

    frame = partitions.read_partition(result["partition_uri"])

    assert frame["Customer ID"].isna().sum() == retail["Customer ID"].isna().sum() > 0


def test_segment_indexes_lists_one_index_per_range():
    assert segment_indexes(4) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        segment_indexes(0)


def part_files(use_case: str) -> set[str]:
    directory = partitions.partition_path(use_case, DS)
    return {p.name for p in directory.iterdir() if p.name.startswith("part-")} if directory.exists() else set()


def test_the_operator_selects_only_the_mapped_columns_at_the_configured_consistency(mlops_home, session):
    from cassandra import ConsistencyLevel

    run_segment("retail", 0, consistency="LOCAL_ONE")

    (query,) = {r["query"] for r in session.requests if r["kind"] == "read"}
    assert query.startswith('SELECT "invoice", "stockcode", "description", "quantity", "invoicedate", "price", '
                            '"customer_id", "country" FROM "mlops"."online_retail" WHERE token("invoice") > %s')
    assert '"line"' not in query
    assert {r["consistency"] for r in session.requests} == {ConsistencyLevel.LOCAL_ONE}


def test_a_crash_mid_write_leaves_no_visible_partition_and_no_partial_file(mlops_home, session):
    session.crash_after(reads=2)  # the node goes away after two pages of the first segment

    with pytest.raises(Exception, match="Invalid query"):
        run_segment("churn", 0, fetch_size=50)

    assert part_files("churn") == set()
    with pytest.raises(partitions.PartitionNotFound):
        partitions.read_partition(partitions.partition_path("churn", DS))
    with pytest.raises(partitions.PartitionNotFound):
        partitions.latest_partition("churn")


def test_a_crash_during_a_rerun_leaves_the_committed_partition_as_it_was(mlops_home, session, samples):
    churn, _ = samples
    _, committed = ingest("churn", try_number=1)
    before = sorted_rows(partitions.read_partition(committed["partition_uri"]), ["Phone"])
    session.crash_after(reads=3)

    with pytest.raises(Exception, match="Invalid query"):
        ingest("churn", try_number=2)

    after = sorted_rows(partitions.read_partition(committed["partition_uri"]), ["Phone"])
    pd.testing.assert_frame_equal(after, before)
    assert len(after) == len(churn)
    manifest = partitions.read_manifest(committed["partition_uri"])
    assert all("-t1-" in part["file"] for part in manifest["files"])
    assert not any(name.startswith("part-s0003-t2-") for name in part_files("churn"))  # the crashed one


def test_throttling_then_success_gives_the_same_partition_as_a_clean_run(mlops_home, session):
    _, clean = ingest("retail", try_number=1)
    expected = sorted_rows(partitions.read_partition(clean["partition_uri"]), ["Invoice", "StockCode", "Quantity"])
    session.throttle(6, "read_timeout")

    _, throttled = ingest("retail", try_number=2)

    frame = sorted_rows(partitions.read_partition(throttled["partition_uri"]), ["Invoice", "StockCode", "Quantity"])
    pd.testing.assert_frame_equal(frame, expected)
    retried = [r for r in session.requests if r["query"].startswith("SELECT")]
    assert len(retried) > SEGMENTS + 6 - 1


def test_throttling_past_the_retry_budget_fails_the_segment_clearly(mlops_home, session):
    session.throttle(100, "read_timeout")

    with pytest.raises(KeyspacesRetriesExhausted, match="gave up after 3 attempts"):
        run_segment("churn", 1, max_attempts=3)

    assert part_files("churn") == set()


def test_rerun_writes_byte_for_byte_the_same_rows_per_segment(mlops_home, session):
    first, _ = ingest("churn", try_number=1)
    first_tables = {}
    directory = partitions.partition_path("churn", DS)
    for segment, output in enumerate(first):
        with (directory / output[0]["file"]).open("rb") as handle:
            first_tables[segment] = pq.read_table(handle)

    second, _ = ingest("churn", try_number=2)

    for segment, output in enumerate(second):
        with (directory / output[0]["file"]).open("rb") as handle:
            assert pq.read_table(handle).equals(first_tables[segment])


def test_the_commit_refuses_a_part_whose_rows_differ_from_what_its_writer_reported(mlops_home, session):
    parts = [part for segment in range(SEGMENTS) for part in run_segment("churn", segment)]
    parts[0] = {**parts[0], "rows": parts[0]["rows"] + 1}

    with pytest.raises(partitions.PartitionCommitError, match="the file holds"):
        partitions.commit_segments("churn", DS, parts, {"kind": "keyspaces"})

    with pytest.raises(partitions.PartitionNotFound):
        partitions.read_partition(partitions.partition_path("churn", DS))


def test_a_segment_index_outside_the_ring_is_rejected(mlops_home, session):
    with pytest.raises(ValueError, match="segment 4 is not in 0..3"):
        run_segment("churn", 4)


def test_hook_backoff_comes_from_the_operator(mlops_home, session, monkeypatch):
    seen = {}
    original = KeyspacesHook.__init__

    def spy(self, *args, backoff: Backoff | None = None, **kwargs):
        seen["backoff"] = backoff
        original(self, *args, backoff=backoff, **kwargs)

    monkeypatch.setattr(KeyspacesHook, "__init__", spy)
    run_segment("churn", 0, max_attempts=5)

    assert seen["backoff"].max_attempts == 5
