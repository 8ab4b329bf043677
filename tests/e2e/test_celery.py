"""The demo's chain on Airflow's CeleryExecutor, with a Celery worker per queue, and a lost worker.

One Airflow serves the module: :class:`~tools.airflow_stack.AirflowStack` with the project's
:func:`~tools.airflow_env.celery_settings` (those docker-compose.yaml runs: the unit test
``tests/unit/test_compose.py`` compares them): api-server, scheduler with the CeleryExecutor,
dag-processor, triggerer, and two ``airflow celery worker`` processes, ``default`` serving
Airflow's default queue and ``heavy`` serving the heavy queue; Redis (a database of this
session's own, :mod:`testkit.redis_broker`) is the broker, PostgreSQL the metadata database and
Celery's result backend. The tests run in file order:

1. the demo's chain, as under the LocalExecutor (``tests/e2e/test_scheduler.py``): ``s3_ingest``
   triggered over REST, Asset events start ``customer_segmentation``, ``train_model`` and
   ``deploy_model``, the policy answers both approvals over the HITL REST API, unpausing
   ``autopilot_batch_predict`` starts its scheduled run. Same outcomes (registry, prod endpoint
   over HTTP, prediction and segment rows); the heavy tasks ran on the heavy worker and every
   other task on the default one (queues from the REST API, the workloads each worker's log
   records); Celery's task states are rows in PostgreSQL, its queues keys in Redis;
2. a lost worker: the heavy worker and everything it started are SIGKILLed while a tuning job's
   fold workers run. The scheduler's heartbeat check (``task_instance_heartbeat_timeout``, 30 s
   here instead of 300 s) fails the task, it is retried on a second heavy-queue worker, and the
   run registers exactly one version, none while the task was lost.
"""

from __future__ import annotations

import re
import time

import pytest

from testkit.airflow import running_airflow
from testkit.chain import (
    CHURN_ROWS,
    RETAIL_ROWS,
    SCORING_ROWS,
    assert_prod_answers_and_staging_is_gone,
    read_parquet,
    registry,
    run_the_demos_chain,
    small_pipelines,
)

pytestmark = pytest.mark.scheduler

SECOND_DATE = "2026-01-15"
HEAVY_TASKS = {("train_model", "tune"), ("train_model", "refit"),
               ("autopilot_batch_predict", "automl_job"), ("autopilot_batch_predict", "batch_transform")}
# Settings of this test's Airflow beyond the project's: a task whose worker died is failed (and
# retried) once its last heartbeat is 30 s old, checked every 5 s (production: 300 s and 10 s).
AIRFLOW_SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("celery")
    with running_airflow(home, small_pipelines(home / "pipelines"), celery=True,
                         airflow_settings=AIRFLOW_SETTINGS) as (stack, api, env), \
            pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():  # this process reads the registry and the store as the tasks do
            patch.setenv(key, value)
        yield stack, api


@pytest.fixture(scope="module")
def chain(airflow):
    _, api = airflow
    return run_the_demos_chain(api)


def worker(stack, name: str):
    return next(w for w in stack.workers.values() if w.name == name)


def workloads_run_by(stack, name: str) -> set[tuple[str, str, str, int]]:
    """``(dag_id, task_id, run_id, try_number)`` of every task the worker's log says it executed."""
    text = stack.log_of(worker(stack, name).component).read_text()
    found = set()
    for line in text.splitlines():
        if "Executing workload in Celery" not in line:
            continue
        fields = dict(re.findall(r"\b(dag_id|task_id|run_id)='([^']*)'", line))
        try_number = re.search(r"\btry_number=(\d+)", line)
        found.add((fields["dag_id"], fields["task_id"], fields["run_id"], int(try_number.group(1))))
    return found


def tasks_that_ran(api, runs: dict[str, str]) -> dict[tuple[str, str, str, int], dict]:
    return {(dag_id, ti["task_id"], run_id, ti["try_number"]): ti for dag_id, run_id in runs.items()
            for ti in api.task_instances(dag_id, run_id) if ti["state"] == "success"}


# --- 1. the demo's chain ----------------------------------------------------------------------------

