"""A real Airflow for the tests: the project's own :class:`~tools.airflow_stack.AirflowStack`
(api-server, scheduler with the LocalExecutor, dag-processor, triggerer) on PostgreSQL, with the
model runtime, in a temporary home, on loopback; or the same on the CeleryExecutor, with a Redis
database of its own as the broker (:mod:`testkit.redis_broker`) and a worker per queue.

PostgreSQL is the server at ``MLOPS_TEST_POSTGRES_URL`` (default the loopback server these
machines run, ``postgresql://postgres@127.0.0.1:5432/postgres``); each test session gets a
database of its own, dropped afterwards. Without a reachable server the tests are skipped, with
the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.net import free_port

ROOT = Path(__file__).resolve().parents[2]
TEST_POSTGRES_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_url_or_skip() -> str:
    from tools.metadata_db import server_reachable

    reason = server_reachable(TEST_POSTGRES_URL)
    if reason:
        pytest.skip(f"needs PostgreSQL for Airflow's metadata database: {TEST_POSTGRES_URL} is not reachable "
                    f"({reason}); set MLOPS_TEST_POSTGRES_URL to a server")
    return TEST_POSTGRES_URL


def project_environment(home: Path, pipelines_dir: Path | None = None) -> dict[str, str]:
    """The ``MLOPS_*`` settings of a test deployment under ``home``."""
    env = {"MLOPS_HOME": str(home / "mlops"), "MLOPS_BACKEND": "local", "MLOPS_RUNTIME_PORT": str(free_port()),
           "MLOPS_DATA_URI": (home / "mlops" / "data").as_uri()}
    if pipelines_dir is not None:
        env["MLOPS_PIPELINES_DIR"] = str(pipelines_dir)
    return env


def run_with(env: dict[str, str], code: str, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter with the project's ``env`` (as the deployment sees it)."""
    full = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}, **env,
            "AIRFLOW_HOME": env.get("AIRFLOW_HOME", str(Path(env["MLOPS_HOME"]) / "airflow-tools")),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "tests"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"helper process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


@contextlib.contextmanager
def model_runtime(env: dict[str, str]) -> Iterator[None]:
    """The model runtime of the deployment ``env`` describes (its home and port), running; stopped after.

    It starts from a process with ``env`` (``AWS_*`` credentials and endpoint included: the
    runtime reads ``s3://`` models with them, as a SageMaker endpoint reads with its role).
    """
    run_with(env, "from mlops.backends.local.runtime import start_runtime; from mlops.core.settings import "
                  "get_settings; start_runtime(get_settings())")
    try:
        yield
    finally:
        run_with(env, "from mlops.backends.local.runtime.service import main; main(['stop'])")


def restart_task_components(stack, environment: dict[str, str]) -> None:
    """Restart the components that run tasks and triggers (scheduler, triggerer) with
    ``environment`` added, e.g. another object store and home; the API server and the
    dag-processor keep running (DAG files read no settings when parsed)."""
    for component in ("scheduler", "triggerer"):
        stack.stop_component(component)
    stack.env.update(environment)
    for component in ("scheduler", "triggerer"):
        stack.start_component(component)


def throwaway_postgres_or_skip(home: Path):
    """A metadata database on a PostgreSQL cluster of its own (:mod:`tools.metadata_db`), which a
    test may restart; skipped, naming what is missing, when none can be started here."""
    import shutil
    import tempfile

    from tools.metadata_db import provision

    # Not under pytest's temporary folders: they are private to this user, and as root the
    # cluster runs as the postgres user, which must reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="mlops-tests-postgres-"))
    folder.chmod(0o755)
    database = provision("tests", folder, server_url="")
    database._drop.insert(0, lambda: shutil.rmtree(folder, ignore_errors=True))  # noqa: SLF001 - runs last
    if database.kind != "postgresql-throwaway":
        database.drop()
        pytest.skip(f"needs a throwaway PostgreSQL cluster (initdb and pg_ctl) for Airflow's metadata database: "
                    f"{database.note}")
    return database


@contextlib.contextmanager
def running_airflow(home: Path, pipelines_dir: Path | None = None, celery: bool = False,
                    airflow_settings: dict[str, str] | None = None, own_cluster: bool = False) -> Iterator[tuple]:
    """``(stack, api, env)``: Airflow and the model runtime running for ``home``; stopped after.

    :param celery: the CeleryExecutor with :func:`~tools.airflow_env.default_workers` (skipped
        without Redis), its result backend in the metadata database.
    :param airflow_settings: ``AIRFLOW__*`` variables for every component, over the stack's own.
    :param own_cluster: the metadata database on a throwaway PostgreSQL cluster of its own
        (``stack.database.restart()`` restarts it) instead of the server at ``MLOPS_TEST_POSTGRES_URL``.
    """
    from testkit.redis_broker import redis_broker_or_skip
    from tools.airflow_env import celery_settings
    from tools.airflow_stack import AirflowStack
    from tools.metadata_db import provision

    server = None if own_cluster else postgres_url_or_skip()
    env = project_environment(home, pipelines_dir)
    with (redis_broker_or_skip() if celery else contextlib.nullcontext()) as broker_url, model_runtime(env):
        database = throwaway_postgres_or_skip(home) if own_cluster else provision("tests", home, server_url=server)
        try:
            stack = AirflowStack(home / "airflow", database.url, environment={**env, **(airflow_settings or {})},
                                 celery=celery_settings(database.url, broker_url) if celery else None)
            stack.database = database
            try:
                api = stack.start()
                yield stack, api, env
            finally:
                stack.stop()
        finally:
            database.drop()
