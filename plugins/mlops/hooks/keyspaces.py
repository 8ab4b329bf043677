"""Amazon Keyspaces (and plain Cassandra) over an Airflow connection.

Why one module of this length: the hook, its connection settings, the token ring and the
retrying write protocol are one driver boundary; turning rows into Arrow is
:mod:`mlops.ingest.cql_arrow`.

Connection ``keyspaces_default`` (type ``generic``):

===============  ==============================================================================
field            meaning
===============  ==============================================================================
host             ``cassandra.<region>.amazonaws.com`` for Keyspaces, a node for Cassandra
port             default 9142 with TLS (Keyspaces), 9042 without
login/password   service-specific credentials (``auth`` ``password``)
extra.auth       ``sigv4`` (default for an ``*.amazonaws.com`` host without a login),
                 ``password`` (default with a login) or ``none``
extra.aws_conn_id  AWS connection whose credentials sign SigV4 (default ``aws_default``);
                 ``null`` uses the worker's role (boto3's default credential chain)
extra.region_name  SigV4 region; default: taken from the Keyspaces host name
extra.ssl        TLS on (default) or off (``false``: plain Cassandra, e.g. the compose file)
extra.ca_certs   PEM bundle to verify the server with; default: the Amazon Trust Services and
                 Starfield roots that Keyspaces certificates chain to (from certifi's bundle)
extra.local_dc   data centre for the load-balancing policy; default: the region (Keyspaces)
===============  ==============================================================================

Reads run at ``LOCAL_QUORUM`` or ``LOCAL_ONE`` as configured, writes at ``LOCAL_QUORUM`` (the
only write consistency Keyspaces accepts). Every request has a timeout; throttling (Keyspaces
reports it as read/write timeouts) and timeouts are retried with exponential backoff and full
jitter (tenacity, on the schedule of :class:`Backoff`), then fail with
:class:`KeyspacesRetriesExhausted`, which says what to look at.

The cassandra driver, pyarrow and boto3 are imported inside functions: DAG files import this
module at parse time.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from airflow.sdk.bases.hook import BaseHook

T = TypeVar("T")
log = logging.getLogger(__name__)

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
KEYSPACES_PORT = 9142
CASSANDRA_PORT = 9042
READ_CONSISTENCY_LEVELS = ("LOCAL_QUORUM", "LOCAL_ONE")
WRITE_CONSISTENCY = "LOCAL_QUORUM"
READ_PROFILE = "mlops_read"
# The roots Amazon Keyspaces certificates chain to (Amazon Trust Services, cross-signed by
# Starfield), as labelled in the Mozilla bundle that certifi ships.
KEYSPACES_ROOT_CAS = (
    "Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2", "Starfield Root Certificate Authority - G2",
)  # fmt: skip
_KEYSPACES_HOST = re.compile(r"^cassandra(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class UnsupportedPartitioner(ValueError):
    """The cluster's partitioner has a token ring this project cannot split into ranges."""


@dataclass(frozen=True)
class TokenRing:
    """The tokens a partitioner gives: every token is in ``(min_token, max_token]``.

    :param partitioner: the class name ``system.local`` reports.
    :param min_token: the partitioner's minimum token, which no key hashes to (Murmur3 maps
        ``-2**63`` to ``2**63 - 1``; RandomPartitioner's tokens are ``abs(md5)``, never -1).
    :param max_token: the largest token.
    """

    partitioner: str
    min_token: int
    max_token: int

    def ranges(self, segments: int) -> list[tuple[int, int]]:
        """The ring split into ``segments`` contiguous ``(start, end]`` ranges, the first starting
        at ``min_token`` and the last ending at ``max_token``: no gap, no overlap."""
        if segments < 1:
            raise ValueError(f"segments must be >= 1, got {segments}")
        span = (self.max_token - self.min_token) // segments
        bounds = [self.min_token + i * span for i in range(segments)] + [self.max_token]
        return list(zip(bounds[:-1], bounds[1:]))


