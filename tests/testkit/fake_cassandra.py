"""A fake cassandra-driver session, at the driver boundary the Keyspaces hook uses.

No server is involved: this is how the Keyspaces path is tested on machines without Cassandra.
What it does like a real node and the real driver:

* ``SELECT partitioner FROM system.local`` answers the session's ``partitioner`` (Murmur3 by
  default; Random, Amazon Keyspaces' ``DefaultPartitioner``, or any name a test gives), and
  every table hashes its keys with that partitioner's token function.
* ``SELECT <columns or *> FROM ks.t [WHERE token(pk) > %s AND token(pk) <= %s]`` returns the rows
  whose token (the driver's own token function of the partitioner — ``Murmur3Token.hash_fn`` or
  ``MD5Token.hash_fn`` — over the driver-serialised partition key) falls in the range, in token order, in pages of the statement's ``fetch_size`` (default
  5000), with ``column_names``, ``column_types`` (the driver's type classes), ``paging_state``,
  ``has_more_pages``, ``fetch_next_page()`` and iteration across pages; ``paging_state=`` on
  ``execute`` resumes a scan. Rows go through the session's ``row_factory`` (named tuples, the
  driver's default).
* Values are stored as the driver returns them: every inserted value is serialised with the
  column's driver type and deserialised again (so a ``date`` comes back as
  ``cassandra.util.Date``, a ``set`` as ``SortedSet``, a ``map`` as ``OrderedMapSerializedKey``),
  and a value of the wrong type fails to bind with the driver's ``TypeError``.
* ``prepare`` + ``execute_async`` (what ``cassandra.concurrent.execute_concurrent`` uses) run
  requests on worker threads and complete a ``ResponseFuture``-like object through callbacks.
  ``INSERT`` is an upsert keyed by the primary key; ``CREATE TABLE`` creates a table.
* Failures are the driver's own exceptions, built the way the driver builds them from server
  error messages: :meth:`FakeSession.throttle` makes the next N reads or writes fail with
  ``ReadTimeout``, ``WriteTimeout``, ``Unavailable``, ``OperationTimedOut`` or an overloaded
  coordinator; :meth:`FakeSession.fail_rows` makes chosen rows fail permanently.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut
from cassandra.cqltypes import _cqltypes
from cassandra.metadata import MD5Token, Murmur3Token
from cassandra.murmur3 import murmur3
from cassandra.policies import WriteType
from cassandra.protocol import (
    InvalidRequestException,
    OverloadedErrorMessage,
    ReadTimeoutErrorMessage,
    UnavailableErrorMessage,
    WriteTimeoutErrorMessage,
)
from cassandra.query import named_tuple_factory

from tools.keyspaces_load import parse_create_table

PROTOCOL = 4
DEFAULT_FETCH_SIZE = 5000
_NOT_SET = object()
MURMUR3 = "org.apache.cassandra.dht.Murmur3Partitioner"
RANDOM = "org.apache.cassandra.dht.RandomPartitioner"
KEYSPACES_DEFAULT = "com.amazonaws.cassandra.DefaultPartitioner"  # Random's token function
TOKEN_FUNCTIONS = {MURMUR3: Murmur3Token.hash_fn, RANDOM: MD5Token.hash_fn, KEYSPACES_DEFAULT: MD5Token.hash_fn}
SYSTEM_LOCAL = re.compile(r"SELECT\s+partitioner\s+FROM\s+system\.local\s*;?", re.I)

SELECT = re.compile(
    r"SELECT\s+(?P<columns>\*|.+?)\s+FROM\s+(?P<table>[\w\"]+\.[\w\"]+)"
    r"(?:\s+WHERE\s+token\((?P<pk>[\w\"]+)\)\s*>\s*%s\s+AND\s+token\((?P<pk2>[\w\"]+)\)\s*<=\s*%s)?\s*;?",
    re.I | re.S,
)
INSERT = re.compile(r"INSERT\s+INTO\s+(?P<table>[\w\"]+\.[\w\"]+)\s*\((?P<columns>[^)]*)\)\s*VALUES\s*\((?P<marks>[^)]*)\)",
                    re.I | re.S)


def _name(identifier: str) -> str:
    identifier = identifier.strip()
    return identifier[1:-1] if identifier.startswith('"') else identifier.lower()


def _table_name(text: str) -> str:
    keyspace, table = text.split(".")
    return f"{_name(keyspace)}.{_name(table)}"


def driver_type(cql_type: str):
    """The driver's type class for a CQL type name (``int``, ``map<text, list<int>>``...)."""
    name = cql_type.strip().lower()
    match = re.fullmatch(r"(\w+)<(.+)>", name, flags=re.S)
    if not match:
        return _cqltypes[name]
    parameters, depth, start = [], 0, 0
    for index, char in enumerate(match[2]):
        depth += (char == "<") - (char == ">")
        if char == "," and depth == 0:
            parameters.append(match[2][start:index])
            start = index + 1
    parameters.append(match[2][start:])
    if match[1] == "frozen":
        return driver_type(parameters[0])
    return _cqltypes[match[1]].apply_parameters([driver_type(p) for p in parameters])


