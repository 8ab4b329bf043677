"""Keyspaces hook: token ranges over the Murmur3 ring, CQL -> Arrow types, driver pages -> tables."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from cassandra.murmur3 import murmur3

from mlops.hooks.keyspaces import (
    MAX_TOKEN,
    MIN_TOKEN,
    KeyspacesHook,
    UnmappableCQLType,
    cql_to_arrow,
    rows_to_table,
    token_ranges,
)
from testkit.fake_cassandra import FakeSession, FakeTable

FULL_RING_QUERY = 'SELECT * FROM "ks"."items" WHERE token(id) > %s AND token(id) <= %s'


# --- token ranges -------------------------------------------------------------------------------

@pytest.mark.parametrize("segments", [1, 3, 4, 256])
def test_token_ranges_cover_the_whole_murmur3_ring(segments):
    ranges = token_ranges(segments)

    assert len(ranges) == segments
    assert ranges[0][0] == -(2**63) == MIN_TOKEN
    assert ranges[-1][1] == 2**63 - 1 == MAX_TOKEN


@pytest.mark.parametrize("segments", [1, 3, 4, 256])
def test_token_ranges_are_contiguous_without_gap_or_overlap(segments):
    ranges = token_ranges(segments)

    assert all(start < end for start, end in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(segments - 1))


@pytest.mark.parametrize("segments", [1, 3, 4, 256])
def test_every_driver_token_falls_in_exactly_one_range(segments):
    rng = random.Random(20260102)
    keys = [rng.randbytes(rng.randint(0, 24)) for _ in range(2000)]
    ranges = token_ranges(segments)

    for key in keys:
        token = murmur3(key)
        assert sum(start < token <= end for start, end in ranges) == 1, (key, token)


@pytest.mark.parametrize("segments", [0, -1])
def test_token_ranges_needs_at_least_one_segment(segments):
    with pytest.raises(ValueError, match="segments must be >= 1"):
        token_ranges(segments)


# --- CQL -> Arrow types -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("cql", "arrow"),
    [
        ("text", pa.string()),
        ("ascii", pa.string()),
        ("varchar", pa.string()),
        ("int", pa.int32()),
        ("bigint", pa.int64()),
        ("smallint", pa.int16()),
        ("tinyint", pa.int8()),
        ("varint", pa.string()),
        ("decimal", pa.decimal128(38, 18)),
        ("double", pa.float64()),
        ("float", pa.float32()),
        ("boolean", pa.bool_()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("date", pa.date32()),
        ("uuid", pa.string()),
        ("timeuuid", pa.string()),
        ("blob", pa.binary()),
        ("list<int>", pa.list_(pa.int32())),
        ("set<text>", pa.list_(pa.string())),
        ("map<text, int>", pa.map_(pa.string(), pa.int32())),
        ("map<text, list<int>>", pa.map_(pa.string(), pa.list_(pa.int32()))),
        ("  BIGINT ", pa.int64()),
    ],
)
def test_cql_type_maps_to_arrow(cql, arrow):
    assert cql_to_arrow(cql) == arrow


@pytest.mark.parametrize(
    ("cql", "named"),
    [
        ("duration", "'duration'"),
        ("frozen<address>", "'frozen<address>'"),
        ("tuple<int, text>", "'tuple<int, text>'"),
        ("list<duration>", "'duration'"),
        ("map<text>", "'map<text>'"),
    ],
)
def test_unmappable_cql_type_raises_naming_the_type(cql, named):
    with pytest.raises(UnmappableCQLType) as raised:
        cql_to_arrow(cql)

    assert named in str(raised.value)


def test_unmappable_cql_type_message_names_the_type_and_what_is_mapped():
    with pytest.raises(UnmappableCQLType) as raised:
        cql_to_arrow("duration")

    assert "'duration'" in str(raised.value)
    assert "bigint" in str(raised.value)


def test_unmappable_cql_type_is_a_type_error():
    with pytest.raises(TypeError):
        cql_to_arrow("frozen<address>")


# --- driver pages -> Arrow tables ---------------------------------------------------------------

def test_rows_to_table_renames_columns_and_drops_unmapped_ones():
    table = rows_to_table(
        ["phone", "internal", "day_mins"], ["text", "int", "double"],
        [("555-0001", 1, 12.5), ("555-0002", 2, 30.0)],
        rename={"phone": "Phone", "day_mins": "Day Mins"},
    )

    assert table.column_names == ["Phone", "Day Mins"]
    assert table.to_pydict() == {"Phone": ["555-0001", "555-0002"], "Day Mins": [12.5, 30.0]}


def test_rows_to_table_without_rename_keeps_every_column():
    table = rows_to_table(["a", "b"], ["int", "text"], [(1, "x")])

    assert table.column_names == ["a", "b"]


def test_rows_to_table_gives_columns_their_mapped_arrow_types():
    table = rows_to_table(["n", "big", "flag", "day"], ["int", "bigint", "boolean", "date"],
                          [(1, 2**40, True, date(2026, 1, 2))])

    assert table.schema.types == [pa.int32(), pa.int64(), pa.bool_(), pa.date32()]


def test_rows_to_table_casts_decimal_to_double():
    table = rows_to_table(["price"], ["decimal"], [(Decimal("1.65"),), (Decimal("2.55"),)],
                          rename={"price": "Price"}, casts={"Price": "double"})

    assert table.schema.field("Price").type == pa.float64()
    assert table.column("Price").to_pylist() == [1.65, 2.55]


def test_rows_to_table_keeps_decimal_exact_without_a_cast():
    table = rows_to_table(["price"], ["decimal"], [(Decimal("0.1"),)])

    assert table.column("price").to_pylist() == [Decimal("0.1")]


def test_rows_to_table_keeps_none_as_null_in_every_type():
    types = ["text", "int", "double", "decimal", "timestamp", "uuid", "list<int>", "map<text, int>"]
    empty_row = (None,) * len(types)
    table = rows_to_table([f"c{i}" for i in range(len(types))], types, [empty_row, empty_row])

    assert all(table.column(i).null_count == 2 for i in range(len(types)))


def test_rows_to_table_turns_uuids_into_strings():
    first, second = uuid.uuid4(), uuid.uuid1()
    table = rows_to_table(["id", "event"], ["uuid", "timeuuid"], [(first, second)])

    assert table.schema.types == [pa.string(), pa.string()]
    assert table.to_pylist() == [{"id": str(first), "event": str(second)}]


def test_rows_to_table_keeps_varint_exact_as_text():
    table = rows_to_table(["n"], ["varint"], [(2**100,)])

    assert table.column("n").to_pylist() == [str(2**100)]


def test_rows_to_table_reads_naive_driver_timestamps_as_utc():
    table = rows_to_table(["at"], ["timestamp"], [(datetime(2010, 3, 11, 17, 44),)])

    assert table.column("at").to_pylist() == [datetime(2010, 3, 11, 17, 44, tzinfo=UTC)]


def test_rows_to_table_converts_map_and_collection_columns():
    table = rows_to_table(
        ["tags", "scores", "history"], ["set<text>", "map<text, int>", "map<text, list<int>>"],
        [({"a", "b"}, {"x": 1, "y": 2}, {"k": [1, 2, 3]}), (set(), {}, {})],
    )

    assert table.schema.field("scores").type == pa.map_(pa.string(), pa.int32())
    assert sorted(table.column("tags").to_pylist()[0]) == ["a", "b"]
    assert table.column("scores").to_pylist() == [[("x", 1), ("y", 2)], []]
    assert table.column("history").to_pylist() == [[("k", [1, 2, 3])], []]


def test_rows_to_table_accepts_the_driver_type_objects():
    from cassandra.cqltypes import Int32Type, ListType, MapType, UTF8Type

    map_type = MapType.apply_parameters([UTF8Type, ListType.apply_parameters([Int32Type])])
    table = rows_to_table(["name", "values"], [UTF8Type, map_type], [("a", {"k": [1]})])

    assert table.schema.types == [pa.string(), pa.map_(pa.string(), pa.list_(pa.int32()))]


def test_rows_to_table_with_an_unmappable_column_type_raises():
    with pytest.raises(UnmappableCQLType, match="duration"):
        rows_to_table(["d"], ["duration"], [(None,)])


# --- paging -------------------------------------------------------------------------------------

def hook_on(monkeypatch, session: FakeSession) -> KeyspacesHook:
    monkeypatch.setattr(KeyspacesHook, "get_session", lambda self: session)
    return KeyspacesHook()


def items_session(count: int) -> FakeSession:
    rows = [(f"key-{i:05d}", i) for i in range(count)]
    return FakeSession({"ks.items": FakeTable(["id", "value"], ["text", "int"], rows)})


def test_iter_pages_reads_every_row_once_across_pages(monkeypatch):
    hook = hook_on(monkeypatch, items_session(1050))

    pages = list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=100))

    assert len(pages) == 11
    assert [len(rows) for _, _, rows in pages] == [100] * 10 + [50]
    values = [value for _, _, rows in pages for _, value in rows]
    assert sorted(values) == list(range(1050))


def test_iter_pages_yields_column_names_and_types_with_each_page(monkeypatch):
    hook = hook_on(monkeypatch, items_session(5))

    pages = list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=2))

    assert {(tuple(names), tuple(types)) for names, types, _ in pages} == {(("id", "value"), ("text", "int"))}


def test_iter_pages_passes_the_token_range_to_the_session(monkeypatch):
    session = items_session(300)
    hook = hook_on(monkeypatch, session)

    per_range = [
        [row for _, _, rows in hook.iter_pages(FULL_RING_QUERY, bounds, fetch_size=50) for row in rows]
        for bounds in token_ranges(4)
    ]

    assert [(call[1], call[2]) for call in session.calls] == token_ranges(4)
    assert sorted(row[1] for rows in per_range for row in rows) == list(range(300))


def test_iter_pages_of_an_empty_range_yields_nothing(monkeypatch):
    hook = hook_on(monkeypatch, items_session(0))

    assert list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=100)) == []


def test_hook_rejects_an_unknown_consistency_level():
    with pytest.raises(ValueError, match="QUORUM"):
        KeyspacesHook(consistency="ALL")