MURMUR3 = TokenRing("org.apache.cassandra.dht.Murmur3Partitioner", MIN_TOKEN, MAX_TOKEN)
RANDOM = TokenRing("org.apache.cassandra.dht.RandomPartitioner", -1, 2**127)
# Amazon Keyspaces' default partitioner "returns the same token function results as the
# RandomPartitioner" (Keyspaces developer guide, "Working with partitioners").
KEYSPACES_DEFAULT = TokenRing("com.amazonaws.cassandra.DefaultPartitioner", RANDOM.min_token, RANDOM.max_token)
RINGS = {ring.partitioner: ring for ring in (MURMUR3, RANDOM, KEYSPACES_DEFAULT)}
PARTITIONER_QUERY = "SELECT partitioner FROM system.local"


def token_ring(partitioner: str) -> TokenRing:
    """The ring of ``partitioner`` (the class name ``system.local`` reports), or
    :class:`UnsupportedPartitioner` naming it: an order-preserving partitioner's tokens are the
    keys' bytes, which cannot be split into ranges without knowing the keys."""
    ring = RINGS.get(str(partitioner).strip())
    if ring is None:
        raise UnsupportedPartitioner(
            f"the cluster's partitioner is {partitioner!r}; token-range reads know {', '.join(RINGS)}. Amazon "
            "Keyspaces offers those three (set one per Region in the Keyspaces console or with CQL)")
    return ring


def token_ranges(segments: int, ring: TokenRing = MURMUR3) -> list[tuple[int, int]]:
    """Split ``ring`` (default Murmur3's) into ``segments`` contiguous ``(start, end]`` ranges;
    see :meth:`TokenRing.ranges`."""
    return ring.ranges(segments)


# --- errors and retries ---------------------------------------------------------------------------


class KeyspacesRetriesExhausted(RuntimeError):
    """A request kept failing with throttling or timeouts after every retry."""

    def __init__(self, what: str, attempts: int, elapsed: float, last_error: BaseException) -> None:
        self.what, self.attempts, self.elapsed, self.last_error = what, attempts, elapsed, last_error
        super().__init__(
            f"{what}: gave up after {attempts} attempts in {elapsed:.1f}s; last error "
            f"{type(last_error).__name__}: {last_error}. Amazon Keyspaces reports throttling as read/write "
            "timeouts: check the table's ReadThrottleEvents, WriteThrottleEvents and "
            "StoragePartitionThroughputCapacityExceeded metrics, raise its capacity, or lower the "
            "number of segments or the write concurrency."
        )


class KeyspacesWriteError(RuntimeError):
    """Rows failed to be written; :attr:`report` counts them by error."""

    def __init__(self, report: WriteReport) -> None:
        self.report = report
        errors = ", ".join(f"{name}: {count}" for name, count in report.errors.most_common())
        samples = "; ".join(f"{s['key']} -> {s['error']}" for s in report.samples)
        super().__init__(
            f"{report.failed} of {report.rows} rows failed to be written to {report.table} "
            f"({errors}); first failures: {samples}"
        )


def retryable_errors() -> tuple[type[BaseException], ...]:
    """Driver exceptions that mean "try again later": timeouts, throttling, overload."""
    from cassandra import OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError

    return (ReadTimeout, WriteTimeout, Unavailable, OperationTimedOut, OverloadedErrorMessage,
            IsBootstrappingErrorMessage, ServerError)


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is transient; ``NoHostAvailable`` is when every host failed transiently."""
    from cassandra.cluster import NoHostAvailable

    if isinstance(error, NoHostAvailable):
        errors = list((error.errors or {}).values())
        return bool(errors) and all(is_retryable(e) for e in errors)
    return isinstance(error, retryable_errors())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: retry ``n`` (1-based) waits ``uniform(0, min(cap,
    base * 2**(n-1)))`` seconds; at most ``max_attempts`` attempts in all."""

    max_attempts: int = 8
    base: float = 0.2
    cap: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base < 0 or self.cap < 0:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, retry: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** (retry - 1)))

    def retrying(self, rng: random.Random, sleep: Callable[[float], None], retry, before_sleep=None, **kwargs):
        """A :class:`tenacity.Retrying` on this schedule: at most ``max_attempts`` attempts, retry
        ``n`` waiting :meth:`delay` ``(n, rng)``, ``retry`` deciding which outcomes are retried."""
        from tenacity import Retrying, stop_after_attempt

        return Retrying(stop=stop_after_attempt(self.max_attempts), sleep=sleep, retry=retry,
                        wait=lambda state: self.delay(state.attempt_number, rng), before_sleep=before_sleep,
                        **kwargs)