def token_of(value, cql_type: str = "text", partitioner: str = MURMUR3) -> int:
    """Token of a partition key value under ``partitioner``, as Cassandra computes it (over the
    serialised key)."""
    return TOKEN_FUNCTIONS[partitioner](driver_type(cql_type).serialize(value, PROTOCOL))


def as_driver_returns(value, cql_type) -> Any:
    """``value`` after a round trip through the driver's serialiser, as a read returns it (a
    node keeps map entries sorted by key, so they come back in key order)."""
    if value is None:
        return None
    typ = driver_type(cql_type) if isinstance(cql_type, str) else cql_type
    if typ.typename == "map" and hasattr(value, "items"):
        value = dict(sorted(value.items()))
    return typ.deserialize(typ.serialize(value, PROTOCOL), PROTOCOL)


# --- errors, as the driver raises them ------------------------------------------------------------

def read_timeout() -> Exception:
    return ReadTimeoutErrorMessage(0x1200, "Operation timed out - received only 0 responses.", {
        "consistency": ConsistencyLevel.LOCAL_QUORUM, "received_responses": 0, "required_responses": 2,
        "data_retrieved": False}).to_exception()


def write_timeout() -> Exception:
    return WriteTimeoutErrorMessage(0x1100, "Operation timed out - received only 0 responses.", {
        "consistency": ConsistencyLevel.LOCAL_QUORUM, "received_responses": 0, "required_responses": 2,
        "write_type": WriteType.SIMPLE}).to_exception()


def unavailable() -> Exception:
    return UnavailableErrorMessage(0x1000, "Cannot achieve consistency level LOCAL_QUORUM", {
        "consistency": ConsistencyLevel.LOCAL_QUORUM, "required_replicas": 2, "alive_replicas": 1}).to_exception()


def operation_timed_out() -> Exception:
    return OperationTimedOut(errors={"127.0.0.1:9142": "Client request timeout. See Session.execute[_async](timeout)"},
                             last_host="127.0.0.1:9142")


def overloaded() -> Exception:
    return OverloadedErrorMessage(0x1001, "Coordinator node overloaded", {}).to_exception()


def invalid_request(message: str = "Invalid query") -> Exception:
    return InvalidRequestException(0x2200, message, {}).to_exception()


ERRORS: dict[str, Callable[[], Exception]] = {
    "read_timeout": read_timeout, "write_timeout": write_timeout, "unavailable": unavailable,
    "operation_timed_out": operation_timed_out, "overloaded": overloaded, "invalid": invalid_request,
}


# --- tables ---------------------------------------------------------------------------------------

