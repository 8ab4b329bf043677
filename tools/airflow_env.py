"""Point Airflow at this project (dags/, plugins/, a local AIRFLOW_HOME) before it is imported,
and the settings of the CeleryExecutor the project scales out with.

Used by the demo, the web UI launcher and the end-to-end tests; the Makefile exports the same.
:class:`CelerySettings` is what :class:`~tools.airflow_stack.AirflowStack` runs with the
CeleryExecutor and what docker-compose.yaml sets (``tests/unit/test_compose.py`` compares them).
``python -m tools.airflow_env pools`` creates the pools the DAGs use (:data:`mlops.dag_defaults.POOLS`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from mlops.core.paths import PROJECT_ROOT
from mlops.core.settings import get_settings

EXECUTOR_VARIABLE = "MLOPS_AIRFLOW_EXECUTOR"
EXECUTORS = ("local", "celery")
BROKER_URL_VARIABLE = "MLOPS_CELERY_BROKER_URL"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
# Redis hands a message its worker took but never acknowledged (tasks are acknowledged when they
# end) to another worker after this long: it must exceed the longest task. A lost worker's task
# is failed and retried by the scheduler's heartbeat check long before that.
VISIBILITY_TIMEOUT_S = 86400


def configure(parallelism: int = 4) -> dict[str, str]:
    """Set (without overriding) the Airflow environment for this project; return it."""
    settings = get_settings()
    env = {
        "AIRFLOW_HOME": str(settings.home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "GX_ANALYTICS_ENABLED": "false",
    }
    for key, value in env.items():
        os.environ.setdefault(key, value)
    plugins = str(PROJECT_ROOT / "plugins")
    if plugins not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (plugins, os.environ.get("PYTHONPATH")) if p)
    return {key: os.environ[key] for key in env}


def migrate_db() -> None:
    """Create or upgrade the Airflow metadata database (SQLite under AIRFLOW_HOME)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ.copy())


def run_dag(dag_id: str, conf: dict | None = None):
    """Run one DAG in-process with ``dag.test()``; return the finished DagRun."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.get_dag(dag_id).test(run_conf=conf or {})


def xcom(run, task_id: str, key: str = "return_value"):
    """The XCom a task of a finished run pushed (``None`` if it pushed nothing)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key)
        rows = session.scalars(query).all()
        return XComModel.deserialize_value(rows[0]) if rows else None


def task_states(run) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id)).all()
        return {ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(ti.state) for ti in tis}


# ---------------------------------------------------------------- the CeleryExecutor
class CelerySettingsError(ValueError):
    """A CeleryExecutor setting cannot work: names the setting and the value."""


@dataclass(frozen=True)
class CeleryWorker:
    """One ``airflow celery worker``: the queues it serves and how many tasks it runs at once.

    :param name: its Celery node name is ``<name>@<host>``; its component and log are ``worker-<name>``.
    """

    name: str
    queues: tuple[str, ...]
    concurrency: int

    @property
    def component(self) -> str:
        return f"worker-{self.name}"

    def argv(self) -> list[str]:
        """The ``airflow`` arguments that start it (docker-compose.yaml's worker commands are these).

        Task logs are files under ``AIRFLOW_HOME/logs``, which every component shares (one
        machine, or compose's ``airflow-logs`` volume), so the worker serves none over HTTP.
        """
        return ["celery", "worker", "--queues", ",".join(self.queues), "--concurrency", str(self.concurrency),
                "--celery-hostname", f"{self.name}@%h", "--skip-serve-logs"]


@dataclass(frozen=True)
class CelerySettings:
    """Airflow on the CeleryExecutor: Redis as the broker, PostgreSQL as the result backend.

    :param broker_url: ``redis://host:port/db``.
    :param result_backend: ``db+postgresql+psycopg://...``: Celery's task states, in PostgreSQL.
    :param workers: the workers to run, one per queue by default (:func:`default_workers`).
    """

    broker_url: str
    result_backend: str
    workers: tuple[CeleryWorker, ...]

    def environment(self) -> dict[str, str]:
        """The Airflow configuration, as ``AIRFLOW__*`` variables every component gets."""
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.result_backend,
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        }

    @property
    def slots(self) -> int:
        """Tasks the workers run at once (the scheduler's parallelism should be no less)."""
        return sum(worker.concurrency for worker in self.workers)


def default_queue() -> str:
    """Airflow's default queue (``[operators] default_queue``): every task without ``queue=``."""
    return os.environ.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "").strip() or "default"


