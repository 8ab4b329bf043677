"""Point Airflow at this project (dags/, plugins/, a local AIRFLOW_HOME) before it is imported.

Used by the demo, the web UI launcher and the end-to-end tests; the Makefile exports the same.
"""

from __future__ import annotations

import os
import subprocess
import sys

from mlops.settings import PROJECT_ROOT, get_settings


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
