"""DAG integrity: every DAG file imports cleanly, fast, and carries what operators need to run it.

Verified how: the real DagBag parses dags/ (the same code path as the dag-processor).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))
EXPECTED_DAGS = {
    "keyspaces_ingest", "s3_ingest", "customer_segmentation", "train_model", "deploy_model",
    "autopilot_batch_predict", "rollback_model", "monitor_model",
}
NO_PARAMS = {"rollback_model"}  # nothing to choose: it always goes back one Approved version
HEAVY_MODULES = {"pandas", "numpy", "sklearn", "great_expectations", "sagemaker", "optuna", "flaml",
                 "boto3", "pyarrow", "lightgbm", "xgboost", "matplotlib", "cassandra"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_DIR))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_pipeline_exists(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_has_tags_owner_retries_and_docs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags, "tags"
    assert dag.doc_md and len(dag.doc_md.strip()) > 80, "doc_md"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{task.task_id} owner"
        assert task.retries >= 1, f"{task.task_id} retries"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_every_param_explains_itself(dagbag, dag_id):
    params = dagbag.dags[dag_id].params
    assert params or dag_id in NO_PARAMS, f"{dag_id} has no Params"
    for name in params:
        assert params.get_param(name).description, f"{dag_id}.{name} lacks a description"


def test_asset_scheduled_dags_listen_to_the_producers(dagbag):
    def scheduled_on(dag_id):
        return {asset.name for asset in dagbag.dags[dag_id].timetable.asset_condition.objects}

    produced = {o.name for dag_id in ("s3_ingest", "keyspaces_ingest", "monitor_model")
                for t in dagbag.dags[dag_id].tasks for o in t.outlets}
    assert scheduled_on("train_model") <= produced
    assert scheduled_on("customer_segmentation") <= produced
    approved = {o.name for t in dagbag.dags["train_model"].tasks for o in t.outlets}
    assert scheduled_on("deploy_model") <= approved


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_module_level(path):
    tree = ast.parse(path.read_text())
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = {alias.name.split(".")[0] for node in top_level if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module.split(".")[0] for node in top_level if isinstance(node, ast.ImportFrom) and node.module}
    assert not names & HEAVY_MODULES


def test_importing_every_dag_file_loads_no_heavy_module(tmp_path):
    """The DAG files and the mlops modules they import keep heavy libraries out of parse time."""
    code = (
        "import runpy, sys, glob\n"
        f"[runpy.run_path(f) for f in sorted(glob.glob({str(DAGS_DIR)!r} + '/*.py'))]\n"
        f"print(sorted(m for m in {sorted(HEAVY_MODULES)!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "MLOPS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    loaded = ast.literal_eval(out.stdout.strip().splitlines()[-1])  # a printed list of names
    # pandas/numpy may come with Airflow itself; the ML libraries must not.
    assert not set(loaded) & {"sklearn", "great_expectations", "sagemaker", "optuna", "flaml", "lightgbm",
                              "xgboost", "matplotlib", "cassandra"}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_the_trigger_form_submits_with_the_defaults(dagbag, dag_id):
    """Every default satisfies its own schema, so the UI form does not demand optional values."""
    dagbag.dags[dag_id].params.validate()
    for name in dagbag.dags[dag_id].params:
        param = dagbag.dags[dag_id].params.get_param(name)
        if param.value in ("", None):
            assert "null" in param.schema.get("type", []), f"{dag_id}.{name}: an empty default must allow null"


def test_the_churn_model_group_is_the_one_in_the_pipeline_config():
    from mlops.core.config import load_pipeline
    from mlops.dag_defaults import CHURN_MODEL_GROUP

    assert load_pipeline("churn").section("registry")["group"] == CHURN_MODEL_GROUP


# ---------------------------------------------------------------- queues and pools (the CeleryExecutor)
HEAVY_TASKS = {("train_model", "tune"), ("train_model", "refit"),
               ("autopilot_batch_predict", "automl_job"), ("autopilot_batch_predict", "batch_transform")}


def _every_task(dagbag):
    return {(dag_id, task.task_id): task for dag_id, dag in dagbag.dags.items() for task in dag.tasks}


def test_heavy_work_goes_to_the_heavy_queue_and_everything_else_to_the_default_queue(dagbag):
    from airflow.configuration import conf

    from mlops.dag_defaults import heavy_queue

    queues = {key: task.queue for key, task in _every_task(dagbag).items()}
    assert {key for key, queue in queues.items() if queue == heavy_queue()} == HEAVY_TASKS
    assert {queue for key, queue in queues.items() if key not in HEAVY_TASKS} == {
        conf.get("operators", "default_queue")}


def test_the_tasks_that_change_an_endpoint_take_its_pool(dagbag):
    from mlops.dag_defaults import PROD_ENDPOINT, STAGING_ENDPOINT, endpoint_pool

    pools = {key: task.pool for key, task in _every_task(dagbag).items() if task.pool != "default_pool"}
    assert pools == {
        ("deploy_model", "deploy_staging"): endpoint_pool(STAGING_ENDPOINT),
        ("deploy_model", "teardown_staging"): endpoint_pool(STAGING_ENDPOINT),
        ("deploy_model", "deploy_prod"): endpoint_pool(PROD_ENDPOINT),
        ("rollback_model", "rollback_prod"): endpoint_pool(PROD_ENDPOINT),
    }


def test_every_pool_a_task_takes_is_created_with_one_slot_held_while_deferred(dagbag):
    from mlops.dag_defaults import POOLS

    used = {task.pool for task in _every_task(dagbag).values()} - {"default_pool"}
    assert used == {pool.name for pool in POOLS}
    assert all(pool.slots == 1 and pool.include_deferred for pool in POOLS)


def _parse_with(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag({str(DAGS_DIR)!r})\n"
        "print(json.dumps(bag.import_errors))\n"
        "print(bag.dags['train_model'].get_task('tune').queue if 'train_model' in bag.dags else '-')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), **env_extra}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)


def test_the_heavy_queue_is_named_by_a_setting():
    out = _parse_with({"MLOPS_HEAVY_QUEUE": "gpu-large"}).stdout.strip().splitlines()
    assert out[-2:] == ["{}", "gpu-large"]


def test_a_bad_heavy_queue_name_fails_only_the_dag_files_with_heavy_tasks_naming_the_setting():
    errors, tune_queue = _parse_with({"MLOPS_HEAVY_QUEUE": "heavy,default"}).stdout.strip().splitlines()[-2:]
    failed = json.loads(errors)
    assert tune_queue == "-"
    assert {Path(path).name for path in failed} == {"train_model.py", "autopilot_batch_predict.py"}
    assert all("MLOPS_HEAVY_QUEUE='heavy,default' is not a queue name" in text for text in failed.values())
