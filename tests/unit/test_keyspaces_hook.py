"""Keyspaces hook at the cassandra-driver boundary: token ranges over the ring of the cluster's partitioner, CQL -> Arrow
types, the connection (TLS, SigV4, service credentials, plain Cassandra), paged reads, retries with
backoff on throttling and timeouts, and concurrent prepared writes."""

from __future__ import annotations

import json
import random
import ssl
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest
from airflow.sdk import Connection
from cassandra import ConsistencyLevel
from cassandra.murmur3 import murmur3

from mlops.hooks.keyspaces import (
    KEYSPACES_DEFAULT,
    MAX_TOKEN,
    MIN_TOKEN,
    MURMUR3,
    RANDOM,
    READ_PROFILE,
    Backoff,
    KeyspacesConnectionSettings,
    KeyspacesHook,
    KeyspacesRetriesExhausted,
    UnsupportedPartitioner,
    is_retryable,
    ssl_context_for,
    token_ranges,
)
from mlops.ingest.cql_arrow import UnmappableCQLType, cql_to_arrow, rows_to_table
from testkit import fake_cassandra
from testkit.fake_cassandra import FakeSession, FakeTable, as_driver_returns, table_from_ddl

FULL_RING_QUERY = 'SELECT * FROM "ks"."items" WHERE token("id") > %s AND token("id") <= %s'


# --- token ranges -------------------------------------------------------------------------------

@pytest.mark.parametrize("segments", [1, 3, 4, 7, 256])
def test_token_ranges_cover_the_whole_murmur3_ring(segments):
    ranges = token_ranges(segments)

    assert len(ranges) == segments
    assert ranges[0][0] == -(2**63) == MIN_TOKEN
    assert ranges[-1][1] == 2**63 - 1 == MAX_TOKEN
    assert sum(end - start for start, end in ranges) == MAX_TOKEN - MIN_TOKEN


@pytest.mark.parametrize("segments", [1, 3, 4, 7, 256])
def test_token_ranges_are_contiguous_without_gap_or_overlap(segments):
    ranges = token_ranges(segments)

    assert all(start < end for start, end in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(segments - 1))


@pytest.mark.parametrize("segments", [1, 3, 4, 7, 256])
def test_every_driver_token_falls_in_exactly_one_range(segments):
    rng = random.Random(20260102)
    keys = [rng.randbytes(rng.randint(0, 24)) for _ in range(2000)]
    ranges = token_ranges(segments)

    for key in keys:
        token = murmur3(key)
        assert sum(start < token <= end for start, end in ranges) == 1, (key, token)


@pytest.mark.parametrize("segments", [3, 7, 256])
def test_tokens_on_and_next_to_every_boundary_fall_in_exactly_one_range(segments):
    ranges = token_ranges(segments)
    edges = {MIN_TOKEN + 1, MAX_TOKEN} | {t + d for _, end in ranges[:-1] for t in (end,) for d in (-1, 0, 1)}

    for token in edges:
        assert sum(start < token <= end for start, end in ranges) == 1, token


@pytest.mark.parametrize("segments", [0, -1])
def test_token_ranges_needs_at_least_one_segment(segments):
    with pytest.raises(ValueError, match="segments must be >= 1"):
        token_ranges(segments)


# --- the partitioner's ring -----------------------------------------------------------------------

@pytest.mark.parametrize("ring", [RANDOM, KEYSPACES_DEFAULT])
@pytest.mark.parametrize("segments", [1, 4, 7])
def test_every_md5_token_falls_in_exactly_one_range_of_the_random_ring(ring, segments):
    from cassandra.metadata import MD5Token

    rng = random.Random(20260103)
    ranges = ring.ranges(segments)
    tokens = [MD5Token.hash_fn(rng.randbytes(rng.randint(0, 24))) for _ in range(2000)]

    assert (ranges[0][0], ranges[-1][1]) == (-1, 2**127)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(segments - 1))
    for token in [*tokens, 0, 2**127]:
        assert sum(start < token <= end for start, end in ranges) == 1, token


