"""Airflow's metadata database for one run of the project: PostgreSQL, as in production.

Where it comes from, in order (:func:`provision`):

1. ``MLOPS_AIRFLOW_DB_URL``: a PostgreSQL *server* the user gives, e.g.
   ``postgresql://postgres@127.0.0.1:5432/postgres``. A database of its own
   (``mlops_<purpose>_<random>``) is created on it and dropped afterwards, so runs never share
   state and nothing of the user's is touched.
2. A throwaway cluster: Debian's (or any) ``initdb``/``pg_ctl`` start a private server under
   ``$MLOPS_HOME/postgres/`` on a free loopback port; it is stopped and removed afterwards. As
   root (PostgreSQL refuses to run as root) it runs as the ``postgres`` system user.
3. SQLite under ``AIRFLOW_HOME``, when neither is possible; :attr:`MetadataDatabase.note`
   says why, and the demo prints it.

Nothing here imports Airflow: the database exists before any Airflow process starts.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

URL_VARIABLE = "MLOPS_AIRFLOW_DB_URL"
SQLALCHEMY_SCHEME = "postgresql+psycopg"  # psycopg 3, SQLAlchemy's default; docker-compose.yaml uses it too
POSTGRES_USER = "postgres"


class MetadataDatabaseError(RuntimeError):
    """The metadata database could not be created or reached."""


@dataclass
class MetadataDatabase:
    """One provisioned metadata database.

    :param kind: ``postgresql`` (on a server the user gave), ``postgresql-throwaway`` or ``sqlite``.
    :param url: the SQLAlchemy URL Airflow's ``sql_alchemy_conn`` takes.
    :param note: why this kind was chosen, for the summary.
    """

    kind: str
    url: str
    note: str = ""
    _drop: list = field(default_factory=list, repr=False)
    _restart: list = field(default_factory=list, repr=False)

    @property
    def is_postgres(self) -> bool:
        return self.kind.startswith("postgresql")

    def describe(self) -> str:
        shown = urlsplit(self.url)
        host = shown.hostname or ""
        where = f"{host}:{shown.port}{shown.path}" if host else shown.path
        return f"{self.kind} ({where})" + (f"; {self.note}" if self.note else "")

    def restart(self) -> None:
        """Restart the server of a throwaway cluster (``pg_ctl restart -m fast``): every open
        connection is cut, as when PostgreSQL restarts under a running deployment.

        :raises MetadataDatabaseError: this database is not on a throwaway cluster (a server the
            user gave is never restarted from here).
        """
        if not self._restart:
            raise MetadataDatabaseError(f"{self.kind} database: only a throwaway cluster is restarted from here")
        self._restart[0]()

    def drop(self) -> None:
        """Remove the database (and a throwaway cluster); safe to call twice."""
        while self._drop:
            self._drop.pop()()


def provision(purpose: str, home: Path, server_url: str | None = None,
              require_postgres: str | None = None) -> MetadataDatabase:
    """A fresh metadata database for ``purpose`` (``demo``, ``tests``, ``webui``).

    :param home: ``MLOPS_HOME``; a throwaway cluster or the SQLite file live under it.
    :param server_url: a PostgreSQL server URL; default ``$MLOPS_AIRFLOW_DB_URL``.
    :param require_postgres: what needs PostgreSQL (e.g. ``"the CeleryExecutor"``, whose workers
        share the database): no SQLite fallback then.
    :raises MetadataDatabaseError: ``server_url`` was given but cannot be used (a server the
        user named is never silently replaced by another kind), or no PostgreSQL could be had
        and ``require_postgres`` says SQLite will not do.
    """
    server_url = server_url if server_url is not None else os.environ.get(URL_VARIABLE, "").strip()
    name = f"mlops_{purpose}_{uuid.uuid4().hex[:8]}"
    if server_url:
        return _database_on_server(server_url, name)
    try:
        return _throwaway_cluster(home / "postgres" / name, name)
    except MetadataDatabaseError as err:
        if require_postgres:
            raise MetadataDatabaseError(f"{require_postgres} needs a PostgreSQL metadata database and none could "
                                        f"be had: {err}; set {URL_VARIABLE} to a PostgreSQL server") from None
        path = home / "airflow" / f"{name}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        database = MetadataDatabase(
            "sqlite", f"sqlite:///{path}",
            note=f"no PostgreSQL: {err}; set {URL_VARIABLE} to a PostgreSQL server to use one",
        )
        database._drop.append(lambda: path.unlink(missing_ok=True))
        return database


# ---------------------------------------------------------------- a server the user gave
def _database_on_server(server_url: str, name: str) -> MetadataDatabase:
    parts = urlsplit(server_url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise MetadataDatabaseError(f"{URL_VARIABLE}={safe_url(server_url)!r} is not a postgresql:// URL")
    _admin(server_url, f'CREATE DATABASE "{name}"')
    url = urlunsplit((SQLALCHEMY_SCHEME, parts.netloc, f"/{name}", parts.query, ""))
    database = MetadataDatabase("postgresql", url, note=f"database {name} on the server in {URL_VARIABLE}")
    database._drop.append(lambda: _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return database


def _admin(server_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server's admin DB."""
    import psycopg

    try:
        connection = psycopg.connect(libpq_url(server_url), connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as err:
        raise MetadataDatabaseError(f"cannot reach the PostgreSQL server {safe_url(server_url)}: {err}".strip()) \
            from None
    try:
        connection.execute(statement)
    except psycopg.Error as err:
        raise MetadataDatabaseError(f"{statement.split(' (')[0]} on {safe_url(server_url)} failed: {err}") from None
    finally:
        connection.close()


def libpq_url(url: str) -> str:
    """libpq accepts ``postgresql://`` but not SQLAlchemy's ``postgresql+driver://``."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path or "/postgres", parts.query, ""))


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def server_reachable(server_url: str) -> str | None:
    """``None`` when the server answers, else the reason it does not (for skip messages)."""
    import psycopg

    try:
        psycopg.connect(libpq_url(server_url), connect_timeout=5).close()
    except psycopg.OperationalError as err:
        return str(err).strip()
    return None


# ---------------------------------------------------------------- a throwaway cluster
def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return str(versions[-1]) if versions else None


def _as_cluster_owner() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) that runs PostgreSQL's programs: ourselves, or, as root,
    the ``postgres`` system user through ``runuser``."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        owner = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise MetadataDatabaseError(f"running as root and there is no {POSTGRES_USER!r} user to run "
                                    "PostgreSQL as (it refuses root)") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise MetadataDatabaseError("running as root without runuser to start PostgreSQL as another user")
    return [runuser, "-u", POSTGRES_USER, "--"], owner.pw_uid, owner.pw_gid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _throwaway_cluster(data_dir: Path, name: str) -> MetadataDatabase:
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise MetadataDatabaseError("PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install "
                                    "postgresql)")
    prefix, uid, gid = _as_cluster_owner()
    data_dir.mkdir(parents=True)
    if uid is not None:
        for path in (data_dir.parent, data_dir):
            os.chown(path, uid, gid)
    port = _free_port()
    log = data_dir.parent / f"{name}.log"
    log.touch()
    if uid is not None:
        os.chown(log, uid, gid)

    def run(*argv: str, timeout: float = 120) -> None:
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=data_dir.parent)
        if done.returncode != 0:
            raise MetadataDatabaseError(f"{Path(argv[0]).name} failed ({done.returncode}): "
                                        f"{(done.stderr or done.stdout).strip()[-500:]}")

    try:
        run(initdb, "-D", str(data_dir), "-U", POSTGRES_USER, "-A", "trust", "-E", "UTF8",
            "--no-sync", "--no-instructions")
        options = (f"-p {port} -c listen_addresses=127.0.0.1 -k {data_dir} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        run(pg_ctl, "-D", str(data_dir), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    except (MetadataDatabaseError, OSError, subprocess.TimeoutExpired) as err:
        with contextlib.suppress(Exception):
            run(pg_ctl, "-D", str(data_dir), "-m", "immediate", "stop", timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
        log.unlink(missing_ok=True)
        raise MetadataDatabaseError(f"could not start a throwaway PostgreSQL: {err}") from None

    server = f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/postgres"
    database = _database_on_server(server, "airflow")
    database.kind = "postgresql-throwaway"
    database.note = f"a throwaway PostgreSQL cluster under {data_dir.parent} (set {URL_VARIABLE} to use a server)"

    def remove_cluster() -> None:
        with contextlib.suppress(Exception):
            run(pg_ctl, "-D", str(data_dir), "-m", "fast", "-w", "stop", timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
        log.unlink(missing_ok=True)

    database._drop[:] = [remove_cluster]  # the cluster goes, and its database with it
    # pg_ctl restart starts the server again with the options it was started with (postmaster.opts).
    database._restart[:] = [lambda: run(pg_ctl, "-D", str(data_dir), "-l", str(log), "-m", "fast", "-w", "-t", "60",
                                        "restart")]
    return database

