"""A Redis database of its own for one test session's Celery broker.

Celery keeps its queues, unacknowledged messages and bindings as keys of the broker URL's
database, and prefixes its broadcast channels with the database number, so a database number
isolates one Airflow from another on the same server. Test sessions that run at the same time
(other checkouts on the machine) each claim a free number from 1 to 15 with a lease key
(``SET NX`` with an expiry, so a crashed session's claim lapses) and flush it when they are done.
Database 0, the project's default broker, is never used.

The server is ``MLOPS_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``); without one that
answers, the tests that need it are skipped, naming it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

TEST_REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
LEASE_KEY = "mlops-tests:lease"
OWNER_KEY = "mlops-tests:owner"  # marks a database as the tests', so a lapsed claim's leftovers may go
LEASE_S = 3 * 3600
DATABASES = range(1, 16)


class NoFreeDatabase(RuntimeError):
    """Every database number is claimed by another session or holds someone else's keys."""


def claim(server_url: str = TEST_REDIS_URL) -> tuple[str, str]:
    """Claim a free database; return ``(its URL, the lease token)``. Release with :func:`release`."""
    import redis

    token = uuid.uuid4().hex
    for number in DATABASES:
        client = redis.Redis.from_url(f"{server_url}/{number}", socket_connect_timeout=5)
        try:
            if not client.set(LEASE_KEY, token, nx=True, ex=LEASE_S):
                continue  # another session's
            if client.dbsize() > 1 and not client.exists(OWNER_KEY):
                client.delete(LEASE_KEY)  # keys of something else than these tests: leave them be
                continue
            with client.pipeline(transaction=True) as claim_it:  # a lapsed claim's leftovers go, atomically
                claim_it.flushdb().set(LEASE_KEY, token, ex=LEASE_S).set(OWNER_KEY, "mlops tests").execute()
            return f"{server_url}/{number}", token
        except redis.ResponseError:  # the server has fewer databases
            break
        finally:
            client.close()
    raise NoFreeDatabase(f"no free database on {server_url} (tried {DATABASES.start}-{DATABASES.stop - 1})")


def release(url: str, token: str) -> None:
    """Flush the database if the lease is still ours."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        if client.get(LEASE_KEY) == token.encode():
            client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def redis_broker_or_skip() -> Iterator[str]:
    """The URL of a claimed Redis database for a Celery broker; flushed afterwards.

    Skips the test, naming the server, when Redis does not answer or has no free database.
    """
    from tools.airflow_env import broker_unreachable

    reason = broker_unreachable(TEST_REDIS_URL)
    if reason:
        pytest.skip(f"needs Redis as the Celery broker: {TEST_REDIS_URL} is not reachable ({reason}); "
                    "set MLOPS_TEST_REDIS_URL to a server")
    try:
        url, token = claim()
    except NoFreeDatabase as err:
        pytest.skip(f"needs a Redis database for the Celery broker: {err}")
    try:
        yield url
    finally:
        release(url, token)