def test_murmur3_ranges_on_a_random_ring_would_skip_most_rows():
    """What reading without the partitioner did: a Random ring's tokens reach 2**127, far past
    Murmur3's last token, so every row hashed above 2**63 was never selected."""
    from cassandra.metadata import MD5Token

    rng = random.Random(5)
    tokens = [MD5Token.hash_fn(rng.randbytes(12)) for _ in range(1000)]

    covered = sum(any(start < t <= end for start, end in token_ranges(4)) for t in tokens)

    assert covered < 10  # about 2**-64 of the ring
    assert sum(any(start < t <= end for start, end in token_ranges(4, RANDOM)) for t in tokens) == 1000


@pytest.mark.parametrize("partitioner, ring", [
    ("org.apache.cassandra.dht.Murmur3Partitioner", MURMUR3),
    ("org.apache.cassandra.dht.RandomPartitioner", RANDOM),
    ("com.amazonaws.cassandra.DefaultPartitioner", KEYSPACES_DEFAULT),
])
def test_the_hook_reads_the_partitioner_from_system_local(monkeypatch, partitioner, ring):
    session = FakeSession({}, partitioner=partitioner)
    hook, _ = hook_on(monkeypatch, session)

    assert hook.token_ring() == ring
    (request,) = session.requests
    assert (request["query"], request["consistency"], request["execution_profile"]) == (
        "SELECT partitioner FROM system.local", ConsistencyLevel.LOCAL_ONE, READ_PROFILE)


@pytest.mark.parametrize("partitioner", ["org.apache.cassandra.dht.ByteOrderedPartitioner",
                                         "org.apache.cassandra.dht.OrderPreservingPartitioner"])
def test_a_partitioner_without_a_splittable_ring_is_refused_by_name(monkeypatch, partitioner):
    hook, _ = hook_on(monkeypatch, FakeSession({}, partitioner=partitioner))

    with pytest.raises(UnsupportedPartitioner, match=rf"partitioner is '{partitioner}'; token-range reads know "
                                                     r"org.apache.cassandra.dht.Murmur3Partitioner, "):
        hook.token_ring()


def test_reading_the_partitioner_is_retried_when_throttled(monkeypatch):
    session = FakeSession({}, partitioner="org.apache.cassandra.dht.RandomPartitioner")
    session.throttle(2, "read_timeout")
    hook, sleeps = hook_on(monkeypatch, session)

    assert hook.token_ring() == RANDOM
    assert len(sleeps) == 2


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
        ("counter", pa.int64()),
        ("varint", pa.string()),
        ("decimal", pa.decimal128(38, 18)),
        ("double", pa.float64()),
        ("float", pa.float32()),
        ("boolean", pa.bool_()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("date", pa.date32()),
        ("time", pa.time64("ns")),
        ("uuid", pa.string()),
        ("timeuuid", pa.string()),
        ("inet", pa.string()),
        ("blob", pa.binary()),
        ("list<int>", pa.list_(pa.int32())),
        ("set<text>", pa.list_(pa.string())),
        ("map<text, int>", pa.map_(pa.string(), pa.int32())),
        ("map<text, list<int>>", pa.map_(pa.string(), pa.list_(pa.int32()))),
        ("frozen<list<bigint>>", pa.list_(pa.int64())),
        ("  BIGINT ", pa.int64()),
    ],
)
def test_cql_type_maps_to_arrow(cql, arrow):
    assert cql_to_arrow(cql) == arrow