class _RowsToRetry(Exception):  # noqa: N818 - a signal inside write_rows, never raised to a caller
    """Some rows of a write attempt were throttled or timed out: try them again."""


@dataclass
class WriteReport:
    """Outcome of a bulk write: every row is counted as written or failed, never dropped."""

    table: str
    rows: int = 0
    written: int = 0
    failed: int = 0
    retried: int = 0
    errors: Counter = field(default_factory=Counter)
    samples: list[dict[str, str]] = field(default_factory=list)
    max_samples: int = 5

    def record_failure(self, key: Any, error: BaseException) -> None:
        self.failed += 1
        self.errors[type(error).__name__] += 1
        if len(self.samples) < self.max_samples:
            self.samples.append({"key": repr(key), "error": f"{type(error).__name__}: {error}"[:300]})

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "written": self.written, "failed": self.failed,
                "retried": self.retried, "errors": dict(self.errors), "samples": list(self.samples)}


# --- the connection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyspacesConnectionSettings:
    """What an Airflow connection says about reaching Keyspaces or Cassandra."""

    host: str
    port: int
    ssl: bool
    auth: str  # sigv4 | password | none
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    aws_conn_id: str | None = "aws_default"
    region_name: str | None = None
    ca_certs: str | None = None
    local_dc: str | None = None

    @property
    def is_keyspaces(self) -> bool:
        return bool(_KEYSPACES_HOST.match(self.host))

    @classmethod
    def from_connection(cls, conn) -> KeyspacesConnectionSettings:
        extra = conn.extra_dejson
        if not conn.host:
            raise ValueError(f"connection {conn.conn_id!r} has no host")
        host = conn.host.strip()
        match = _KEYSPACES_HOST.match(host)
        ssl = bool(extra.get("ssl", True))
        auth = extra.get("auth") or ("password" if conn.login else "sigv4" if match else "none")
        if auth not in ("sigv4", "password", "none"):
            raise ValueError(f"connection {conn.conn_id!r}: auth {auth!r} is not sigv4, password or none")
        if auth == "password" and not (conn.login and conn.password):
            raise ValueError(f"connection {conn.conn_id!r}: auth password needs login and password")
        region = extra.get("region_name") or (match["region"] if match else None)
        if auth == "sigv4":
            if not ssl:
                raise ValueError(f"connection {conn.conn_id!r}: SigV4 (Amazon Keyspaces) needs TLS; remove ssl: false")
            if not region:
                raise ValueError(f"connection {conn.conn_id!r}: SigV4 needs extra.region_name (host {host!r} "
                                 "does not name a region)")
        return cls(
            host=host,
            port=int(conn.port or (KEYSPACES_PORT if ssl else CASSANDRA_PORT)),
            ssl=ssl,
            auth=auth,
            login=conn.login,
            password=conn.password,
            aws_conn_id=extra.get("aws_conn_id", "aws_default"),
            region_name=region,
            ca_certs=extra.get("ca_certs"),
            local_dc=extra.get("local_dc") or (region if match else None),
        )


def keyspaces_ca_bundle() -> str:
    """PEM text of the root certificates Amazon Keyspaces chains to (:data:`KEYSPACES_ROOT_CAS`)."""
    from pathlib import Path

    import certifi

    text = Path(certifi.where()).read_text(encoding="ascii")
    blocks = re.findall(r'# Label: "([^"]+)"\n.*?(-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----)',
                        text, flags=re.S)
    found = {label: pem for label, pem in blocks if label in KEYSPACES_ROOT_CAS}
    if not found:
        raise RuntimeError(f"none of {KEYSPACES_ROOT_CAS} is in {certifi.where()}; set extra.ca_certs")
    return "\n".join(found.values()) + "\n"


def ssl_context_for(settings: KeyspacesConnectionSettings):
    """A client TLS context that verifies the server certificate and host name, or ``None``."""
    import ssl

    if not settings.ssl:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca_certs:
        context.load_verify_locations(cafile=settings.ca_certs)
    else:
        context.load_verify_locations(cadata=keyspaces_ca_bundle())
    return context


