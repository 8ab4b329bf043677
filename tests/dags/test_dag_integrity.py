"""DAG integrity: every DAG file imports cleanly, fast, and carries what operators need to run it.

Verified how: the real DagBag parses dags/ (the same code path as the dag-processor).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))
EXPECTED_DAGS = {
    "keyspaces_ingest", "s3_ingest", "customer_segmentation", "train_model", "deploy_model",
    "autopilot_batch_predict", "rollback_model",
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

    produced = {o.name for dag_id in ("s3_ingest", "keyspaces_ingest") for t in dagbag.dags[dag_id].tasks
                for o in t.outlets}
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
    import subprocess
    import sys

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
    from mlops.config import load_pipeline
    from mlops.dag_defaults import CHURN_MODEL_GROUP

    assert load_pipeline("churn").section("registry")["group"] == CHURN_MODEL_GROUP