# One value per CQL type, as the application writes it, and what the Parquet file must hold after
# the value went through the driver's serialiser and back (what a real read returns).
UID, TIME_UID = uuid.UUID("6b7e3a4c-1f0b-4f8e-9a52-3c1d2f7a9b10"), uuid.UUID("c65324f2-e578-11f1-ba8e-02fc00000001")
EVERY_TYPE = [
    ("text", "héllo", "héllo"),
    ("int", -(2**31), -(2**31)),
    ("bigint", 2**62, 2**62),
    ("varint", 2**100, str(2**100)),
    ("decimal", Decimal("1234.500000000000000001"), Decimal("1234.500000000000000001")),
    ("double", 0.1, 0.1),
    ("float", 1.5, 1.5),
    ("boolean", True, True),
    ("timestamp", datetime(2010, 3, 11, 17, 44, 5, 123000), datetime(2010, 3, 11, 17, 44, 5, 123000, tzinfo=UTC)),
    ("date", date(2026, 1, 2), date(2026, 1, 2)),
    ("uuid", UID, str(UID)),
    ("timeuuid", TIME_UID, str(TIME_UID)),
    ("list<int>", [3, 1, 2], [3, 1, 2]),
    ("set<text>", {"b", "a"}, ["a", "b"]),
    ("map<text, int>", {"y": 2, "x": 1}, [("x", 1), ("y", 2)]),
    ("map<text, list<int>>", {"k": [1, 2]}, [("k", [1, 2])]),
    ("list<uuid>", [UID], [str(UID)]),
    ("list<date>", [date(2000, 2, 29)], [date(2000, 2, 29)]),
    ("time", time(10, 30), time(10, 30)),
]


@pytest.mark.parametrize(("cql", "written", "expected"), EVERY_TYPE, ids=[t[0] for t in EVERY_TYPE])
def test_every_cql_type_arrives_in_arrow_as_the_driver_returned_it(cql, written, expected):
    from testkit.fake_cassandra import driver_type

    returned = as_driver_returns(written, cql)
    table = rows_to_table(["v"], [driver_type(cql)], [(returned,), (None,)])

    assert table.schema.field("v").type == cql_to_arrow(cql)
    assert table.column("v").to_pylist() == [expected, None]


def test_a_date_far_outside_pythons_range_is_kept_as_days():
    from testkit.fake_cassandra import driver_type

    returned = as_driver_returns(2**31 + 10, "date")  # cassandra.util.Date; year > 9999
    table = rows_to_table(["d"], [driver_type("date")], [(returned,)])

    assert table.column("d").cast(pa.int32()).to_pylist() == [10]  # CQL dates count from 2**31


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


def test_every_unmappable_column_is_named_in_one_error():
    with pytest.raises(UnmappableCQLType) as raised:
        rows_to_table(["id", "took", "pair"], ["text", "duration", "tuple<int, text>"], [("a", None, None)])

    assert "'took' (duration)" in str(raised.value)
    assert "'pair' (tuple<int, text>)" in str(raised.value)
    assert "'id'" not in str(raised.value)


def test_an_unmappable_column_that_is_not_selected_is_ignored():
    table = rows_to_table(["id", "took"], ["text", "duration"], [("a", None)], rename={"id": "Id"})

    assert table.to_pydict() == {"Id": ["a"]}


def test_a_decimal_too_wide_for_arrow_fails_naming_the_column():
    with pytest.raises(ValueError, match="column 'price' \\(decimal\\)"):
        rows_to_table(["price"], ["decimal"], [(Decimal("1e30"),)])


# --- driver pages -> Arrow tables ---------------------------------------------------------------

def test_rows_to_table_renames_columns_and_drops_unmapped_ones():
    table = rows_to_table(
        ["phone", "internal", "day_mins"], ["text", "int", "double"],
        [("555-0001", 1, 12.5), ("555-0002", 2, 30.0)],
        rename={"phone": "Phone", "day_mins": "Day Mins"},
    )

    assert table.column_names == ["Phone", "Day Mins"]
    assert table.to_pydict() == {"Phone": ["555-0001", "555-0002"], "Day Mins": [12.5, 30.0]}


def test_rows_to_table_casts_decimal_to_double():
    table = rows_to_table(["price"], ["decimal"], [(Decimal("1.65"),), (Decimal("2.55"),)],
                          rename={"price": "Price"}, casts={"Price": "double"})

    assert table.schema.field("Price").type == pa.float64()
    assert table.column("Price").to_pylist() == [1.65, 2.55]