class KeyspacesHook(BaseHook):
    """Sessions, paged reads and concurrent writes against Keyspaces or Cassandra.

    :param keyspaces_conn_id: Airflow connection id.
    :param consistency: read consistency, ``LOCAL_QUORUM`` (default) or ``LOCAL_ONE``; writes are
        always ``LOCAL_QUORUM``.
    :param request_timeout: client-side seconds per request (one page or one write).
    :param backoff: retry schedule for throttling and timeouts.
    :param sleep: how to wait between retries (tests pass a recorder).
    :param seed: seed of the jitter (``None``: unpredictable, as in production).
    """

    conn_name_attr = "keyspaces_conn_id"
    default_conn_name = "keyspaces_default"
    conn_type = "generic"
    hook_name = "Amazon Keyspaces"

    def __init__(self, keyspaces_conn_id: str = default_conn_name, consistency: str = "LOCAL_QUORUM",
                 request_timeout: float = 30.0, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None) -> None:
        super().__init__()
        if consistency not in READ_CONSISTENCY_LEVELS:
            raise ValueError(f"consistency {consistency!r} is not LOCAL_QUORUM or LOCAL_ONE")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0, got {request_timeout}")
        self.keyspaces_conn_id = keyspaces_conn_id
        self.consistency = consistency
        self.request_timeout = request_timeout
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._rng = random.Random(seed)  # noqa: S311 - backoff jitter, not a secret
        self._cluster = None
        self._session = None

    # -- connecting --------------------------------------------------------------------------------

    @classmethod
    def connection_exists(cls, conn_id: str = default_conn_name) -> bool:
        """Whether Airflow knows connection ``conn_id`` (without connecting to anything)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            cls.get_connection(conn_id)
        except AirflowNotFoundException:
            return False
        return True

    def connection_settings(self) -> KeyspacesConnectionSettings:
        return KeyspacesConnectionSettings.from_connection(self.get_connection(self.keyspaces_conn_id))

    def get_session(self):
        """The driver session (connected on first use, then reused until :meth:`close`)."""
        if self._session is None:
            self._session = self._connect()
        return self._session

    def get_conn(self):
        """Airflow's name for :meth:`get_session`."""
        return self.get_session()

    def _auth_provider(self, settings: KeyspacesConnectionSettings):
        if settings.auth == "password":
            from cassandra.auth import PlainTextAuthProvider

            return PlainTextAuthProvider(username=settings.login, password=settings.password)
        if settings.auth == "sigv4":
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
            from cassandra_sigv4.auth import SigV4AuthProvider

            # The boto3 session itself, not a snapshot of its credentials: assumed-role credentials
            # refresh, and the driver signs again on every new connection.
            aws = AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type="sts", region_name=settings.region_name)
            return SigV4AuthProvider(aws.get_session(region_name=settings.region_name))
        return None

    def execution_profiles(self, local_dc: str | None = None) -> dict[Any, Any]:
        """The driver execution profiles of the cluster: the default one for writes
        (``LOCAL_QUORUM``) and :data:`READ_PROFILE` for reads (the configured consistency, plain
        tuples as rows: cheaper than the driver's default named tuples, and read by position).
        Both time out after ``request_timeout`` and leave retries to :meth:`call_with_retries`."""
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, FallthroughRetryPolicy, TokenAwarePolicy
        from cassandra.query import tuple_factory

        def common():
            return {"request_timeout": self.request_timeout, "retry_policy": FallthroughRetryPolicy(),
                    "load_balancing_policy": TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc))}

        return {
            EXEC_PROFILE_DEFAULT: ExecutionProfile(consistency_level=ConsistencyLevel.LOCAL_QUORUM, **common()),
            READ_PROFILE: ExecutionProfile(consistency_level=getattr(ConsistencyLevel, self.consistency),
                                           row_factory=tuple_factory, **common()),
        }

    def _connect(self):
        from cassandra.cluster import Cluster

        settings = self.connection_settings()
        profiles = self.execution_profiles(settings.local_dc)
        options: dict[str, Any] = {}
        if settings.ssl:
            options["ssl_context"] = ssl_context_for(settings)
            # Every Keyspaces peer presents the service host's certificate; peers are found by IP.
            options["ssl_options"] = {"server_hostname": settings.host}
        if settings.is_keyspaces:
            options["protocol_version"] = 4
        self._cluster = Cluster(
            [settings.host], port=settings.port, auth_provider=self._auth_provider(settings),
            execution_profiles=profiles, connect_timeout=self.request_timeout, **options,
        )
        self.log.info("connecting to %s:%d (tls=%s, auth=%s)", settings.host, settings.port, settings.ssl,
                      settings.auth)
        return self.call_with_retries(self._cluster.connect, f"connect to {settings.host}:{settings.port}")

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None

    # -- retries -----------------------------------------------------------------------------------

    def call_with_retries(self, action: Callable[[], T], what: str) -> T:
        """Run ``action``; on throttling or a timeout wait (backoff + jitter) and try again.

        :raises KeyspacesRetriesExhausted: after ``backoff.max_attempts`` transient failures.
        Other errors propagate at once.
        """
        from tenacity import retry_if_exception

        def log_retry(state) -> None:
            self.log.warning("%s: %s (attempt %d of %d); retrying in %.2fs", what,
                             type(state.outcome.exception()).__name__, state.attempt_number,
                             self.backoff.max_attempts, state.upcoming_sleep)

        def exhausted(state):
            error = state.outcome.exception()
            raise KeyspacesRetriesExhausted(what, state.attempt_number, state.seconds_since_start, error) from error

        retrying = self.backoff.retrying(self._rng, self._sleep, retry_if_exception(is_retryable), log_retry,
                                         retry_error_callback=exhausted)
        return retrying(action)

    # -- reading -----------------------------------------------------------------------------------

    def partitioner(self) -> str:
        """The partitioner the cluster hashes keys with: ``system.local``'s ``partitioner`` column
        (on Amazon Keyspaces an account setting per Region, picked up by a new connection)."""
        from cassandra import ConsistencyLevel
        from cassandra.query import SimpleStatement

        session = self.get_session()
        statement = SimpleStatement(PARTITIONER_QUERY, consistency_level=ConsistencyLevel.LOCAL_ONE)
        result = self.call_with_retries(
            lambda: session.execute(statement, timeout=self.request_timeout, execution_profile=READ_PROFILE),
            PARTITIONER_QUERY)
        row = result.one()
        if row is None:
            raise UnsupportedPartitioner(f"{PARTITIONER_QUERY} returned no row: the partitioner is unknown")
        return row[0]

    def token_ring(self) -> TokenRing:
        """The token ring of :meth:`partitioner`; :class:`UnsupportedPartitioner` for one without."""
        return token_ring(self.partitioner())

    def read_statement(self, query: str, fetch_size: int):
        from cassandra import ConsistencyLevel
        from cassandra.query import SimpleStatement

        if fetch_size < 1:
            raise ValueError(f"fetch_size must be >= 1, got {fetch_size}")
        return SimpleStatement(query, fetch_size=fetch_size,
                               consistency_level=getattr(ConsistencyLevel, self.consistency), is_idempotent=True)

    def iter_pages(self, query: str, parameters: Sequence[Any], fetch_size: int
                   ) -> Iterator[tuple[list[str], list[Any], list[Sequence[Any]]]]:
        """Yield ``(column_names, column_types, rows)`` one driver page at a time.

        Each page is its own request (resumed from the previous page's paging state), so a page
        that hits throttling is retried alone and memory holds one page at a time.
        """
        session = self.get_session()
        statement = self.read_statement(query, fetch_size)
        paging_state, page = None, 0
        while True:
            page += 1
            result = self.call_with_retries(
                lambda state=paging_state: session.execute(
                    statement, parameters, timeout=self.request_timeout, paging_state=state,
                    execution_profile=READ_PROFILE,
                ),
                f"page {page} of {query} {tuple(parameters)}",
            )
            rows = result.current_rows
            if rows:
                yield list(result.column_names), list(result.column_types or []), rows
            paging_state = result.paging_state
            if not paging_state:
                return

    # -- writing -----------------------------------------------------------------------------------

    def prepare_insert(self, keyspace: str, table: str, columns: Sequence[str]):
        """A prepared, idempotent ``INSERT`` (an upsert in CQL) at ``LOCAL_QUORUM``."""
        from cassandra import ConsistencyLevel

        names = ", ".join(quote_identifier(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        # Identifiers are quoted by quote_identifier; values are bound to the prepared statement.
        query = f"INSERT INTO {quote_identifier(keyspace)}.{quote_identifier(table)} ({names}) VALUES ({marks})"  # noqa: S608
        session = self.get_session()
        prepared = self.call_with_retries(lambda: session.prepare(query), f"prepare {query}")
        prepared.consistency_level = getattr(ConsistencyLevel, WRITE_CONSISTENCY)
        prepared.is_idempotent = True
        return prepared

    def write_rows(self, keyspace: str, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                   concurrency: int = 32, chunk_size: int = 2000, key_columns: Sequence[str] | None = None
                   ) -> WriteReport:
        """Upsert ``rows`` (tuples in ``columns`` order) with concurrent prepared inserts.

        Rows go out ``chunk_size`` at a time (memory stays bounded for any row count), at most
        ``concurrency`` in flight. Rows that fail with throttling or a timeout are retried with
        backoff; rows that still fail, or fail otherwise (e.g. a value of the wrong type), are
        counted in the returned :class:`WriteReport` by error, with samples: nothing is swallowed.
        The caller decides what to do with failures (see :class:`KeyspacesWriteError`).

        :param key_columns: columns that identify a row in failure samples (default: all).
        """
        from cassandra.concurrent import execute_concurrent_with_args
        from tenacity import retry_if_exception_type

        if concurrency < 1 or chunk_size < 1:
            raise ValueError(f"concurrency and chunk_size must be >= 1, got {concurrency}, {chunk_size}")
        prepared = self.prepare_insert(keyspace, table, columns)
        session = self.get_session()
        key_index = [list(columns).index(c) for c in key_columns] if key_columns else None
        report = WriteReport(table=f"{keyspace}.{table}")
        iterator = iter(rows)
        last = self.backoff.max_attempts

        def log_retry(state) -> None:
            error = state.outcome.exception()
            self.log.warning("%s: %d of %d rows throttled or timed out (attempt %d of %d); retrying in %.2fs",
                             report.table, len(error.args[0]), error.args[1], state.attempt_number, last,
                             state.upcoming_sleep)

        while chunk := list(islice(iterator, chunk_size)):
            report.rows += len(chunk)
            pending = chunk
            # Each attempt writes the rows still pending; throttled ones go round again (tenacity's
            # schedule) until the last attempt, where every failure is counted.
            for attempt in self.backoff.retrying(self._rng, self._sleep, retry_if_exception_type(_RowsToRetry),
                                                 log_retry):
                with attempt:
                    final = attempt.retry_state.attempt_number >= last
                    results = execute_concurrent_with_args(session, prepared, pending, concurrency=concurrency,
                                                           raise_on_first_error=False)
                    retry = []
                    for row, (ok, outcome) in zip(pending, results):
                        key = tuple(row[i] for i in key_index) if key_index else tuple(row)
                        if ok:
                            report.written += 1
                        elif is_retryable(outcome) and not final:
                            retry.append(row)
                        else:
                            report.record_failure(key, outcome)
                    if retry:
                        report.retried += len(retry)
                        attempted, pending = len(pending), retry
                        raise _RowsToRetry(retry, attempted)
            self.log.info("%s: %d rows written, %d failed so far", report.table, report.written, report.failed)
        return report

    def execute(self, query: str, parameters: Sequence[Any] | None = None):
        """One statement (DDL or a small query) at ``LOCAL_QUORUM``, with retries."""
        from cassandra import ConsistencyLevel
        from cassandra.query import SimpleStatement

        statement = SimpleStatement(query, consistency_level=getattr(ConsistencyLevel, WRITE_CONSISTENCY))
        session = self.get_session()
        return self.call_with_retries(
            lambda: session.execute(statement, parameters, timeout=self.request_timeout), query.strip()[:200]
        )


def quote_identifier(name: str) -> str:
    """``name`` as a quoted CQL identifier (case kept, ``"`` doubled)."""
    return '"' + name.replace('"', '""') + '"'