class FakeTable:
    """Rows held by primary key and scanned in token order, as a Cassandra node holds them.

    :param columns: column names in table order.
    :param types: CQL type names.
    :param rows: initial rows (tuples in ``columns`` order), stored as the driver returns them.
    :param key: primary key columns, partition key first (default: the first column).
    :param partitioner: whose token function orders and filters the rows (a cluster has one).
    """

    def __init__(self, columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]] = (),
                 key: Sequence[str] | None = None, partitioner: str = MURMUR3) -> None:
        self.partitioner = partitioner
        self._token = TOKEN_FUNCTIONS[partitioner]
        self.columns, self.types = list(columns), list(types)
        self.key = list(key or columns[:1])
        self.partition_key = self.key[0]
        self._driver_types = [driver_type(t) for t in self.types]
        self._key_index = [self.columns.index(c) for c in self.key]
        self._partition_index = self._key_index[0]
        self._rows: dict[tuple, tuple] = {}
        self._tokens: dict[tuple, int] = {}
        self._sorted: tuple[list[int], list[tuple]] | None = None
        self._lock = threading.Lock()
        for row in rows:
            self.upsert(row)

    @classmethod
    def from_ddl(cls, statement: str) -> FakeTable:
        ddl = parse_create_table(statement)
        return cls(list(ddl.columns), list(ddl.columns.values()), key=list(ddl.primary_key))

    @property
    def rows(self) -> list[tuple]:
        """Every row, in token order."""
        return self._scan_sorted()[1]

    def __len__(self) -> int:
        return len(self._rows)

    def bind(self, columns: Sequence[str], values: Sequence[Any]) -> tuple:
        """Serialise ``values`` for ``columns`` like ``BoundStatement.bind``; return the full row
        as the driver would read it back (unset columns are null)."""
        if len(values) != len(columns):
            raise ValueError(f"Too many or too few arguments provided to bind() (got {len(values)}, expected "
                             f"{len(columns)})")
        row: list[Any] = [None] * len(self.columns)
        for column, value in zip(columns, values):
            index = self.columns.index(column)
            typ = self._driver_types[index]
            if value is None:
                continue
            try:
                row[index] = as_driver_returns(value, typ)
            except Exception as err:
                raise TypeError(f'Received an argument of invalid type for column "{column}". Expected: {typ}, '
                                f"Got: {type(value)}; ({err})") from err
        for index in self._key_index:
            if row[index] is None:
                raise invalid_request(f"Invalid null value in condition for column {self.columns[index]}")
        return tuple(row)

    def upsert(self, row: Sequence[Any], columns: Sequence[str] | None = None) -> None:
        stored = self.bind(columns or self.columns, row)
        key = tuple(stored[i] for i in self._key_index)
        token = self._token(self._driver_types[self._partition_index].serialize(stored[self._partition_index], PROTOCOL))
        with self._lock:
            previous = self._rows.get(key)
            if previous is not None and columns is not None:  # an upsert keeps columns it does not name
                stored = tuple(new if name in columns else old for name, new, old in zip(self.columns, stored, previous))
            self._rows[key] = stored
            self._tokens[key] = token
            self._sorted = None

    def _scan_sorted(self) -> tuple[list[int], list[tuple]]:
        with self._lock:
            if self._sorted is None:
                keys = sorted(self._rows, key=lambda k: (self._tokens[k], repr(k)))
                self._sorted = ([self._tokens[k] for k in keys], [self._rows[k] for k in keys])
            return self._sorted

    def scan(self, start: int | None = None, end: int | None = None) -> Sequence[tuple]:
        """Rows with ``start < token <= end`` in token order (the whole ring without bounds)."""
        tokens, rows = self._scan_sorted()
        if start is None:
            return rows
        return rows[bisect.bisect_right(tokens, start):bisect.bisect_right(tokens, end)]