def _positive(variable: str, default: int) -> int:
    from mlops.core.schema import PositiveInt, env_value, shown

    try:
        return env_value(variable, PositiveInt, default)
    except ValueError:
        text = os.environ.get(variable, "").strip()
        raise CelerySettingsError(f"{variable}={shown(text)} is not a positive number of tasks") from None


def default_workers() -> tuple[CeleryWorker, ...]:
    """A worker for the default queue (light tasks; ``MLOPS_CELERY_DEFAULT_CONCURRENCY``, 4) and
    one for the heavy queue (``MLOPS_CELERY_HEAVY_CONCURRENCY``, 1: a tuning job alone keeps two
    cores busy)."""
    from mlops import dag_defaults  # imports Airflow: never at this module's import (configure() first)

    return (
        CeleryWorker("default", (default_queue(),), _positive("MLOPS_CELERY_DEFAULT_CONCURRENCY", 4)),
        CeleryWorker("heavy", (dag_defaults.heavy_queue(),), _positive("MLOPS_CELERY_HEAVY_CONCURRENCY", 1)),
    )


def check_celery_database(database_url: str) -> None:
    """:raises CelerySettingsError: ``database_url`` is not PostgreSQL."""
    scheme = urlsplit(database_url).scheme
    if not scheme.startswith("postgresql"):
        raise CelerySettingsError(
            "the CeleryExecutor needs PostgreSQL as Airflow's metadata database and Celery's result backend, "
            f"not {scheme or database_url!r} (workers on other machines share it); set MLOPS_AIRFLOW_DB_URL "
            "to a PostgreSQL server")


def celery_settings(database_url: str, broker_url: str | None = None,
                    workers: tuple[CeleryWorker, ...] | None = None) -> CelerySettings:
    """The CeleryExecutor's settings for a metadata database; its result backend is the same database.

    :param database_url: Airflow's ``sql_alchemy_conn``; PostgreSQL.
    :param broker_url: default ``$MLOPS_CELERY_BROKER_URL``, else ``redis://127.0.0.1:6379/0``.
    :raises CelerySettingsError: the database is not PostgreSQL, or the broker is not Redis.
    """
    from tools.metadata_db import safe_url

    check_celery_database(database_url)
    broker = broker_url or configured_broker_url()
    if urlsplit(broker).scheme not in ("redis", "rediss"):
        raise CelerySettingsError(f"broker {safe_url(broker)!r} is not a redis:// or rediss:// URL")
    return CelerySettings(broker, f"db+{database_url}", workers if workers is not None else default_workers())


def configured_broker_url() -> str:
    """``$MLOPS_CELERY_BROKER_URL``, else Redis on this machine.

    :raises CelerySettingsError: not a ``redis://`` or ``rediss://`` URL.
    """
    from tools.metadata_db import safe_url

    url = os.environ.get(BROKER_URL_VARIABLE, "").strip() or DEFAULT_BROKER_URL
    if urlsplit(url).scheme not in ("redis", "rediss"):
        raise CelerySettingsError(f"{BROKER_URL_VARIABLE}={safe_url(url)!r} is not a redis:// or rediss:// URL")
    return url


def executor_name(value: str | None = None) -> str:
    """``local`` or ``celery``: ``value``, else ``$MLOPS_AIRFLOW_EXECUTOR``, else ``local``."""
    name = (value or os.environ.get(EXECUTOR_VARIABLE, "")).strip().lower() or "local"
    if name not in EXECUTORS:
        raise CelerySettingsError(f"{EXECUTOR_VARIABLE}={name!r} is not one of {', '.join(EXECUTORS)}")
    return name


def broker_unreachable(broker_url: str) -> str | None:
    """``None`` when the Redis broker answers, else why it does not (for messages and skips)."""
    import redis

    try:
        client = redis.Redis.from_url(broker_url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as err:
        return str(err) or type(err).__name__
    return None


def create_pools() -> list[str]:
    """Create (or update) the pools the DAGs use, in the configured metadata database."""
    from airflow.models.pool import Pool

    from mlops import dag_defaults

    for spec in dag_defaults.POOLS:
        Pool.create_or_update_pool(spec.name, spec.slots, spec.description, spec.include_deferred)
    return [spec.name for spec in dag_defaults.POOLS]


def main(argv: list[str]) -> int:
    if argv != ["pools"]:
        print("usage: python -m tools.airflow_env pools", file=sys.stderr)
        return 2
    for name in create_pools():
        print(f"pool {name} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