def test_rows_to_table_keeps_none_as_null_in_every_type():
    types = [t for t, _, _ in EVERY_TYPE]
    empty_row = (None,) * len(types)
    table = rows_to_table([f"c{i}" for i in range(len(types))], types, [empty_row, empty_row])

    assert all(table.column(i).null_count == 2 for i in range(len(types)))


def test_rows_to_table_accepts_named_tuple_rows_as_the_driver_returns_them():
    from cassandra.query import named_tuple_factory

    rows = named_tuple_factory(["a", "b"], [(1, "x"), (2, "y")])
    table = rows_to_table(["a", "b"], ["int", "text"], rows)

    assert table.to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


# --- the connection -----------------------------------------------------------------------------

def connection(host="cassandra.eu-west-1.amazonaws.com", port=None, login=None, password=None, **extra):
    return Connection(conn_id="keyspaces_test", conn_type="generic", host=host, port=port, login=login,
                      password=password, extra=json.dumps(extra))


def test_a_keyspaces_host_defaults_to_tls_on_9142_with_sigv4_in_its_region():
    settings = KeyspacesConnectionSettings.from_connection(connection())

    assert (settings.port, settings.ssl, settings.auth) == (9142, True, "sigv4")
    assert settings.region_name == settings.local_dc == "eu-west-1"
    assert settings.is_keyspaces


def test_service_specific_credentials_use_password_auth():
    settings = KeyspacesConnectionSettings.from_connection(connection(login="svc-user-at-123", password="s3cret"))

    assert settings.auth == "password"
    assert "s3cret" not in repr(settings)


def test_plain_cassandra_without_tls_defaults_to_9042_and_no_auth():
    settings = KeyspacesConnectionSettings.from_connection(connection(host="cassandra", ssl=False))

    assert (settings.port, settings.ssl, settings.auth, settings.is_keyspaces) == (9042, False, "none", False)
    assert ssl_context_for(settings) is None


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        (connection(ssl=False), "needs TLS"),
        (connection(host="my-proxy.internal", auth="sigv4"), "region_name"),
        (connection(auth="password", login="u"), "login and password"),
        (connection(auth="kerberos"), "auth 'kerberos'"),
        (connection(host=""), "no host"),
    ],
)
def test_inconsistent_connections_are_rejected_with_the_reason(conn, message):
    with pytest.raises(ValueError, match=message):
        KeyspacesConnectionSettings.from_connection(conn)


def test_tls_verifies_the_certificate_and_host_against_the_amazon_roots():
    context = ssl_context_for(KeyspacesConnectionSettings.from_connection(connection()))

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    subjects = {dict(field[0] for field in ca["subject"]).get("commonName") for ca in context.get_ca_certs()}
    assert {"Amazon Root CA 1", "Starfield Services Root Certificate Authority - G2"} <= subjects
    assert len(subjects) <= 6  # only the roots Keyspaces chains to, not the whole public bundle


def test_a_ca_bundle_from_the_connection_replaces_the_default_roots(tmp_path):
    from mlops.hooks.keyspaces import keyspaces_ca_bundle

    first = keyspaces_ca_bundle().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    (tmp_path / "ca.pem").write_text(first)
    context = ssl_context_for(KeyspacesConnectionSettings.from_connection(connection(ca_certs=str(tmp_path / "ca.pem"))))

    assert len(context.get_ca_certs()) == 1


def test_sigv4_signs_with_the_aws_connections_refreshable_session(monkeypatch):
    from cassandra_sigv4.auth import SigV4AuthProvider

    monkeypatch.setenv("AIRFLOW_CONN_AWS_KEYSPACES", json.dumps(
        {"conn_type": "aws", "login": "AKIDEXAMPLE", "password": "secret-key"}))
    settings = KeyspacesConnectionSettings.from_connection(connection(aws_conn_id="aws_keyspaces"))

    provider = KeyspacesHook()._auth_provider(settings)

    assert isinstance(provider, SigV4AuthProvider)
    assert provider.session.region_name == "eu-west-1"
    assert provider.session.get_credentials().access_key == "AKIDEXAMPLE"


