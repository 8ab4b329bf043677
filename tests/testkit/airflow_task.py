"""Run a job in a process set up the way Airflow 3 runs a task, to test what the job's children do.

:func:`run_like_an_airflow_task` runs a job of ``bin/airflow_task.py`` in a new process whose
``__main__`` imports Airflow at the top, as the ``airflow`` command does, and whose environment
then blocks Airflow's database, as the task supervisor's ``block_orm_access`` does (see that file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# In a folder of its own, as the airflow command is in the virtualenv's bin/: a script's folder
# is the first entry of sys.path, and no module there may shadow Airflow.
MAIN = Path(__file__).parent / "bin" / "airflow_task.py"
TASK_ENVIRONMENT = {  # what block_orm_access and the task runner set in a task process
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "airflow-db-not-allowed:///",
    "AIRFLOW__CORE__SQL_ALCHEMY_CONN": "airflow-db-not-allowed:///",
    "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "autopilot_batch_predict",
    "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "batch_transform",
}


def run_like_an_airflow_task(job: str, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``job(**kwargs)`` of ``bin/airflow_task.py`` in a process set up like an Airflow task's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / part) for part in ("plugins", "tests", ""))}
    return subprocess.run([sys.executable, str(MAIN), job, json.dumps(kwargs)], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def start_like_an_airflow_task(job: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
    """Start ``job(**kwargs)`` as :func:`run_like_an_airflow_task` runs it, without waiting (to
    signal it); stdout and stderr are pipes. ``env``: variables to set on top of this process's."""
    environment = {**os.environ, **(env or {}),
                   "PYTHONPATH": os.pathsep.join(str(ROOT / part) for part in ("plugins", "tests", ""))}
    return subprocess.Popen([sys.executable, str(MAIN), job, json.dumps(kwargs)], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result_of(process: subprocess.CompletedProcess) -> dict[str, Any]:
    """``{"result": <the job's>, "airflow_imported_by_a_child": <bool>}``, as the run printed it last."""
    assert process.returncode == 0, process.stderr[-5000:]
    return json.loads(process.stdout.strip().splitlines()[-1])