class GeneratedTable:
    """A read-only table of ``n_rows`` rows made on demand, for benchmarks: only the tokens (8
    bytes a row) are held, so the fake's memory barely grows with the row count.

    :param key_bytes: serialised partition key of row ``i`` (what Murmur3 hashes).
    :param make_rows: the rows for an array of row numbers, as the driver returns them.
    """

    partitioner = MURMUR3

    def __init__(self, columns: Sequence[str], types: Sequence[str], partition_key: str, n_rows: int,
                 key_bytes: Callable[[int], bytes], make_rows: Callable[[Any], list[tuple]]) -> None:
        import numpy as np

        self.columns, self.types, self.partition_key = list(columns), list(types), partition_key
        tokens = np.fromiter((murmur3(key_bytes(i)) for i in range(n_rows)), dtype=np.int64, count=n_rows)
        self._order = np.argsort(tokens, kind="stable")
        self._tokens = tokens[self._order]
        self._make_rows = make_rows

    def __len__(self) -> int:
        return len(self._order)

    def scan(self, start: int | None = None, end: int | None = None) -> Sequence[tuple]:
        import numpy as np

        if start is None:
            return _LazyRows(self._order, self._make_rows)
        lo, hi = np.searchsorted(self._tokens, [start, end], side="right")
        return _LazyRows(self._order[lo:hi], self._make_rows)


