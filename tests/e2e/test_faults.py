"""Faults survived, nothing lost: faults injected into the chain under Airflow's real scheduler.

One Airflow (:func:`testkit.airflow.running_airflow`: api-server, scheduler with the
LocalExecutor, dag-processor, triggerer, the model runtime) serves the whole module, on a
PostgreSQL cluster of its own so that it can be restarted. The tests run in file order and
build on each other; each run carries several faults, each injected once, at the moment named:

1. ``train_model`` on new data: the scheduler is SIGKILLed (with its workers and their task
   processes) while ``tune`` runs, and restarted; the ``refit`` task's process is SIGKILLed;
   another process holds the registry's write lock while ``register`` runs; the scheduler is
   SIGKILLed and restarted while ``approve_model`` waits for a person; then two people answer
   that approval over REST at the same instant;
2. ``deploy_model`` for the approved version: the model runtime is SIGKILLed while it unpacks
   the model of a deploy; once prod serves, the runtime is SIGKILLed again and started again,
   as a service manager would;
3. ``autopilot_batch_predict``: PostgreSQL restarts while the AutoML job runs, and the
   ``batch_transform`` task's process is SIGKILLed.

After each, the same promises are checked (:func:`testkit.faults.broken_promises`): no
partition half-published, no model version registered twice or without its artifact, no
endpoint recorded as serving what it does not serve, no approval lost or applied twice; and
the run completes. docs/reliability.md is the matrix these tests prove.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from testkit.airflow import running_airflow
from testkit.chain import CHURN_ROWS, SCORING_ROWS, invoke, read_parquet, registry, small_pipelines
from testkit.faults import (
    answer_twice_at_once,
    broken_promises,
    kill_and_restart_scheduler,
    kill_runtime_mid_deploy,
    kill_task_process,
    registry_locked,
    served_endpoints,
    service_manager,
    task_instance,
    wait_for_task,
    wait_until_open,
)

pytestmark = pytest.mark.scheduler

DS = "2026-02-01"
RUN_TIMEOUT = 1500
# A lost scheduler's tasks are reset by its successor once the lost one has missed its heartbeat
# for scheduler_health_check_threshold (30 s); the successor looks every 20 s, not every 300 s.
AIRFLOW_SETTINGS = {"AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "20"}
RUNS: dict[str, list[str]] = {"train_model": []}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("faults")
    with running_airflow(home, small_pipelines(home / "pipelines"), airflow_settings=AIRFLOW_SETTINGS,
                         own_cluster=True) as (stack, api, env), pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():  # this process lands data and reads outcomes as the tasks do
            patch.setenv(key, value)
        yield stack, api


def land(frame, *parts: str) -> None:
    from mlops.core.storage import data_path

    path = data_path(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        frame.to_csv(handle, index=False)


# --- 1. train_model: scheduler killed, worker killed, registry locked, approval answered twice -------

@pytest.fixture(scope="module")
def training(airflow):
    from mlops.core.entrypoints import generators_module
    from mlops.core.settings import get_settings
    from tools.airflow_stack import now

    stack, api = airflow
    land(generators_module().churn(CHURN_ROWS, seed=7), "landing", "churn", "customers-faults.csv")
    for dag_id in ("s3_ingest", "train_model", "deploy_model"):
        api.unpause(dag_id)
    before = now()
    ingest = api.send("POST", "/dags/s3_ingest/dagRuns", {"logical_date": f"{DS}T00:00:00Z", "conf": {}})["dag_run_id"]
    assert api.wait_for_run("s3_ingest", ingest, 600)["state"] == "success"
    run_id = api.wait_for_new_run("train_model", "asset_triggered", 300, after=before)
    RUNS["train_model"].append(run_id)
    seen: dict = {"run_id": run_id}

    tuning = wait_for_task(api, "train_model", run_id, "tune", ("running",), RUN_TIMEOUT)
    seen["tune_killed"] = {"try": tuning["try_number"], "pids": kill_and_restart_scheduler(stack)}

    seen["refit_killed"] = kill_task_process(api, "train_model", run_id, "refit", RUN_TIMEOUT)

    wait_for_task(api, "train_model", run_id, "evaluate", ("running", "success"), RUN_TIMEOUT)
    registry().list_versions("churn-classifier")  # the database exists (WAL: readers pass a writer)
    db_path = get_settings().registry_db
    with registry_locked(db_path):
        register = wait_for_task(api, "train_model", run_id, "register", ("running",), RUN_TIMEOUT, interval=0.2)
        seen["register_opened_registry"] = wait_until_open(register["pid"], db_path, 300)
        time.sleep(5)  # it waits for the lock now (up to the registry's 30 s busy timeout)
        seen["register_while_locked"] = task_instance(api, "train_model", run_id, "register")["state"]
    seen["register_try"] = register["try_number"]

    wait_for_task(api, "train_model", run_id, "approve_model", ("awaiting_input",), RUN_TIMEOUT)
    seen["approval_killed"] = kill_and_restart_scheduler(stack)
    time.sleep(10)  # a few loops of the new scheduler
    seen["approval_after_restart"] = task_instance(api, "train_model", run_id, "approve_model")["state"]
    seen["answers"] = answer_twice_at_once(api, "train_model", run_id, "approve_model")
    seen["run"] = api.wait_for_run("train_model", run_id, RUN_TIMEOUT)
    seen["registered"] = api.xcom("train_model", run_id, "register")
    print(f"training faults: {seen}")
    return seen


def test_the_training_run_survived_its_faults_and_completed(training):
    assert training["run"]["state"] == "success"


def test_the_scheduler_killed_during_tuning_left_the_run_to_its_successor(airflow, training):
    _, api = airflow
    assert training["tune_killed"]["pids"], "the scheduler's session had processes to kill"
    tune = task_instance(api, "train_model", training["run_id"], "tune")
    assert tune["state"] == "success" and tune["try_number"] > training["tune_killed"]["try"]


def test_the_refit_killed_was_retried_and_registered_one_version(airflow, training):
    _, api = airflow
    refit = task_instance(api, "train_model", training["run_id"], "refit")
    assert refit["state"] == "success" and refit["try_number"] == training["refit_killed"]["try_number"] + 1
    versions = registry().list_versions("churn-classifier")
    assert [v.arn for v in versions] == [training["registered"]["arn"]]


def test_registration_waited_for_the_registry_lock_and_did_not_fail(airflow, training):
    _, api = airflow
    assert training["register_opened_registry"]
    assert training["register_while_locked"] == "running"  # waiting, not failed
    register = task_instance(api, "train_model", training["run_id"], "register")
    assert register["state"] == "success" and register["try_number"] == training["register_try"]
    assert training["registered"]["version"] == 1 and not training["registered"]["reused"]


def test_the_approval_still_waited_after_the_scheduler_was_killed(training):
    assert training["approval_killed"]
    assert training["approval_after_restart"] == "awaiting_input"


def test_two_answers_at_once_record_exactly_one_decision(training):
    accepted = [user for user, status in training["answers"] if status == 200]
    assert accepted and {status for _, status in training["answers"]} <= {200, 409}
    version = registry().get(training["registered"]["arn"])
    history = registry().approval_history(version.arn)
    assert [(h["previous_status"], h["status"]) for h in history] == [("PendingManualApproval", "Approved")]
    assert version.status == "Approved" and version.approver == history[0]["approver"]
    # Airflow's PATCH .../hitlDetails may accept both answers (docs/reliability.md: it checks a
    # response it read before taking its row lock): then the registry records the one answer the
    # task resumed with, once.
    assert version.approver in accepted, (training["answers"], history)


def test_no_promise_was_broken_by_the_training_faults(airflow, training):
    _, api = airflow
    assert broken_promises(api, RUNS) == []


# --- 2. deploy_model: the runtime killed mid-deploy, and while serving prod ---------------------------

@pytest.fixture(scope="module")
def deployment(airflow, training):
    from mlops.core.settings import get_settings
    from tools.demo import PolicyApprover

    _, api = airflow
    run_id = api.wait_for_new_run("deploy_model", "asset_triggered", 300)
    runtime_dir = get_settings().runtime_dir
    seen: dict = {"run_id": run_id, "killed_mid_deploy": None}
    approver = PolicyApprover(api)
    for task_id in ("deploy_staging", "deploy_prod"):  # the first deploy caught unpacking its model
        if task_id == "deploy_prod":  # prod waits for its approval first
            wait_for_task(api, "deploy_model", run_id, "approve_prod", ("awaiting_input",), RUN_TIMEOUT)
            approver("deploy_model", run_id, {"task_id": "approve_prod"})
        ti = wait_for_task(api, "deploy_model", run_id, task_id, ("running",), RUN_TIMEOUT, interval=0.1)

        def deploying(task_id=task_id) -> bool:
            return task_instance(api, "deploy_model", run_id, task_id)["state"] == "running"

        if kill_runtime_mid_deploy(runtime_dir, deploying):
            seen["killed_mid_deploy"] = {"task_id": task_id, "try_number": ti["try_number"]}
            break
    approver = PolicyApprover(api)
    seen["run"] = api.wait_for_run("deploy_model", run_id, RUN_TIMEOUT, on_waiting=approver)
    print(f"deploy faults: {seen}")
    return seen


def test_the_deploy_whose_runtime_was_killed_was_retried_and_completed(airflow, deployment):
    _, api = airflow
    assert deployment["killed_mid_deploy"] is not None, "no deploy was caught unpacking its model"
    assert deployment["run"]["state"] == "success"
    killed = deployment["killed_mid_deploy"]
    ti = task_instance(api, "deploy_model", deployment["run_id"], killed["task_id"])
    assert ti["state"] == "success" and ti["try_number"] == killed["try_number"] + 1


def test_the_killed_deploy_is_recorded_failed_never_deployed(deployment, training):
    killed = deployment["killed_mid_deploy"]
    stage = killed["task_id"].removeprefix("deploy_")
    outcomes = [d.outcome for d in reversed(registry().deployments(stage)) if d.arn == training["registered"]["arn"]]
    assert outcomes == ["failed", "succeeded"]


def test_no_promise_was_broken_by_the_deploy_faults(airflow, deployment):
    _, api = airflow
    assert broken_promises(api, RUNS) == []


@pytest.fixture(scope="module")
def prod_after_restart(airflow, deployment, training):
    from mlops.backends.local.runtime import start_runtime
    from mlops.backends.local.runtime.service import log_file, read_pid
    from mlops.core.settings import get_settings
    from mlops.deploy.endpoint_checks import load_golden

    settings = get_settings()
    version = registry().get(training["registered"]["arn"])
    _, golden_rows, _ = load_golden(version.metadata["golden_uri"])
    row = ",".join(str(v) for v in golden_rows[0])
    prod = "churn-classifier-prod"
    before = invoke(prod, row)
    killed = read_pid(settings.runtime_dir)
    os.kill(killed, signal.SIGKILL)
    log_size = log_file(settings.runtime_dir).stat().st_size
    pid = start_runtime(settings)  # what a service manager does
    log = log_file(settings.runtime_dir).read_text(errors="replace")[log_size:]
    return {"killed": killed, "pid": pid, "before": before, "after": invoke(prod, row), "log": log,
            "served": served_endpoints(settings.runtime_url), "sha256": version.sha256}


def test_prod_comes_back_after_a_runtime_restart_with_the_same_model_its_digest_checked(prod_after_restart):
    assert prod_after_restart["pid"] != prod_after_restart["killed"]
    (prod,) = [e for e in prod_after_restart["served"] if e["name"] == "churn-classifier-prod"]
    assert prod["status"] == "InService" and prod["sha256"] == prod_after_restart["sha256"]
    assert f"restored endpoint churn-classifier-prod (sha256 {prod['sha256']} of" in prod_after_restart["log"]
    assert "verified" in prod_after_restart["log"]
    assert prod_after_restart["after"] == prod_after_restart["before"]


def test_no_promise_was_broken_by_the_runtime_restart(airflow, prod_after_restart):
    _, api = airflow
    assert broken_promises(api, RUNS) == []


# --- 3. autopilot_batch_predict: PostgreSQL restarted, the transform's worker killed ------------------

@pytest.fixture(scope="module")
def batch(airflow, prod_after_restart):
    from mlops.core.entrypoints import generators_module

    stack, api = airflow
    land(generators_module().churn(SCORING_ROWS, seed=8), "batch", "churn", "incoming", "scoring-faults.csv")
    api.unpause("autopilot_batch_predict")
    run_id = api.wait_for_new_run("autopilot_batch_predict", "scheduled", 300)  # its schedule's run, once unpaused
    seen: dict = {"run_id": run_id}
    with service_manager(stack) as restarted:
        wait_for_task(api, "autopilot_batch_predict", run_id, "automl_job", ("running", "deferred"), RUN_TIMEOUT)
        stack.database.restart()
        seen["transform_killed"] = kill_task_process(api, "autopilot_batch_predict", run_id, "batch_transform",
                                                     RUN_TIMEOUT)
        seen["run"] = api.wait_for_run("autopilot_batch_predict", run_id, RUN_TIMEOUT)
    seen["restarted"] = list(restarted)
    print(f"batch faults: {seen}")
    return seen


def test_the_batch_run_completed_after_postgres_restarted_and_its_transform_was_killed(airflow, batch):
    _, api = airflow
    assert batch["run"]["state"] == "success", api.task_states("autopilot_batch_predict", batch["run_id"])
    transform = task_instance(api, "autopilot_batch_predict", batch["run_id"], "batch_transform")
    assert transform["try_number"] == batch["transform_killed"]["try_number"] + 1


def test_the_killed_transform_published_one_output_with_every_row_once(airflow, batch):
    _, api = airflow
    published = api.xcom("autopilot_batch_predict", batch["run_id"], "publish_predictions")
    predictions = read_parquet(published["predictions_uri"])
    assert len(predictions) == published["rows"] == SCORING_ROWS and predictions["Phone"].is_unique


def test_every_component_runs_after_the_postgres_restart(airflow, batch):
    # The scheduler and the triggerer exit when their database connection is cut (Airflow's own
    # behaviour, docs/reliability.md); the service manager restarted them: batch["restarted"].
    stack, _ = airflow
    stack.check_alive()


def test_no_promise_was_broken_by_the_batch_faults(airflow, batch):
    _, api = airflow
    assert broken_promises(api, RUNS) == []
