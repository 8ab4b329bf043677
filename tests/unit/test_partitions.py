"""Date partitions: invisible until a manifest commits them, replaced (never duplicated) on re-run."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlops.core import partitions
from mlops.core.partitions import PartitionNotFound

SCHEMA = {"id": "int64", "name": "string"}
SOURCE = {"kind": "test"}


def rows(ids: range | list[int]) -> pa.Table:
    ids = list(ids)
    return pa.table({"id": pa.array(ids, pa.int64()), "name": [f"row-{i}" for i in ids]})


def part_files(directory) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.startswith("part-")}


def write_and_commit(use_case: str, ds: str, tables: list[pa.Table], token: str):
    directory = partitions.partition_path(use_case, ds)
    parts = partitions.write_parts(directory, tables, token)
    partitions.commit(directory, parts, SCHEMA, SOURCE)
    return directory, parts


def test_written_partition_is_invisible_until_committed(mlops_home):
    directory = partitions.partition_path("churn", "2026-01-02")
    parts = partitions.write_parts(directory, [rows(range(5))], "w1")

    with pytest.raises(PartitionNotFound, match="never committed"):
        partitions.read_manifest(directory)
    with pytest.raises(PartitionNotFound, match="no committed partition.*run an ingest DAG first"):
        partitions.latest_partition("churn")

    partitions.commit(directory, parts, SCHEMA, SOURCE)

    assert partitions.read_manifest(directory)["rows"] == 5
    assert partitions.latest_partition("churn") == directory


def test_latest_partition_of_an_unknown_use_case_names_the_missing_root(mlops_home):
    with pytest.raises(PartitionNotFound, match=r"raw/nothing"):
        partitions.latest_partition("nothing")


def test_reading_an_uncommitted_partition_raises_partition_not_found(mlops_home):
    directory = partitions.partition_path("churn", "2026-01-02")
    partitions.write_parts(directory, [rows(range(5))], "w1")

    with pytest.raises(PartitionNotFound):
        partitions.read_partition(directory)


def test_files_of_a_crashed_writer_are_not_read(mlops_home):
    directory, _ = write_and_commit("churn", "2026-01-02", [rows(range(10))], "good")
    partitions.write_parts(directory, [rows(range(100, 150))], "crashed")  # never committed

    frame = partitions.read_partition(directory)

    assert frame["id"].tolist() == list(range(10))


def test_a_crashed_write_of_a_newer_date_does_not_become_the_latest_partition(mlops_home):
    committed, _ = write_and_commit("churn", "2026-01-02", [rows(range(3))], "ok")
    crashed = partitions.partition_path("churn", "2026-01-03")
    partitions.write_parts(crashed, [rows(range(3))], "crashed")

    assert partitions.latest_partition("churn") == committed


def test_second_commit_for_the_same_date_replaces_the_content(mlops_home):
    write_and_commit("churn", "2026-01-02", [rows(range(10))], "try1")
    directory, _ = write_and_commit("churn", "2026-01-02", [rows(range(20, 24))], "try2")

    frame = partitions.read_partition(directory)

    assert frame["id"].tolist() == [20, 21, 22, 23]
    assert partitions.read_manifest(directory)["rows"] == 4


def test_rerun_with_the_same_rows_does_not_duplicate_them(mlops_home):
    write_and_commit("churn", "2026-01-02", [rows(range(10))], "try1")
    directory, _ = write_and_commit("churn", "2026-01-02", [rows(range(10))], "try2")

    assert partitions.read_partition(directory)["id"].tolist() == list(range(10))


def test_second_commit_deletes_the_part_files_of_the_first(mlops_home):
    directory, first = write_and_commit("churn", "2026-01-02", [rows(range(5)), rows(range(5, 9))], "try1")
    _, second = write_and_commit("churn", "2026-01-02", [rows(range(3))], "try2")

    assert part_files(directory) == {p["file"] for p in second}
    assert not part_files(directory) & {p["file"] for p in first}


def test_latest_partition_picks_the_newest_committed_date(mlops_home):
    for ds in ("2026-01-02", "2025-12-31", "2026-01-10", "2026-01-09"):
        write_and_commit("churn", ds, [rows(range(2))], ds)

    assert partitions.latest_partition("churn").name == "ds=2026-01-10"


def test_latest_partition_ignores_other_use_cases(mlops_home):
    write_and_commit("churn", "2026-01-02", [rows(range(2))], "c")
    write_and_commit("retail", "2026-02-01", [rows(range(2))], "r")

    assert partitions.latest_partition("churn").name == "ds=2026-01-02"


def test_read_partition_returns_the_listed_files_rows_in_manifest_order(mlops_home):
    directory = partitions.partition_path("churn", "2026-01-02")
    a = partitions.write_parts(directory, [rows(range(0, 3))], "aaaa")
    b = partitions.write_parts(directory, [rows(range(10, 12))], "bbbb")
    partitions.commit(directory, b + a, SCHEMA, SOURCE)

    frame = partitions.read_partition(str(directory))

    assert frame["id"].tolist() == [10, 11, 0, 1, 2]
    assert frame["name"].tolist() == ["row-10", "row-11", "row-0", "row-1", "row-2"]


def test_commit_records_row_count_schema_and_source_in_the_manifest(mlops_home):
    directory, parts = write_and_commit("churn", "2026-01-02", [rows(range(4)), rows(range(4, 7))], "w")

    manifest = partitions.read_manifest(str(directory))

    assert manifest["rows"] == 7
    assert manifest["files"] == parts
    assert manifest["schema"] == SCHEMA
    assert manifest["source"] == SOURCE


def test_commit_segments_publishes_the_parts_of_several_writers(mlops_home):
    directory = partitions.partition_path("churn", "2026-01-02")
    parts = []
    for segment, ids in enumerate([range(0, 4), range(4, 6), range(6, 11)]):
        parts += partitions.write_parts(directory, [rows(ids)], f"s{segment:04d}-t1")

    result = partitions.commit_segments("churn", "2026-01-02", list(reversed(parts)), {"segments": 3})

    assert result == {"partition_uri": str(directory), "rows": 11, "files": 3, "ds": "2026-01-02",
                      "use_case": "churn", "digest": partitions.read_manifest(directory)["digest"]}
    assert sorted(partitions.read_partition(directory)["id"]) == list(range(11))
    manifest = partitions.read_manifest(directory)
    assert manifest["schema"] == {"id": "int64", "name": "string"}
    assert manifest["source"] == {"segments": 3}


def test_commit_segments_orders_files_by_name(mlops_home):
    directory = partitions.partition_path("churn", "2026-01-02")
    late = partitions.write_parts(directory, [rows([2])], "s0002-t1")
    early = partitions.write_parts(directory, [rows([0])], "s0000-t1")

    partitions.commit_segments("churn", "2026-01-02", late + early, {})

    assert [p["file"] for p in partitions.read_manifest(directory)["files"]] == [
        early[0]["file"], late[0]["file"],
    ]


def test_commit_segments_drops_files_of_writers_it_was_not_given(mlops_home):
    directory = partitions.partition_path("churn", "2026-01-02")
    kept = partitions.write_parts(directory, [rows(range(3))], "s0000-t2")
    partitions.write_parts(directory, [rows(range(3))], "s0000-t1")  # an earlier, failed try

    partitions.commit_segments("churn", "2026-01-02", kept, {})

    assert part_files(directory) == {kept[0]["file"]}
    assert partitions.read_partition(directory)["id"].tolist() == [0, 1, 2]


def test_commit_segments_with_no_parts_publishes_an_empty_partition(mlops_home):
    result = partitions.commit_segments("churn", "2026-01-02", [], {})

    assert result["rows"] == 0
    assert partitions.read_partition(result["partition_uri"]).empty


@pytest.mark.parametrize("ds", ["2026-13-01", "2026-02-30", "20260102", "yesterday", ""])
def test_partition_path_rejects_a_bad_date(mlops_home, ds):
    with pytest.raises(ValueError):
        partitions.partition_path("churn", ds)


def test_partition_path_lies_under_the_zone_and_use_case(mlops_home):
    path = partitions.partition_path("churn", "2026-01-02", zone="curated")

    assert str(path).endswith("/data/curated/churn/ds=2026-01-02")


# --- which partition a run works on --------------------------------------------------------------

def run_context(params: dict | None = None, events: dict | None = None, logical_date=None, run_after=None) -> dict:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    return {"params": params or {}, "triggering_asset_events": events or {}, "logical_date": logical_date,
            "dag_run": SimpleNamespace(run_after=run_after or datetime(2026, 1, 5, 12, tzinfo=UTC))}


def announcing(uri: str, digest: str, minutes: int = 0) -> dict:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from mlops.core.assets import raw_data

    event = SimpleNamespace(extra={"partition_uri": uri, "digest": digest},
                            timestamp=datetime(2026, 1, 5, tzinfo=UTC) + timedelta(minutes=minutes))
    return {raw_data("churn"): [event]}


def test_a_run_without_params_or_events_takes_the_newest_partition_dated_by_its_own_date(mlops_home):
    from datetime import UTC, datetime

    for ds in ("2026-01-02", "2026-01-04", "2026-01-09"):
        write_and_commit("churn", ds, [rows(range(3))], f"w-{ds}")

    chosen = partitions.partition_for_run("churn", run_context(run_after=datetime(2026, 1, 5, 12, tzinfo=UTC)))

    assert chosen["ds"] == "2026-01-04" and chosen["rows"] == 3


def test_a_run_reads_the_partition_its_triggering_event_announced(mlops_home):
    old, _ = write_and_commit("churn", "2026-01-02", [rows(range(3))], "w1")
    write_and_commit("churn", "2026-01-04", [rows(range(5))], "w2")
    digest = partitions.reference(old)["digest"]

    chosen = partitions.partition_for_run("churn", run_context(events=announcing(str(old), digest)))

    assert chosen == {"uri": str(old), "digest": digest, "ds": "2026-01-02", "rows": 3}


def test_of_several_queued_events_the_newest_wins(mlops_home):
    from mlops.core.assets import raw_data

    first, _ = write_and_commit("churn", "2026-01-02", [rows(range(3))], "w1")
    second, _ = write_and_commit("churn", "2026-01-03", [rows(range(4))], "w2")
    events = {raw_data("churn"): announcing(str(second), partitions.reference(second)["digest"], 5)[raw_data("churn")]
              + announcing(str(first), partitions.reference(first)["digest"], 1)[raw_data("churn")]}

    assert partitions.partition_for_run("churn", run_context(events=events))["uri"] == str(second)


def test_a_param_names_the_partition_over_any_event(mlops_home):
    named, _ = write_and_commit("churn", "2026-01-01", [rows(range(2))], "w1")
    other, _ = write_and_commit("churn", "2026-01-02", [rows(range(3))], "w2")
    context = run_context(params={"partition_uri": str(named)},
                          events=announcing(str(other), partitions.reference(other)["digest"]))

    assert partitions.partition_for_run("churn", context)["uri"] == str(named)


def test_a_partition_recommitted_with_other_content_is_refused_naming_both_digests(mlops_home):
    directory, _ = write_and_commit("churn", "2026-01-02", [rows(range(3))], "w1")
    announced = partitions.reference(directory)["digest"]
    write_and_commit("churn", "2026-01-02", [rows(range(7))], "w2")  # a later ingest of the same day

    with pytest.raises(partitions.PartitionChanged, match=f"{announced[:12]}.*re-committed since"):
        partitions.partition_for_run("churn", run_context(events=announcing(str(directory), announced)))
