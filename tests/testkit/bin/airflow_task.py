"""``__main__`` of a process set up like an Airflow 3 task's (``testkit.airflow_task.run_like_an_airflow_task``).

    python tests/testkit/bin/airflow_task.py <job: a function of this file> <JSON keyword arguments>

A task process's ``__main__`` is the ``airflow`` command (``.venv/bin/airflow``), which imports
Airflow at the top: so does this file, so a child that runs the parent's ``__main__`` again (as
multiprocessing's spawn does, as ``__mp_main__``) imports Airflow. Then, as the task supervisor
(``block_orm_access``) and the task runner do, it blocks Airflow's database in the environment
and sets the parsing context; and it puts first on ``sys.path``, which children inherit, an
``airflow`` package that leaves a mark and raises. A child that imports Airflow in any way fails,
and the mark says so even when the job survives it. The last line of stdout is JSON:
``{"result": <the job's>, "airflow_imported_by_a_child": <bool>}``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.__main__ import main  # noqa: F401 - the import the airflow command's __main__ starts with


def transform(state_dir: str, model_name: str, input_uri: str, output_uri: str, n_jobs: int) -> dict[str, Any]:
    from mlops.backends.local.automl import FlamlAutoML
    from mlops.backends.local.transform import LocalBatchTransform

    transform = LocalBatchTransform(FlamlAutoML(Path(state_dir)), chunk_rows=50, n_jobs=n_jobs)
    return transform.transform("score-in-a-task", model_name, input_uri, output_uri).to_dict()


def tune(data: dict[str, Any], search_space: dict[str, Any], n_trials: int, output_uri: str,
         n_jobs: int) -> dict[str, Any]:
    from mlops.backends.base import TrainingData
    from mlops.backends.local.training import OptunaTuner

    tuner = OptunaTuner(n_jobs=n_jobs)
    return tuner.tune("tune-in-a-task", TrainingData.from_dict(data), search_space, n_trials, output_uri).to_dict()


def tune_until_killed(data: dict[str, Any], search_space: dict[str, Any], n_trials: int, output_uri: str,
                      pid_dir: str) -> dict[str, Any]:
    """The tuning task of ``train_model`` on the local backend, whose folds never finish, with
    SIGTERM handled as Airflow's task runner handles it (``_on_term``: the task's ``on_kill``)."""
    import signal
    from types import SimpleNamespace

    from mlops.backends.local.training import training_entry_point
    from mlops.operators.sagemaker import CrossValidatedTuningOperator
    from testkit.workers import ScorerThatWaits

    train = training_entry_point()
    real = train.FoldScorer
    train.FoldScorer = lambda *args: ScorerThatWaits(real(*args), pid_dir)
    operator = CrossValidatedTuningOperator(task_id="tune", training_data=data, search_space=search_space,
                                       n_trials=n_trials, output_uri=output_uri, deferrable=False)
    signal.signal(signal.SIGTERM, lambda signum, frame: operator.on_kill())
    return operator.execute({"dag": SimpleNamespace(dag_id="train_model"), "run_id": "manual__killed"})


if __name__ == "__main__":
    from testkit.airflow_task import TASK_ENVIRONMENT

    os.environ.update(TASK_ENVIRONMENT)
    poisoned = Path(tempfile.mkdtemp(prefix="airflow-poisoned-"))
    mark = poisoned / "airflow-was-imported"
    (poisoned / "airflow").mkdir()
    (poisoned / "airflow" / "__init__.py").write_text(
        f"open({str(mark)!r}, 'w').close()\nraise ImportError('a child of an Airflow task imported airflow')\n")
    sys.path.insert(0, str(poisoned))  # this process has imported Airflow already; its children have not
    try:
        job, arguments = sys.argv[1], json.loads(sys.argv[2])
        result = globals()[job](**arguments)
        print(json.dumps({"result": result, "airflow_imported_by_a_child": mark.exists()}))
    finally:
        shutil.rmtree(poisoned, ignore_errors=True)
