"""The CeleryExecutor's settings (tools.airflow_env) and what AirflowStack does with them and with
its components' processes, without starting Airflow. The chain on Celery: tests/e2e/test_celery.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from testkit.net import free_port
from tools.airflow_env import (
    CelerySettingsError,
    CeleryWorker,
    broker_unreachable,
    celery_settings,
    default_workers,
    executor_name,
)

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/airflow_x"


@pytest.fixture(autouse=True)
def project_defaults(monkeypatch):
    for name in ("MLOPS_HEAVY_QUEUE", "MLOPS_CELERY_DEFAULT_CONCURRENCY", "MLOPS_CELERY_HEAVY_CONCURRENCY",
                 "MLOPS_CELERY_BROKER_URL", "MLOPS_AIRFLOW_EXECUTOR", "AIRFLOW__OPERATORS__DEFAULT_QUEUE"):
        monkeypatch.delenv(name, raising=False)


def test_the_result_backend_is_the_metadata_database_and_the_broker_redis_on_this_machine():
    settings = celery_settings(POSTGRES)

    assert settings.environment() == {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{POSTGRES}",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
    }


def test_a_worker_per_queue_each_under_its_own_node_name():
    default, heavy = default_workers()

    assert default.argv() == ["celery", "worker", "--queues", "default", "--concurrency", "4",
                              "--celery-hostname", "default@%h", "--skip-serve-logs"]
    assert heavy.argv()[:6] == ["celery", "worker", "--queues", "heavy", "--concurrency", "1"]
    assert celery_settings(POSTGRES).slots == 5


def test_queue_names_and_concurrency_are_settings(monkeypatch):
    monkeypatch.setenv("MLOPS_HEAVY_QUEUE", "gpu")
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "light")
    monkeypatch.setenv("MLOPS_CELERY_HEAVY_CONCURRENCY", "2")

    assert [(w.queues, w.concurrency) for w in default_workers()] == [(("light",), 4), (("gpu",), 2)]


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_concurrency_that_is_not_a_positive_number_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("MLOPS_CELERY_DEFAULT_CONCURRENCY", value)

    with pytest.raises(CelerySettingsError, match=f"MLOPS_CELERY_DEFAULT_CONCURRENCY='{value}' is not a positive"):
        default_workers()


def test_sqlite_is_refused_as_the_metadata_database_naming_the_setting_to_use():
    with pytest.raises(CelerySettingsError, match="needs PostgreSQL .* not 'sqlite'.*MLOPS_AIRFLOW_DB_URL"):
        celery_settings("sqlite:////tmp/airflow.db")


def test_a_broker_that_is_not_redis_is_refused_without_its_password(monkeypatch):
    monkeypatch.setenv("MLOPS_CELERY_BROKER_URL", "amqp://guest:secret@127.0.0.1:5672//")

    with pytest.raises(CelerySettingsError, match="MLOPS_CELERY_BROKER_URL=.* is not a redis://") as raised:
        celery_settings(POSTGRES)
    assert "secret" not in str(raised.value)


def test_an_unknown_executor_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("MLOPS_AIRFLOW_EXECUTOR", "kubernetes")

    assert executor_name("celery") == "celery"
    with pytest.raises(CelerySettingsError, match="MLOPS_AIRFLOW_EXECUTOR='kubernetes' is not one of local, celery"):
        executor_name()


def test_a_broker_that_does_not_answer_is_reported_with_the_reason():
    port = free_port()

    reason = broker_unreachable(f"redis://127.0.0.1:{port}/0")

    assert reason and str(port) in reason


def test_the_stack_refuses_celery_on_sqlite(tmp_path):
    from tools.airflow_stack import AirflowError, AirflowStack

    with pytest.raises(AirflowError, match="needs PostgreSQL"):
        AirflowStack(tmp_path, f"sqlite:///{tmp_path}/a.db",
                     celery=celery_settings(POSTGRES))


def test_the_celery_stack_says_which_broker_does_not_answer_before_creating_a_database(tmp_path, monkeypatch):
    from tools.airflow_stack import AirflowError, project_stack

    monkeypatch.setenv("MLOPS_CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("MLOPS_AIRFLOW_DB_URL", "postgresql://postgres@127.0.0.1:1/postgres")  # never reached

    with pytest.raises(AirflowError, match="broker redis://127.0.0.1:.* does not answer .*MLOPS_CELERY_BROKER_URL"):
        project_stack("tests", tmp_path, "celery")


def test_celery_without_any_postgresql_fails_instead_of_falling_back_to_sqlite(tmp_path, monkeypatch):
    from tools import metadata_db

    monkeypatch.setattr(metadata_db, "_postgres_binary", lambda name: None)  # no initdb on this "machine"
    monkeypatch.delenv("MLOPS_AIRFLOW_DB_URL", raising=False)

    with pytest.raises(metadata_db.MetadataDatabaseError,
                       match="the CeleryExecutor needs a PostgreSQL metadata database .*initdb"):
        metadata_db.provision("tests", tmp_path, require_postgres="the CeleryExecutor")
    assert metadata_db.provision("tests", tmp_path).kind == "sqlite"  # the LocalExecutor's fallback stays


def test_a_worker_can_only_be_added_to_a_celery_stack(tmp_path):
    from tools.airflow_stack import AirflowError, AirflowStack

    stack = AirflowStack(tmp_path, POSTGRES)

    with pytest.raises(AirflowError, match="LocalExecutor, which has no Celery workers"):
        stack.start_worker(CeleryWorker("heavy-2", ("heavy",), 1))


# ---------------------------------------------------------------- a component's processes
# A component whose child takes a process group of its own, as a task process does under a worker.
COMPONENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import os, time; os.setpgid(0, 0); print(os.getpid(), flush=True); "
                                        "time.sleep(600)"])
time.sleep(600)
"""


@pytest.fixture
def stack_with_a_component(tmp_path):
    from tools.airflow_stack import AirflowStack

    stack = AirflowStack(tmp_path, POSTGRES)
    process = subprocess.Popen([sys.executable, "-c", COMPONENT], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    child = int(process.stdout.readline())
    stack.processes["worker-fake"] = process
    yield stack, process, child
    for pid in (child, process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(10)


def _gone(pid: int) -> bool:
    import psutil

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_killing_a_component_kills_the_processes_that_left_its_process_group(stack_with_a_component):
    stack, process, child = stack_with_a_component

    assert set(stack.session_of("worker-fake")) == {process.pid, child}
    killed = stack.kill_component("worker-fake")

    assert set(killed) == {process.pid, child}
    assert process.returncode == -signal.SIGKILL and _gone(child)


def test_stopping_a_component_leaves_none_of_its_processes_behind(stack_with_a_component):
    stack, process, child = stack_with_a_component

    stack.stop_component("worker-fake")

    assert process.returncode == -signal.SIGTERM and _gone(child)


def test_importing_the_airflow_environment_helper_does_not_import_airflow():
    """``configure()`` must set AIRFLOW_HOME and friends before Airflow reads its settings."""
    import os
    import subprocess
    import sys

    from mlops.core.paths import PROJECT_ROOT

    probe = "import sys, tools.airflow_env; print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "plugins")})
    assert done.stdout.strip() == "[]"