class _LazyRows(Sequence):
    def __init__(self, numbers, make_rows) -> None:
        self._numbers, self._make_rows = numbers, make_rows

    def __len__(self) -> int:
        return len(self._numbers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._make_rows(self._numbers[index])
        return self._make_rows(self._numbers[index:index + 1])[0]


class _Projected(Sequence):
    """Some columns of a row sequence, projected page by page."""

    def __init__(self, rows: Sequence[tuple], indexes: list[int]) -> None:
        self._rows, self._getter, self._single = rows, itemgetter(*indexes), len(indexes) == 1

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            rows = self._rows[index]
            if self._single:
                return [(self._getter(row),) for row in rows]
            return list(map(self._getter, rows))
        row = self._rows[index]
        return (self._getter(row),) if self._single else self._getter(row)


# --- results and futures --------------------------------------------------------------------------

class FakeResultSet:
    """What ``Session.execute`` returns: one page, with the driver's paging interface."""

    def __init__(self, session: FakeSession, request: _Request, rows: Sequence[tuple], offset: int) -> None:
        self._session, self._request, self._all, self._offset = session, request, rows, offset
        self.column_names = request.column_names
        self.column_types = request.column_types
        page = rows[offset:offset + request.fetch_size] if request.fetch_size else rows[offset:]
        row_factory = request.row_factory or session.row_factory
        self._current_rows = row_factory(self.column_names, page) if self.column_names else []
        self._end = offset + len(page)

    @property
    def current_rows(self) -> list:
        return self._current_rows

    @property
    def has_more_pages(self) -> bool:
        return self._end < len(self._all)

    @property
    def paging_state(self) -> bytes | None:
        return str(self._end).encode() if self.has_more_pages else None

    def fetch_next_page(self) -> None:
        if not self.has_more_pages:
            self._current_rows = []
            return
        following = self._session._run(self._request, self.paging_state)
        self._all, self._offset, self._end = following._all, following._offset, following._end
        self._current_rows = following._current_rows

    def __iter__(self):
        while True:
            yield from self._current_rows
            if not self.has_more_pages:
                return
            self.fetch_next_page()

    def one(self):
        return self._current_rows[0] if self._current_rows else None

    def all(self) -> list:
        return list(self)


class FakeResponseFuture:
    """The parts of ``cassandra.cluster.ResponseFuture`` that callers and ``execute_concurrent`` use."""

    def __init__(self, request: _Request) -> None:
        self._col_names = request.column_names
        self._col_types = request.column_types
        self._continuous_paging_session = None
        self.has_more_pages = False
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[tuple] = []
        self._errbacks: list[tuple] = []
        self._result: Any = None
        self._exception: BaseException | None = None

    def _complete(self, result: Any = None, exception: BaseException | None = None) -> None:
        with self._lock:
            self._result, self._exception = result, exception
            self._event.set()
            pending = list(self._errbacks if exception is not None else self._callbacks)
        for function, args, kwargs in pending:
            function(exception if exception is not None else result, *args, **kwargs)

    def add_callback(self, fn, *args, **kwargs) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append((fn, args, kwargs))
                return
        if self._exception is None:
            fn(self._result, *args, **kwargs)

    def add_errback(self, fn, *args, **kwargs) -> None:
        with self._lock:
            if not self._event.is_set():
                self._errbacks.append((fn, args, kwargs))
                return
        if self._exception is not None:
            fn(self._exception, *args, **kwargs)

    def add_callbacks(self, callback, errback, callback_args=(), callback_kwargs=None, errback_args=(),
                      errback_kwargs=None) -> None:
        self.add_callback(callback, *callback_args, **(callback_kwargs or {}))
        self.add_errback(errback, *errback_args, **(errback_kwargs or {}))

    def clear_callbacks(self) -> None:
        with self._lock:
            self._callbacks, self._errbacks = [], []

    def result(self, timeout=None):
        self._event.wait(timeout)
        if self._exception is not None:
            raise self._exception
        return self._result


@dataclass
class FakePreparedStatement:
    query_string: str
    table: str
    columns: list[str]
    consistency_level: int | None = None
    is_idempotent: bool = False
    fetch_size: int | None = None


@dataclass
class _Request:
    kind: str  # read | write | ddl
    query: str
    table: str | None
    parameters: Any
    fetch_size: int | None
    consistency: int | None
    column_names: list[str] | None = None
    column_types: list[Any] | None = None
    columns: list[str] | None = None
    bounds: tuple[int, int] | None = None
    row_factory: Callable | None = None


# --- the session ----------------------------------------------------------------------------------

@dataclass
class FakeSession:
    """A driver ``Session`` over in-memory tables keyed ``"keyspace.table"``.

    :param execution_profiles: profile name -> ``ExecutionProfile``, as the cluster was built with
        (e.g. ``KeyspacesHook.execution_profiles()``); a request naming one gets its row factory.
    :param partitioner: what ``system.local`` reports; every table must hash with it (a table
        built with another partitioner is refused, as a cluster has one).
    :ivar calls: one ``(query, start, end, rows)`` per read query started (its first page).
    :ivar requests: every request that reached the "server", as dicts (kind, query, consistency,
        timeout, paging_state, execution_profile, outcome).
    """

    tables: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    row_factory: Callable = named_tuple_factory
    execution_profiles: dict[Any, Any] = field(default_factory=dict)
    default_fetch_size: int = DEFAULT_FETCH_SIZE
    workers: int = 4
    record_requests: bool = True
    partitioner: str = MURMUR3

    def __post_init__(self) -> None:
        mismatched = sorted(name for name, table in self.tables.items()
                            if getattr(table, "partitioner", MURMUR3) != self.partitioner and
                            self.partitioner in TOKEN_FUNCTIONS)
        if mismatched:
            raise ValueError(f"tables {mismatched} hash with another partitioner than the session's "
                             f"{self.partitioner}")
        self._lock = threading.Lock()
        self._throttles: list[tuple[str, Callable[[], Exception]]] = []
        self._row_failures: list[tuple[Callable[[dict], bool], Callable[[], Exception]]] = []
        self._crash: list | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.keyspaces: set[str] = set()

    # -- failure injection -------------------------------------------------------------------------

    def throttle(self, times: int, error: str | Callable[[], Exception] = "read_timeout", on: str = "any") -> None:
        """Make the next ``times`` requests of kind ``on`` (``read``, ``write`` or ``any``) fail."""
        factory = ERRORS[error] if isinstance(error, str) else error
        with self._lock:
            self._throttles.extend([(on, factory)] * times)

    def crash_after(self, reads: int, error: str | Callable[[], Exception] = "invalid") -> None:
        """Let ``reads`` more read requests (pages) succeed, then fail every later read, as a
        scan does when its node goes away for good."""
        with self._lock:
            self._crash = [reads, ERRORS[error] if isinstance(error, str) else error]

    def fail_rows(self, predicate: Callable[[dict], bool], error: str | Callable[[], Exception] = "invalid") -> None:
        """Make every write of a row (given as ``{column: value}``) matching ``predicate`` fail."""
        self._row_failures.append((predicate, ERRORS[error] if isinstance(error, str) else error))

    def _injected_failure(self, request: _Request) -> Exception | None:
        with self._lock:
            if self._crash is not None and request.kind == "read":
                if self._crash[0] <= 0:
                    return self._crash[1]()
                self._crash[0] -= 1
            for index, (on, factory) in enumerate(self._throttles):
                if on in ("any", request.kind):
                    del self._throttles[index]
                    return factory()
        if request.kind == "write":
            row = dict(zip(request.columns, request.parameters))
            for predicate, factory in self._row_failures:
                if predicate(row):
                    return factory()
        return None

    # -- the driver API ----------------------------------------------------------------------------

    def prepare(self, query: str, custom_payload=None, keyspace=None) -> FakePreparedStatement:
        match = INSERT.fullmatch(query.strip())
        if not match:
            raise invalid_request(f"the fake session prepares only INSERT statements, not: {query}")
        table = _table_name(match["table"])
        if table not in self.tables:
            raise invalid_request(f"unconfigured table {table}")
        columns = [_name(c) for c in match["columns"].split(",")]
        unknown = [c for c in columns if c not in self.tables[table].columns]
        if unknown or len(columns) != len(match["marks"].split(",")):
            raise invalid_request(f"Undefined column name(s) {unknown} in {query}")
        return FakePreparedStatement(query.strip(), table, columns)

    def execute(self, query, parameters=None, timeout=_NOT_SET, trace=False, custom_payload=None,
                execution_profile=None, paging_state=None, host=None, execute_as=None):
        request = self._request(query, parameters)
        self._use_profile(request, execution_profile)
        self._record(request, timeout, paging_state, execution_profile)
        return self._run(request, paging_state)

    def execute_async(self, query, parameters=None, trace=False, custom_payload=None, timeout=_NOT_SET,
                      execution_profile=None, paging_state=None, host=None, execute_as=None) -> FakeResponseFuture:
        request = self._request(query, parameters)  # binding errors raise here, as in the driver
        self._use_profile(request, execution_profile)
        self._record(request, timeout, paging_state, execution_profile)
        future = FakeResponseFuture(request)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fake-cassandra")

        def work() -> None:
            try:
                result = self._run(request, paging_state)
            except Exception as err:
                future._complete(exception=err)
            else:
                future.has_more_pages = result.has_more_pages
                future._complete(result=result.current_rows)

        self._pool.submit(work)
        return future

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- internals ---------------------------------------------------------------------------------

    def _use_profile(self, request: _Request, name) -> None:
        profile = self.execution_profiles.get(name) if name is not None else None
        if profile is not None:
            request.row_factory = profile.row_factory

    def _record(self, request: _Request, timeout, paging_state, profile) -> None:
        if self.record_requests:
            with self._lock:
                self.requests.append({
                    "kind": request.kind, "query": request.query, "consistency": request.consistency,
                    "timeout": None if timeout is _NOT_SET else timeout, "paging_state": paging_state,
                    "execution_profile": profile, "parameters": request.parameters,
                })

    def _request(self, query, parameters) -> _Request:
        consistency = getattr(query, "consistency_level", None)
        if isinstance(query, FakePreparedStatement):
            table = self.tables[query.table]
            values = tuple(parameters or ())
            table.bind(query.columns, values)  # TypeError / InvalidRequest now, like BoundStatement.bind
            return _Request("write", query.query_string, query.table, values, None, consistency,
                            columns=query.columns)
        text = getattr(query, "query_string", query).strip()
        fetch_size = getattr(query, "fetch_size", None) or self.default_fetch_size
        if SYSTEM_LOCAL.fullmatch(text):
            return _Request("system", text, None, parameters, None, consistency, ["partitioner"],
                            [driver_type("text")], ["partitioner"])
        if re.match(r"CREATE\s+TABLE", text, flags=re.I):
            return _Request("ddl", text, None, parameters, None, consistency)
        if re.match(r"CREATE\s+KEYSPACE", text, flags=re.I):
            name = re.search(r"(?:EXISTS|KEYSPACE)\s+([\w\"]+)\s+WITH", text, flags=re.I)
            return _Request("ddl", text, _name(name[1]), parameters, None, consistency)
        match = SELECT.fullmatch(text)
        if not match:
            raise invalid_request(f"the fake session does not understand: {text}")
        table_name = _table_name(match["table"])
        if table_name not in self.tables:
            raise invalid_request(f"unconfigured table {table_name}")
        table = self.tables[table_name]
        if match["columns"] == "*":
            columns = list(table.columns)
        else:
            columns = [_name(c) for c in match["columns"].split(",")]
            unknown = [c for c in columns if c not in table.columns]
            if unknown:
                raise invalid_request(f"Undefined column name(s) {unknown}")
        bounds = None
        if match["pk"]:
            if _name(match["pk"]) != table.partition_key or _name(match["pk2"]) != table.partition_key:
                raise invalid_request(f"token() must name the partition key {table.partition_key}")
            start, end = parameters
            bounds = (int(start), int(end))
        types = [driver_type(table.types[table.columns.index(c)]) for c in columns]
        return _Request("read", text, table_name, parameters, fetch_size, consistency, columns, types, columns, bounds)

    def _run(self, request: _Request, paging_state) -> FakeResultSet:
        failure = self._injected_failure(request)
        if failure is not None:
            raise failure
        if request.kind == "ddl":
            if request.table:  # CREATE KEYSPACE
                self.keyspaces.add(request.table)
            else:
                table = FakeTable.from_ddl(request.query)
                name = f"{parse_create_table(request.query).keyspace}.{parse_create_table(request.query).name}"
                self.tables.setdefault(name, table)
            return FakeResultSet(self, request, [], 0)
        if request.kind == "write":
            self.tables[request.table].upsert(request.parameters, request.columns)
            return FakeResultSet(self, request, [], 0)
        if request.kind == "system":
            return FakeResultSet(self, request, [(self.partitioner,)], 0)
        table = self.tables[request.table]
        rows = table.scan(*request.bounds) if request.bounds else table.scan()
        if request.columns != list(table.columns):
            rows = _Projected(rows, [table.columns.index(c) for c in request.columns])
        offset = int(paging_state) if paging_state else 0
        if offset == 0:
            with self._lock:
                self.calls.append((request.query, *(request.bounds or (None, None)), len(rows)))
        return FakeResultSet(self, request, rows, offset)


# --- the project's sample data as CQL tables ------------------------------------------------------

def table_from_ddl(table: str, rows: Sequence[Sequence[Any]] = (), columns: Sequence[str] | None = None,
                   partitioner: str = MURMUR3) -> FakeTable:
    """An empty (or filled) fake of ``table`` as ``sql/keyspaces/`` defines it."""
    from tools.keyspaces_load import table_ddl

    ddl = table_ddl(table)
    fake = FakeTable(list(ddl.columns), list(ddl.columns.values()), key=list(ddl.primary_key),
                     partitioner=partitioner)
    for row in rows:
        fake.upsert(row, columns)
    return fake


def tables_from_sample_data(churn, retail, partitioner: str = MURMUR3) -> dict[str, FakeTable]:
    """The sample frames as the CQL tables in sql/keyspaces/ hold them (loaded the way
    ``python -m tools.keyspaces_load`` loads them), hashed by ``partitioner``."""
    from tools.keyspaces_load import cql_rows

    tables = {}
    for name, frame in (("customers", churn), ("online_retail", retail)):
        columns, rows = cql_rows(name, frame)
        tables[f"mlops.{name}"] = table_from_ddl(name, list(rows), columns, partitioner)
    return tables
