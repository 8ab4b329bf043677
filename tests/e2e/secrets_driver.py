"""Runs tasks that read secret-bearing connections the way a worker does; prints a JSON summary last.

Called by test_secrets_in_logs.py in a subprocess, so that Airflow starts with the test's own
AIRFLOW_HOME, MLOPS_HOME and ``AIRFLOW_CONN_*`` connections.

``dag.test()`` alone runs each task inside the calling process and writes no task log: its console
output goes through the calling process's logging, which does not mask secrets. A worker instead
runs each task under a supervisor (``supervise_task``, what the Local and Celery executors call)
that forks the task process, reads its logs and stdout/stderr, masks every secret the task
registered, and writes the task's log file under ``[logging] base_log_folder``. So here
``dag.test()`` schedules the tasks and each one runs under that supervisor, talking to the
in-process Execution API instead of an API server over HTTP.

Two DAGs run from a dags folder of their own (``$MLOPS_HOME/dags``):

* ``keyspaces_ingest``, the project's DAG, against a fake cassandra-driver ``Cluster``: the hook
  reads ``keyspaces_default`` through the Task SDK and hands its login and password to the
  driver's auth provider, as in production; only the server is fake.
* ``secrets_probe`` (written below): tasks that log the secrets on purpose next to a control
  value that is no secret, build a SageMaker client through ``mlops.backends.aws.clients`` and
  fail with the password in the exception's message. Its summary says what each task saw as
  SHA-256 digests, never the values themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]

PROBE_DAG = '''
"""Logs the secrets of keyspaces_default and aws_default on purpose: the masker must hide them."""

from __future__ import annotations

import hashlib
import logging
import os

import pendulum
from airflow.sdk import dag, task

log = logging.getLogger("secrets_probe")


def digest(value) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()


@dag(dag_id="secrets_probe", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
     default_args={"retries": 0}, tags=["test"])
def secrets_probe():
    @task
    def log_keyspaces_settings() -> dict:
        from mlops.hooks.keyspaces import KeyspacesHook

        settings = KeyspacesHook().connection_settings()
        log.info("control %s; keyspaces login %s, password %s; settings %r", os.environ["SECRETS_PROBE_CONTROL"],
                 settings.login, settings.password, settings)
        print(f"printed: control {os.environ['SECRETS_PROBE_CONTROL']}, keyspaces password {settings.password}")
        return {"password_sha256": digest(settings.password)}

    @task
    def log_aws_client_credentials() -> dict:
        from airflow.sdk.bases.hook import BaseHook

        from mlops.backends.aws.clients import client
        from mlops.core.settings import get_settings

        sagemaker = client("sagemaker", get_settings())
        credentials = sagemaker._request_signer._credentials.get_frozen_credentials()
        extra = BaseHook.get_connection("aws_default").extra_dejson
        log.info("control %s; aws access key %s, secret key %s; connection extra %s",
                 os.environ["SECRETS_PROBE_CONTROL"], credentials.access_key, credentials.secret_key, extra)
        return {"secret_key_sha256": digest(credentials.secret_key),
                "extra_secret_sha256": digest(extra["aws_secret_access_key"])}

    @task
    def fail_with_the_password_in_the_error():
        from mlops.hooks.keyspaces import KeyspacesHook

        settings = KeyspacesHook().connection_settings()
        raise PermissionError(f"control {os.environ['SECRETS_PROBE_CONTROL']}: {settings.host} refused "
                              f"{settings.login}:{settings.password}")

    log_keyspaces_settings()
    log_aws_client_credentials()
    fail_with_the_password_in_the_error()


secrets_probe()
'''


def digest(value) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()


class FakeCluster:
    """Stands in for ``cassandra.cluster.Cluster``: every connect gets the one fake session, and
    the credentials the driver was given are recorded (as digests) in :func:`auth_record`: tasks
    run in forked processes, so the record is a file."""

    session = None

    def __init__(self, contact_points, auth_provider=None, execution_profiles=None, **_):
        with auth_record().open("a") as record:
            record.write(json.dumps([auth_provider.username, digest(auth_provider.password)]) + "\n")
        self.session = FakeCluster.session
        self.session.execution_profiles = execution_profiles or {}

    def connect(self):
        return self.session

    def shutdown(self):
        pass


def run_task_supervised(ti, task, client=None):
    """Stands in for ``supervisor.run_task_in_process`` in ``dag.test()``: runs ``ti`` as an
    executor's worker does, its log file included, and answers what ``dag.test()`` reads."""
    from types import SimpleNamespace

    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, supervise_task
    from airflow.utils.session import create_session

    with create_session() as session:
        workload = ExecuteTask.make(session.get(TaskInstance, ti.id), dag_rel_path=Path(task.dag.fileloc).name,
                                    bundle_info=BundleInfo(name="dags-folder"))
    supervise_task(ti=workload.ti, bundle_info=workload.bundle_info, dag_rel_path=workload.dag_rel_path,
                   token="", client=client or InProcessTestSupervisor._api_client(task.dag),
                   log_path=workload.log_path)
    with create_session() as session:
        state = session.get(TaskInstance, ti.id).state
    return SimpleNamespace(ti=SimpleNamespace(state=state, task=task), msg=None)


def auth_record() -> Path:
    return Path(os.environ["MLOPS_HOME"]) / "driver_auth.jsonl"


def prepare_dags_folder() -> Path:
    folder = Path(os.environ["MLOPS_HOME"]) / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dags" / "keyspaces_ingest.py", folder / "keyspaces_ingest.py")
    (folder / "secrets_probe.py").write_text(PROBE_DAG)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    return folder


def main() -> None:
    prepare_dags_folder()
    from tools.airflow_env import configure

    configure()
    import cassandra.cluster
    from airflow.sdk.execution_time import supervisor

    from mlops.core.entrypoints import generators_module
    from testkit.fake_cassandra import FakeSession, tables_from_sample_data
    from tools.airflow_env import migrate_db, run_dag, task_states, xcom

    generate = generators_module()
    FakeCluster.session = FakeSession(tables_from_sample_data(generate.churn(300, seed=3), generate.retail(600, seed=4)))
    cassandra.cluster.Cluster = FakeCluster
    supervisor.run_task_in_process = run_task_supervised
    migrate_db()
    ingest = run_dag("keyspaces_ingest", {"segments": 1, "fetch_size": 100})
    probe = run_dag("secrets_probe")
    print(json.dumps({
        "keyspaces_ingest": {
            "state": str(ingest.state), "tasks": task_states(ingest),
            "churn_rows": (xcom(ingest, "churn.commit_partition") or {}).get("rows"),
            "driver_auth": [json.loads(line) for line in auth_record().read_text().splitlines()],
        },
        "secrets_probe": {
            "state": str(probe.state), "tasks": task_states(probe),
            "keyspaces": xcom(probe, "log_keyspaces_settings"),
            "aws": xcom(probe, "log_aws_client_credentials"),
        },
    }))


if __name__ == "__main__":
    main()