class RecordingCluster:
    """Stands in for ``cassandra.cluster.Cluster``: records how the hook builds it."""

    made: list[RecordingCluster] = []

    def __init__(self, contact_points, **kwargs):
        self.contact_points, self.kwargs, self.shut = contact_points, kwargs, False
        RecordingCluster.made.append(self)

    def connect(self):
        return FakeSession()

    def shutdown(self):
        self.shut = True


def test_the_cluster_is_built_with_tls_host_check_profiles_and_timeouts(monkeypatch):
    import cassandra.cluster
    from cassandra.policies import FallthroughRetryPolicy

    RecordingCluster.made = []
    monkeypatch.setattr(cassandra.cluster, "Cluster", RecordingCluster)
    monkeypatch.setenv("AIRFLOW_CONN_KEYSPACES_DEFAULT", json.dumps(
        {"conn_type": "generic", "host": "cassandra.us-east-1.amazonaws.com", "login": "svc", "password": "pw"}))
    hook = KeyspacesHook(consistency="LOCAL_ONE", request_timeout=12.0)

    hook.get_session()
    hook.close()

    (cluster,) = RecordingCluster.made
    kwargs = cluster.kwargs
    assert cluster.contact_points == ["cassandra.us-east-1.amazonaws.com"] and kwargs["port"] == 9142
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kwargs["ssl_options"] == {"server_hostname": "cassandra.us-east-1.amazonaws.com"}
    assert kwargs["protocol_version"] == 4
    default, read = (kwargs["execution_profiles"][name] for name in (cassandra.cluster.EXEC_PROFILE_DEFAULT, READ_PROFILE))
    assert default.consistency_level == ConsistencyLevel.LOCAL_QUORUM  # writes
    assert read.consistency_level == ConsistencyLevel.LOCAL_ONE
    assert default.request_timeout == read.request_timeout == 12.0
    assert isinstance(read.retry_policy, FallthroughRetryPolicy)  # retries are the hook's, with backoff
    assert cluster.shut


def test_plain_cassandra_is_built_without_tls(monkeypatch):
    import cassandra.cluster

    RecordingCluster.made = []
    monkeypatch.setattr(cassandra.cluster, "Cluster", RecordingCluster)
    monkeypatch.setenv("AIRFLOW_CONN_KEYSPACES_DEFAULT", json.dumps(
        {"conn_type": "generic", "host": "cassandra", "extra": {"ssl": False}}))

    KeyspacesHook().get_session()

    kwargs = RecordingCluster.made[0].kwargs
    assert kwargs["port"] == 9042 and "ssl_context" not in kwargs and kwargs["auth_provider"] is None


def test_connection_exists_says_whether_airflow_knows_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KEYSPACES_THERE", json.dumps({"conn_type": "generic", "host": "h"}))

    assert KeyspacesHook.connection_exists("keyspaces_there")
    assert not KeyspacesHook.connection_exists("keyspaces_nowhere")


def test_hook_rejects_an_unknown_consistency_level():
    with pytest.raises(ValueError, match="QUORUM"):
        KeyspacesHook(consistency="ALL")


# --- paging -------------------------------------------------------------------------------------

def hook_on(monkeypatch, session: FakeSession, **kwargs) -> tuple[KeyspacesHook, list[float]]:
    monkeypatch.setattr(KeyspacesHook, "get_session", lambda self: session)
    sleeps: list[float] = []
    return KeyspacesHook(sleep=sleeps.append, seed=7, **kwargs), sleeps


def items_session(count: int) -> FakeSession:
    rows = [(f"key-{i:05d}", i) for i in range(count)]
    return FakeSession({"ks.items": FakeTable(["id", "value"], ["text", "int"], rows)})


def test_iter_pages_reads_every_row_once_across_many_pages(monkeypatch):
    hook, _ = hook_on(monkeypatch, items_session(10_050))

    pages = list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=100))

    assert len(pages) == 101
    assert [len(rows) for _, _, rows in pages] == [100] * 100 + [50]
    values = [row.value for _, _, rows in pages for row in rows]
    assert sorted(values) == list(range(10_050))