def test_the_stack_runs_the_projects_celery_settings_with_a_worker_per_queue(airflow):
    from mlops.dag_defaults import heavy_queue
    from tools.airflow_env import default_queue, default_workers

    stack, _ = airflow
    expected = stack.celery.environment()
    assert expected["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert {key: stack.env[key] for key in expected} == expected
    assert stack.celery.result_backend == f"db+{stack.database_url}"
    assert stack.celery.workers == default_workers()
    assert [w.queues for w in stack.celery.workers] == [(default_queue(),), (heavy_queue(),)]


def test_every_run_of_the_chain_succeeded_from_one_rest_trigger(airflow, chain):
    _, api = airflow
    runs = chain["runs"]
    assert all(api.run(dag_id, run_id)["state"] == "success" for dag_id, run_id in runs.items())
    for dag_id in ("customer_segmentation", "train_model", "deploy_model"):
        assert api.run(dag_id, runs[dag_id])["run_type"] == "asset_triggered", dag_id


def test_the_policy_approved_the_registered_version_over_the_hitl_rest_api(chain):
    assert [(a["dag_id"], a["task_id"], a["option"]) for a in chain["answered"]] == [
        ("train_model", "approve_model", "Approve"), ("deploy_model", "approve_prod", "Approve")]
    version = registry().get(chain["summary"]["registered"]["arn"])
    assert version.status == "Approved" and version.approver == "policy"
    assert [v.version for v in registry().list_versions("churn-classifier")] == [1]


def test_the_prod_endpoint_answers_over_http_and_staging_is_gone(chain):
    assert_prod_answers_and_staging_is_gone(chain["summary"])


def test_predictions_and_segments_have_their_rows(chain):
    batch, segmentation = chain["summary"]["batch"], chain["summary"]["segmentation"]
    predictions = read_parquet(batch["predictions_uri"])
    assert len(predictions) == batch["rows"] == SCORING_ROWS and predictions["Phone"].is_unique
    assert predictions["probability"].between(0, 1).all()
    results = read_parquet(segmentation["results_uri"])
    assert results["total_customers"].sum() == segmentation["customers"]
    assert chain["summary"]["rows_ingested"] == {"churn": CHURN_ROWS, "retail": RETAIL_ROWS}


def test_heavy_tasks_ran_on_the_heavy_worker_and_every_other_task_on_the_default_worker(airflow, chain):
    from mlops.dag_defaults import heavy_queue
    from tools.airflow_env import default_queue

    stack, api = airflow
    ran = tasks_that_ran(api, chain["runs"])
    heavy = {key for key, ti in ran.items() if ti["queue"] == heavy_queue()}
    light = set(ran) - heavy
    assert {(dag_id, task_id) for dag_id, task_id, _, _ in heavy} == HEAVY_TASKS
    assert {ran[key]["queue"] for key in light} == {default_queue()}

    on_heavy, on_default = workloads_run_by(stack, "heavy"), workloads_run_by(stack, "default")
    assert heavy <= on_heavy and not on_heavy & light
    assert light <= on_default and not on_default & heavy


def test_celery_kept_task_states_in_postgresql_and_its_queues_in_redis(airflow, chain):
    import psycopg
    import redis

    from mlops.dag_defaults import heavy_queue
    from tools.airflow_env import default_queue
    from tools.metadata_db import libpq_url

    stack, api = airflow
    with psycopg.connect(libpq_url(stack.database_url)) as connection:
        states = dict(connection.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status").fetchall())
    assert states.get("SUCCESS", 0) >= len(tasks_that_ran(api, chain["runs"]))
    client = redis.Redis.from_url(stack.celery.broker_url)
    try:
        bindings = {key.decode() for key in client.keys("_kombu.binding.*")}
    finally:
        client.close()
    assert {f"_kombu.binding.{default_queue()}", f"_kombu.binding.{heavy_queue()}"} <= bindings


def test_the_deploys_took_the_endpoint_pools_created_at_start(airflow, chain):
    from mlops.dag_defaults import POOLS, PROD_ENDPOINT, STAGING_ENDPOINT, endpoint_pool

    _, api = airflow
    pools = {pool["name"]: pool for pool in api.get("/pools")["pools"]}
    assert {spec.name: (pools[spec.name]["slots"], pools[spec.name]["include_deferred"]) for spec in POOLS} == {
        spec.name: (1, True) for spec in POOLS}
    tis = {ti["task_id"]: ti for ti in api.task_instances("deploy_model", chain["runs"]["deploy_model"])}
    assert tis["deploy_prod"]["pool"] == endpoint_pool(PROD_ENDPOINT)
    assert tis["deploy_staging"]["pool"] == tis["teardown_staging"]["pool"] == endpoint_pool(STAGING_ENDPOINT)


# --- 2. a heavy worker lost in the middle of a tuning job ---------------------------------------------

def fold_workers(task_pid: int) -> list[int]:
    """The tuning job's worker processes: the task process's multiprocessing spawns."""
    import psutil

    try:
        children = psutil.Process(task_pid).children(recursive=True)
        return [child.pid for child in children if "spawn_main" in " ".join(child.cmdline())]
    except psutil.Error:  # the task or a child ended meanwhile: look again
        return []


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running a moment later (a killed process is gone or a zombie)."""
    import psutil

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 10
    while (left := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture(scope="module")
def lost_worker(airflow, chain):
    """New data for another date; ``train_model`` triggered on it; the heavy worker SIGKILLed with
    everything it started once the tuning job's fold workers run; a second heavy-queue worker."""
    from mlops.core.entrypoints import generators_module
    from mlops.core.storage import data_path
    from tools.airflow_env import CeleryWorker
    from tools.airflow_stack import AirflowError

    stack, api = airflow
    for dag_id in ("train_model", "deploy_model"):  # the ingest's event starts nothing: the run below is ours
        api.pause(dag_id)
    with data_path("landing", "churn", "customers-second.csv").open("w") as handle:
        generators_module().churn(CHURN_ROWS, seed=21).to_csv(handle, index=False)
    ingest = api.send("POST", "/dags/s3_ingest/dagRuns",
                      {"logical_date": f"{SECOND_DATE}T00:00:00Z", "conf": {}})["dag_run_id"]
    assert api.wait_for_run("s3_ingest", ingest, 300)["state"] == "success"
    partition = api.xcom("s3_ingest", ingest, "churn.publish_raw_partition")["partition_uri"]
    versions_before = [v.arn for v in registry().list_versions("churn-classifier")]

    api.unpause("train_model")
    run_id = api.trigger("train_model", {"partition_uri": partition, "approval_mode": "policy", "n_trials": 8})
    heavy = worker(stack, "heavy")
    tune_path = f"/dags/train_model/dagRuns/{run_id}/taskInstances/tune"

    def tuning_under_way() -> list[int]:
        detail = api.get(tune_path)
        if detail["state"] in ("success", "failed", "upstream_failed"):
            raise AirflowError(f"tune ended {detail['state']} before its worker could be killed")
        return fold_workers(detail["pid"]) if detail["state"] == "running" and detail["pid"] else []

    running_folds = api.wait_for(tuning_under_way, 600, "tune's fold workers on the heavy worker", interval=0.2)
    killed = stack.kill_component(heavy.component)
    versions_at_kill = [v.arn for v in registry().list_versions("churn-classifier")]
    survivors = alive(killed)

    stack.start_worker(CeleryWorker("heavy-2", heavy.queues, heavy.concurrency))
    api.wait_for(lambda: api.get(tune_path)["state"] == "up_for_retry", 300, "the lost tune to be failed for a retry")
    versions_while_lost = [v.arn for v in registry().list_versions("churn-classifier")]
    run = api.wait_for_run("train_model", run_id, 900)
    return {"run_id": run_id, "run": run, "killed": killed, "running_folds": running_folds, "survivors": survivors,
            "before": versions_before, "at_kill": versions_at_kill, "while_lost": versions_while_lost}


def test_killing_the_worker_killed_the_tuning_job_with_it(lost_worker):
    assert lost_worker["running_folds"] and set(lost_worker["running_folds"]) <= set(lost_worker["killed"])
    assert lost_worker["survivors"] == []


def test_the_heartbeat_check_failed_the_lost_try_and_the_retry_succeeded(airflow, lost_worker):
    _, api = airflow
    run_id = lost_worker["run_id"]
    tries = api.get(f"/dags/train_model/dagRuns/{run_id}/taskInstances/tune/tries")["task_instances"]
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    events = api.get("/eventLogs", params={"dag_id": "train_model", "task_id": "tune", "run_id": run_id,
                                           "limit": 100})["event_logs"]
    assert [e["event"] for e in events].count("heartbeat timeout") == 1
    assert lost_worker["run"]["state"] == "success"


def test_the_retry_ran_on_the_other_heavy_queue_worker(airflow, lost_worker):
    stack, _ = airflow
    run_id = lost_worker["run_id"]
    assert ("train_model", "tune", run_id, 1) in workloads_run_by(stack, "heavy")
    on_second = workloads_run_by(stack, "heavy-2")
    assert {("train_model", "tune", run_id, 2), ("train_model", "refit", run_id, 1)} <= on_second
    assert ("train_model", "tune", run_id, 2) not in workloads_run_by(stack, "heavy")


def test_nothing_was_registered_while_the_task_was_lost_and_exactly_one_version_after(airflow, lost_worker):
    _, api = airflow
    assert lost_worker["at_kill"] == lost_worker["while_lost"] == lost_worker["before"]
    versions = registry().list_versions("churn-classifier")
    new = [v for v in versions if v.arn not in lost_worker["before"]]
    assert len(new) == 1 and new[0].metadata["run_id"] == lost_worker["run_id"]
    assert new[0].status == "Approved" and new[0].approver == "policy"
    registered = api.xcom("train_model", lost_worker["run_id"], "register")
    assert registered["arn"] == new[0].arn and not registered["reused"]
