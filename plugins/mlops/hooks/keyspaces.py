"""Amazon Keyspaces (and plain Cassandra) over an Airflow connection.

Connection ``keyspaces_default`` (type ``generic``): host (e.g.
``cassandra.us-east-1.amazonaws.com``), port (9142 for Keyspaces), and either login/password
(service-specific credentials) or ``{"auth": "sigv4", "aws_conn_id": "aws_default",
"region_name": "us-east-1"}`` in extra. TLS is on unless extra says ``{"ssl": false}`` (plain
Cassandra, e.g. the compose file); ``ca_certs`` points at the Amazon/Starfield root CA bundle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow.sdk.bases.hook import BaseHook

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1


def token_ranges(segments: int) -> list[tuple[int, int]]:
    """Split the Murmur3 token ring into ``segments`` contiguous ``(start, end]`` ranges.

    Murmur3 never yields ``MIN_TOKEN``, so ``token > MIN_TOKEN`` on the first range loses nothing;
    the last range ends at ``MAX_TOKEN``. Ranges share endpoints, so there is no gap or overlap.
    """
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    span = (MAX_TOKEN - MIN_TOKEN) // segments
    bounds = [MIN_TOKEN + i * span for i in range(segments)] + [MAX_TOKEN]
    return list(zip(bounds[:-1], bounds[1:]))


class KeyspacesHook(BaseHook):
    """Open a cassandra-driver session to Keyspaces or Cassandra from an Airflow connection.

    :param keyspaces_conn_id: Airflow connection id.
    :param consistency: read consistency, ``LOCAL_QUORUM`` or ``LOCAL_ONE``.
    :param request_timeout: seconds per request.
    """

    conn_name_attr = "keyspaces_conn_id"
    default_conn_name = "keyspaces_default"
    conn_type = "generic"
    hook_name = "Amazon Keyspaces"

    def __init__(self, keyspaces_conn_id: str = default_conn_name, consistency: str = "LOCAL_QUORUM",
                 request_timeout: float = 30.0) -> None:
        super().__init__()
        if consistency not in ("LOCAL_QUORUM", "LOCAL_ONE"):
            raise ValueError(f"consistency {consistency!r} is not LOCAL_QUORUM or LOCAL_ONE")
        self.keyspaces_conn_id = keyspaces_conn_id
        self.consistency = consistency
        self.request_timeout = request_timeout
        self._cluster = None
        self._session = None

    def get_session(self):
        if self._session is None:
            self._session = self._connect()
        return self._session

    def _connect(self):
        import ssl

        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

        conn = self.get_connection(self.keyspaces_conn_id)
        extra = conn.extra_dejson
        ssl_context = None
        if extra.get("ssl", True):
            ssl_context = ssl.create_default_context(cafile=extra.get("ca_certs"))
            ssl_context.check_hostname = True
            ssl_context.verify_mode = ssl.CERT_REQUIRED
        if extra.get("auth") == "sigv4":
            import boto3
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
            from cassandra_sigv4.auth import SigV4AuthProvider

            aws = AwsBaseHook(aws_conn_id=extra.get("aws_conn_id", "aws_default"), client_type="sts")
            credentials = aws.get_session(region_name=extra.get("region_name")).get_credentials()
            auth = SigV4AuthProvider(boto3.Session(
                aws_access_key_id=credentials.access_key,
                aws_secret_access_key=credentials.secret_key,
                aws_session_token=credentials.token,
                region_name=extra.get("region_name"),
            ))
        elif conn.login:
            auth = PlainTextAuthProvider(username=conn.login, password=conn.password)
        else:
            auth = None
        profile = ExecutionProfile(
            consistency_level=getattr(ConsistencyLevel, self.consistency),
            request_timeout=self.request_timeout,
        )
        self._cluster = Cluster(
            [conn.host], port=conn.port or 9142, ssl_context=ssl_context, auth_provider=auth,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        )
        return self._cluster.connect()

    def iter_pages(self, query: str, parameters: tuple[Any, ...], fetch_size: int) -> Iterator[tuple[list[str], list[Any], list[tuple]]]:
        """Yield ``(column_names, column_types, rows)`` one driver page at a time."""
        from cassandra.query import SimpleStatement

        result = self.get_session().execute(SimpleStatement(query, fetch_size=fetch_size), parameters)
        while True:
            rows = list(result.current_rows)
            if rows:
                yield list(result.column_names), list(result.column_types or []), rows
            if not result.has_more_pages:
                return
            result.fetch_next_page()

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None


# CQL type name (as the driver's cql_parameterized_type() gives it) -> Arrow type factory.
def _arrow_types():
    import pyarrow as pa

    return {
        "ascii": pa.string(), "text": pa.string(), "varchar": pa.string(),
        "int": pa.int32(), "bigint": pa.int64(), "smallint": pa.int16(), "tinyint": pa.int8(),
        "counter": pa.int64(), "varint": pa.string(),  # arbitrary precision: kept exact as text
        "decimal": pa.decimal128(38, 18), "double": pa.float64(), "float": pa.float32(),
        "boolean": pa.bool_(), "timestamp": pa.timestamp("ms", tz="UTC"), "date": pa.date32(),
        "uuid": pa.string(), "timeuuid": pa.string(), "inet": pa.string(), "blob": pa.binary(),
    }


class UnmappableCQLType(TypeError):
    """A CQL column type this project does not map to Arrow."""


def cql_to_arrow(cql_type: str):
    """Arrow type for a CQL type name such as ``int``, ``list<text>`` or ``map<text, int>``."""
    import pyarrow as pa

    name = cql_type.strip().lower()
    scalars = _arrow_types()
    if name in scalars:
        return scalars[name]
    if name.startswith(("list<", "set<")) and name.endswith(">"):
        return pa.list_(cql_to_arrow(name[name.index("<") + 1:-1]))
    if name.startswith("map<") and name.endswith(">"):
        inner = name[4:-1]
        depth, split = 0, None
        for index, char in enumerate(inner):
            depth += char == "<"
            depth -= char == ">"
            if char == "," and depth == 0:
                split = index
                break
        if split is None:
            raise UnmappableCQLType(f"cannot parse CQL map type {cql_type!r}")
        return pa.map_(cql_to_arrow(inner[:split]), cql_to_arrow(inner[split + 1:]))
    raise UnmappableCQLType(
        f"CQL type {cql_type!r} has no Arrow mapping (mapped: {', '.join(sorted(scalars))}, list, set, map)"
    )


def _cql_name(driver_type) -> str:
    if isinstance(driver_type, str):
        return driver_type
    return driver_type.cql_parameterized_type()


def _convert(value, arrow_type):
    import uuid

    import pyarrow as pa

    if value is None:
        return None
    if isinstance(value, uuid.UUID) or (pa.types.is_string(arrow_type) and not isinstance(value, str)):
        return str(value)
    if pa.types.is_list(arrow_type):
        return [_convert(v, arrow_type.value_type) for v in value]
    if pa.types.is_map(arrow_type):
        return [(_convert(k, arrow_type.key_type), _convert(v, arrow_type.item_type)) for k, v in value.items()]
    return value


def rows_to_table(columns: list[str], types: list, rows: list[tuple], rename: dict[str, str] | None = None,
                  casts: dict[str, str] | None = None):
    """One driver page -> an Arrow table with mapped types, renamed and cast columns.

    ``types`` are the driver's column types (or CQL type names); without them Arrow infers.
    ``rename`` maps CQL column -> output column and drops the others; ``casts`` maps output
    column -> Arrow type name (e.g. ``double``).
    """
    import pyarrow as pa

    arrays, names = [], []
    for index, column in enumerate(columns):
        if rename and column not in rename:
            continue
        values = [row[index] for row in rows]
        if types:
            arrow_type = cql_to_arrow(_cql_name(types[index]))
            array = pa.array([_convert(v, arrow_type) for v in values], type=arrow_type)
        else:
            array = pa.array(values)
        name = rename[column] if rename else column
        if casts and name in casts:
            array = array.cast(pa.type_for_alias(casts[name]))
        arrays.append(array)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)