def test_each_page_resumes_from_the_previous_pages_paging_state(monkeypatch):
    session = items_session(250)
    hook, _ = hook_on(monkeypatch, session)

    list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=100))

    assert [r["paging_state"] for r in session.requests] == [None, b"100", b"200"]


def test_reads_use_the_configured_consistency_timeout_and_read_profile(monkeypatch):
    session = items_session(5)
    hook, _ = hook_on(monkeypatch, session, consistency="LOCAL_ONE", request_timeout=7.5)

    list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=2))

    assert {r["consistency"] for r in session.requests} == {ConsistencyLevel.LOCAL_ONE}
    assert {r["timeout"] for r in session.requests} == {7.5}
    assert {r["execution_profile"] for r in session.requests} == {READ_PROFILE}


def test_rows_are_read_in_token_order_like_a_cassandra_scan(monkeypatch):
    hook, _ = hook_on(monkeypatch, items_session(500))

    rows = [row for _, _, page in hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), 64) for row in page]
    tokens = [fake_cassandra.token_of(row.id) for row in rows]

    assert tokens == sorted(tokens)


def test_iter_pages_yields_column_names_and_driver_types_with_each_page(monkeypatch):
    from cassandra.cqltypes import Int32Type, UTF8Type

    hook, _ = hook_on(monkeypatch, items_session(5))

    pages = list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=2))

    assert {(tuple(names), tuple(types)) for names, types, _ in pages} == {(("id", "value"), (UTF8Type, Int32Type))}


def test_iter_pages_passes_the_token_range_to_the_session(monkeypatch):
    session = items_session(300)
    hook, _ = hook_on(monkeypatch, session)

    per_range = [
        [row for _, _, rows in hook.iter_pages(FULL_RING_QUERY, bounds, fetch_size=50) for row in rows]
        for bounds in token_ranges(4)
    ]

    assert [(call[1], call[2]) for call in session.calls] == token_ranges(4)
    assert sorted(row[1] for rows in per_range for row in rows) == list(range(300))


def test_iter_pages_of_an_empty_range_yields_nothing(monkeypatch):
    hook, _ = hook_on(monkeypatch, items_session(0))

    assert list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=100)) == []


# --- retries ------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", ["read_timeout", "unavailable", "operation_timed_out", "overloaded"])
def test_a_throttled_page_is_retried_with_backoff_then_succeeds(monkeypatch, error):
    session = items_session(1000)
    hook, sleeps = hook_on(monkeypatch, session, backoff=Backoff(max_attempts=5, base=0.5, cap=30))
    pages = hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=100)
    first = next(pages)

    session.throttle(3, error)  # the second page fails three times
    rest = list(pages)

    values = sorted(row.value for _, _, rows in [first, *rest] for row in rows)
    assert values == list(range(1000))  # no page lost, none repeated
    assert len(sleeps) == 3
    assert all(0 <= delay <= 0.5 * 2**i for i, delay in enumerate(sleeps))  # full jitter under 0.5 * 2**n
    retried = [r["paging_state"] for r in session.requests[1:5]]
    assert retried == [b"100"] * 4  # the same page, four times


def test_throttling_past_the_retry_budget_fails_clearly(monkeypatch):
    session = items_session(10)
    hook, sleeps = hook_on(monkeypatch, session, backoff=Backoff(max_attempts=4, base=0.1))
    session.throttle(10, "read_timeout")

    with pytest.raises(KeyspacesRetriesExhausted) as raised:
        list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=5))

    message = str(raised.value)
    assert "page 1 of SELECT" in message and "gave up after 4 attempts" in message
    assert "ReadTimeout" in message and "ReadThrottleEvents" in message
    assert type(raised.value.last_error).__name__ == "ReadTimeout"
    assert len(sleeps) == 3
    assert len(session.requests) == 4


def test_backoff_grows_exponentially_up_to_the_cap_with_jitter():
    backoff = Backoff(max_attempts=10, base=1.0, cap=8.0)
    rng = random.Random(3)

    ceilings = [max(backoff.delay(n, rng) for _ in range(500)) for n in range(1, 7)]

    assert ceilings[0] <= 1 and 1 < ceilings[1] <= 2 and 2 < ceilings[2] <= 4
    assert all(4 < c <= 8 for c in ceilings[3:])  # capped
    assert len({round(backoff.delay(3, rng), 6) for _ in range(20)}) > 1  # jittered


def expected_delays(backoff: Backoff, seed: int, retries: int) -> list[float]:
    """The waits the schedule promises: retry n waits uniform(0, min(cap, base * 2**(n-1)))."""
    rng = random.Random(seed)
    return [rng.uniform(0.0, min(backoff.cap, backoff.base * 2 ** (n - 1))) for n in range(1, retries + 1)]


def test_a_retried_request_waits_exactly_the_seeded_full_jitter_schedule(monkeypatch):
    backoff = Backoff(max_attempts=6, base=0.5, cap=1.5)
    session = items_session(10)
    hook, sleeps = hook_on(monkeypatch, session, backoff=backoff)
    session.throttle(5, "read_timeout")

    pages = list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=10))

    assert sum(len(rows) for _, _, rows in pages) == 10
    assert sleeps == expected_delays(backoff, seed=7, retries=5)  # capped at 1.5 from the third retry
    assert len(session.requests) == 6  # the sixth and last attempt succeeded


def test_the_retry_budget_is_the_number_of_attempts_and_the_last_error_is_kept(monkeypatch):
    backoff = Backoff(max_attempts=3, base=0.1)
    session = items_session(10)
    hook, sleeps = hook_on(monkeypatch, session, backoff=backoff)
    session.throttle(3, "overloaded")

    with pytest.raises(KeyspacesRetriesExhausted) as raised:
        hook.execute("SELECT * FROM ks.items")

    assert raised.value.attempts == 3
    assert sleeps == expected_delays(backoff, seed=7, retries=2)  # no wait after the last attempt
    assert raised.value.__cause__ is raised.value.last_error
    assert type(raised.value.last_error).__name__ == "OverloadedErrorMessage"


def test_throttled_rows_wait_the_same_schedule_as_requests(monkeypatch):
    backoff = Backoff(max_attempts=4, base=0.2, cap=20.0)
    session = results_session()
    hook, sleeps = hook_on(monkeypatch, session, backoff=backoff)
    session.fail_rows(lambda row: row["segment"] == "segment-0001", "write_timeout")

    report = write(hook, result_rows("run-1", 5))

    assert (report.written, report.failed, report.retried) == (4, 1, 3)  # retried on attempts 1-3, failed on 4
    assert sleeps == expected_delays(backoff, seed=7, retries=3)


def test_an_error_that_is_not_transient_is_not_retried(monkeypatch):
    session = items_session(10)
    hook, sleeps = hook_on(monkeypatch, session)
    session.throttle(1, "invalid")

    with pytest.raises(Exception, match="Invalid query"):
        list(hook.iter_pages(FULL_RING_QUERY, (MIN_TOKEN, MAX_TOKEN), fetch_size=5))

    assert sleeps == [] and len(session.requests) == 1


def test_no_host_available_is_retried_only_when_every_host_failed_transiently():
    from cassandra.cluster import NoHostAvailable

    assert is_retryable(NoHostAvailable("all hosts", {"a": fake_cassandra.write_timeout(),
                                                     "b": fake_cassandra.operation_timed_out()}))
    assert not is_retryable(NoHostAvailable("all hosts", {"a": fake_cassandra.invalid_request()}))
    assert not is_retryable(NoHostAvailable("no hosts", {}))


# --- writes -------------------------------------------------------------------------------------

RESULTS_COLUMNS = ["run_id", "segment", "total_customers", "run_date"]


def results_session() -> FakeSession:
    return FakeSession({"mlops.ml_clustering_results": table_from_ddl("ml_clustering_results")})


def result_rows(run_id: str, n: int) -> list[tuple]:
    return [(run_id, f"segment-{i:04d}", i, date(2026, 1, 2)) for i in range(n)]


def write(hook, rows, **kwargs):
    return hook.write_rows("mlops", "ml_clustering_results", RESULTS_COLUMNS, rows, key_columns=["run_id", "segment"],
                           **kwargs)


def test_write_rows_upserts_every_row_with_concurrent_prepared_inserts(monkeypatch):
    session = results_session()
    hook, _ = hook_on(monkeypatch, session)

    report = write(hook, result_rows("run-1", 1200), concurrency=16, chunk_size=500)

    stored = session.tables["mlops.ml_clustering_results"]
    assert report.to_dict() | {"samples": []} == {"table": "mlops.ml_clustering_results", "rows": 1200,
                                                 "written": 1200, "failed": 0, "retried": 0, "errors": {},
                                                 "samples": []}
    assert len(stored) == 1200
    assert stored.rows[0][3].date() == date(2026, 1, 2)
    writes = [r for r in session.requests if r["kind"] == "write"]
    assert len(writes) == 1200
    assert {r["consistency"] for r in writes} == {ConsistencyLevel.LOCAL_QUORUM}
    assert {r["query"] for r in writes} == {'INSERT INTO "mlops"."ml_clustering_results" ("run_id", "segment", '
                                            '"total_customers", "run_date") VALUES (?, ?, ?, ?)'}


def test_writing_the_same_run_twice_leaves_one_copy_of_each_row(monkeypatch):
    session = results_session()
    hook, _ = hook_on(monkeypatch, session)

    write(hook, result_rows("run-1", 50))
    write(hook, result_rows("run-1", 50))
    write(hook, result_rows("run-2", 50))

    assert len(session.tables["mlops.ml_clustering_results"]) == 100


def test_throttled_writes_are_retried_and_every_row_lands(monkeypatch):
    session = results_session()
    hook, sleeps = hook_on(monkeypatch, session)
    session.throttle(40, "write_timeout", on="write")

    report = write(hook, result_rows("run-1", 300), concurrency=8, chunk_size=100)

    assert (report.written, report.failed, report.retried) == (300, 0, 40)
    assert len(session.tables["mlops.ml_clustering_results"]) == 300
    assert len(sleeps) >= 1


def test_writes_throttled_past_the_budget_are_counted_as_failed_not_dropped(monkeypatch):
    session = results_session()
    hook, sleeps = hook_on(monkeypatch, session, backoff=Backoff(max_attempts=3))
    session.fail_rows(lambda row: row["segment"] == "segment-0007", "write_timeout")

    report = write(hook, result_rows("run-1", 20))

    assert (report.rows, report.written, report.failed, report.retried) == (20, 19, 1, 2)
    assert report.errors == {"WriteTimeout": 1}
    assert report.samples[0]["key"] == "('run-1', 'segment-0007')"
    assert len(sleeps) == 2


def test_rows_that_fail_to_bind_or_are_rejected_are_counted_by_error(monkeypatch):
    session = results_session()
    hook, sleeps = hook_on(monkeypatch, session)
    session.fail_rows(lambda row: row["segment"] == "segment-0003")
    rows = result_rows("run-1", 10) + [("run-1", "typed", "not a number", date(2026, 1, 2)),
                                        ("run-1", None, 1, date(2026, 1, 2))]

    report = write(hook, rows)

    assert (report.written, report.failed) == (9, 3)
    assert report.errors == {"InvalidRequest": 2, "TypeError": 1}
    assert any("total_customers" in s["error"] for s in report.samples)
    assert sleeps == []  # nothing transient: nothing retried


def test_write_rows_streams_any_number_of_rows_in_chunks(monkeypatch):
    session = results_session()
    hook, _ = hook_on(monkeypatch, session)
    produced = []

    def rows():
        for row in result_rows("run-1", 2500):
            produced.append(row)
            yield row

    report = write(hook, rows(), chunk_size=1000)

    assert report.written == 2500 and len(produced) == 2500
