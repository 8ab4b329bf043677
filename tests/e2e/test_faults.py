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
   the model of a deploy, and again once the endpoint tests (``test_staging``) run; once prod
   serves, the runtime is SIGKILLed again and started again,
   as a service manager would;
3. ``autopilot_batch_predict``: PostgreSQL restarts while the AutoML job runs, and the
   ``batch_transform`` task's process is SIGKILLed;
4. a full disk: size-limited tmpfs file systems (:mod:`testkit.disk`; skipped, saying why,
   where ``mount`` is refused) on the folders written, filled up so that ``s3_ingest`` writing a
   partition and ``autopilot_batch_predict``'s AutoML job packing a model fail with ``ENOSPC``;
   then the space is freed and the partition's task run again, and the AutoML task's retry runs
   the job under its next name (the first is recorded Failed, final as on Autopilot);
5. the S3 store unreachable: the data root moved to moto's S3 server (IAM enforced, the tasks
   signed as the shipped Airflow role), the server taken down at the moment ``s3_ingest``
   writes a partition's manifest and at the moment ``batch_transform`` moves its output into
   place, and started again before the task's retry.

After each, the same promises are checked (:func:`testkit.faults.broken_promises`): no
partition half-published, no batch output half-published, no model version registered twice
or without its artifact, no endpoint recorded as serving what it does not serve, no approval
lost or applied twice; and the run completes. docs/reliability.md is the matrix these tests
prove. Sections 4 and 5 need only the module's Airflow (``-k "full_disk or space_is_freed or
store_is or store_goes"`` runs them alone).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from mlops.core.naming import attempt_name
from testkit import iam
from testkit.airflow import restart_task_components, running_airflow
from testkit.chain import CHURN_ROWS, SCORING_ROWS, invoke, read_parquet, registry, small_pipelines
from testkit.faults import (
    answer_twice_at_once,
    broken_promises,
    kill_and_restart_scheduler,
    kill_runtime,
    kill_runtime_mid_deploy,
    kill_task_process,
    registry_locked,
    served_endpoints,
    service_manager,
    task_instance,
    transform_output_problems,
    wait_for_task,
    wait_until_open,
)
from testkit.s3 import S3Server

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


# The module's landed files end in .csv.faults and its s3_ingest runs look for that pattern: the
# runs the hourly schedule creates (s3_ingest is unpaused here) look for *.csv and leave them alone.
# Otherwise one created at an hour boundary took a section's file while its run waited to retry.
LANDED = "*.csv.faults"
INGEST_CONF = {"pattern": LANDED}


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
    land(generators_module().churn(CHURN_ROWS, seed=7), "landing", "churn", "customers-faults.csv.faults")
    for dag_id in ("s3_ingest", "train_model", "deploy_model"):
        api.unpause(dag_id)
    before = now()
    ingest = api.send("POST", "/dags/s3_ingest/dagRuns", {"logical_date": f"{DS}T00:00:00Z", "conf": INGEST_CONF})["dag_run_id"]
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
    from mlops.backends.local.runtime.service import log_file, read_pid
    from mlops.core.settings import get_settings
    from tools.demo import PolicyApprover

    _, api = airflow
    run_id = api.wait_for_new_run("deploy_model", "asset_triggered", 300)
    runtime_dir = get_settings().runtime_dir
    seen: dict = {"run_id": run_id, "killed_mid_deploy": None, "killed_in_endpoint_tests": None}
    approver = PolicyApprover(api)
    for task_id in ("deploy_staging", "test_staging", "deploy_prod"):  # the first deploy caught unpacking
        if task_id == "deploy_prod":  # prod waits for its approval first
            if seen["killed_mid_deploy"]:
                break
            wait_for_task(api, "deploy_model", run_id, "approve_prod", ("awaiting_input",), RUN_TIMEOUT)
            approver("deploy_model", run_id, {"task_id": "approve_prod"})
        ti = wait_for_task(api, "deploy_model", run_id, task_id, ("running",), RUN_TIMEOUT, interval=0.1)
        if task_id == "test_staging":  # the endpoint tests have started: the runtime dies under them
            seen["killed_in_endpoint_tests"] = {"try_number": ti["try_number"], "pid": kill_runtime(runtime_dir),
                                                "log_size": log_file(runtime_dir).stat().st_size}
            continue

        def deploying(task_id=task_id) -> bool:
            return task_instance(api, "deploy_model", run_id, task_id)["state"] == "running"

        if kill_runtime_mid_deploy(runtime_dir, deploying):
            seen["killed_mid_deploy"] = {"task_id": task_id, "try_number": ti["try_number"]}
    approver = PolicyApprover(api)
    seen["run"] = api.wait_for_run("deploy_model", run_id, RUN_TIMEOUT, on_waiting=approver)
    killed = seen["killed_in_endpoint_tests"]
    seen["endpoint_tests"] = task_instance(api, "deploy_model", run_id, "test_staging")
    seen["endpoint_checks"] = api.xcom("deploy_model", run_id, "test_staging")
    seen["runtime_log_after_tests_kill"] = log_file(runtime_dir).read_text(errors="replace")[killed["log_size"]:]
    seen["runtime_pid_after"] = read_pid(runtime_dir)
    print(f"deploy faults: { {k: v for k, v in seen.items() if k != 'runtime_log_after_tests_kill'} }")
    return seen


def test_the_deploy_whose_runtime_was_killed_was_retried_and_completed(airflow, deployment):
    _, api = airflow
    assert deployment["killed_mid_deploy"] is not None, "no deploy was caught unpacking its model"
    assert deployment["run"]["state"] == "success"
    killed = deployment["killed_mid_deploy"]
    ti = task_instance(api, "deploy_model", deployment["run_id"], killed["task_id"])
    assert ti["state"] == "success" and ti["try_number"] == killed["try_number"] + 1


def test_endpoint_tests_whose_runtime_died_under_them_check_the_restored_staging_model(deployment, training):
    """The runtime is SIGKILLed once test_staging runs: the checks start it again (as any call
    through the hosting port does), staging comes back from its record with the artifact's
    digest verified, and the checks pass against the golden answers of the registered version:
    no check passes against a runtime that is not serving the version."""
    killed, checks = deployment["killed_in_endpoint_tests"], deployment["endpoint_checks"]
    assert killed is not None and killed["pid"] is not None
    assert deployment["endpoint_tests"]["state"] == "success"
    assert deployment["runtime_pid_after"] not in (None, killed["pid"])  # started again
    log = deployment["runtime_log_after_tests_kill"]
    sha256 = registry().get(training["registered"]["arn"]).sha256
    assert f"restored endpoint churn-classifier-staging (sha256 {sha256} of" in log and "verified" in log, log[-2000:]
    assert checks["passed"], checks
    assert {c["name"] for c in checks["checks"] if c["passed"]} >= {"csv_contract", "golden_rows", "serves_after_error"}


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


# --- 4. a full disk (a size-limited tmpfs): writing a partition, packing a model ---------------------

DISK_DS = "2026-05-01"
BATCH = "autopilot_batch_predict"


def batch_run(api) -> str:
    """A run of autopilot_batch_predict: the scheduled one unpausing makes, or a triggered one
    once it is unpaused (it runs one at a time)."""
    if api.get(f"/dags/{BATCH}")["is_paused"]:
        api.unpause(BATCH)
        return api.wait_for_new_run(BATCH, "scheduled", 300)
    return api.trigger(BATCH)


def land_scoring_once(seed: int) -> None:
    from mlops.core.entrypoints import generators_module
    from mlops.core.storage import data_path

    incoming = data_path("batch", "churn", "incoming")
    if not (incoming.exists() and any(p.name.endswith(".csv") for p in incoming.iterdir())):
        land(generators_module().churn(SCORING_ROWS, seed=seed), "batch", "churn", "incoming", f"scoring-{seed}.csv")


def clear_task(api, dag_id: str, run_id: str, task_id: str) -> None:
    """Run ``task_id`` again now (with what follows it), as a person does from the UI."""
    api.send("POST", f"/dags/{dag_id}/clearTaskInstances",
             {"dag_run_id": run_id, "task_ids": [task_id], "include_downstream": True, "dry_run": False,
              "reset_dag_runs": True, "only_failed": False})


@pytest.fixture(scope="module")
def full_disks(airflow):
    """Size-limited tmpfs file systems on the folders the faults write: ``raw/churn`` (the
    partitions, 1 MB) and ``autopilot`` (the AutoML jobs' candidates and the batch runs, 16 MB)."""
    from urllib.parse import urlparse

    from mlops.core.settings import get_settings
    from testkit.disk import size_limited_tmpfs

    root = Path(urlparse(get_settings().data_uri).path)
    with size_limited_tmpfs(root / "raw" / "churn", "1m") as raw, size_limited_tmpfs(root / "autopilot", "16m") as batch:
        yield raw, batch


@pytest.fixture(scope="module")
def disk_full_partition(airflow, full_disks):
    from mlops.core.entrypoints import generators_module
    from testkit.disk import fill_up, free_up

    _, api = airflow
    raw, _ = full_disks
    api.pause("train_model")  # the partition's Asset event would start a training run
    api.unpause("s3_ingest")
    land(generators_module().churn(CHURN_ROWS, seed=11), "landing", "churn", "customers-disk.csv.faults")
    fill_up(raw)
    task_id = "churn.publish_raw_partition"
    run_id = api.send("POST", "/dags/s3_ingest/dagRuns", {"logical_date": f"{DISK_DS}T00:00:00Z", "conf": INGEST_CONF})["dag_run_id"]
    failed = wait_for_task(api, "s3_ingest", run_id, task_id, ("up_for_retry", "failed"), RUN_TIMEOUT)
    partition = raw / f"ds={DISK_DS}"
    seen: dict = {"run_id": run_id, "failed": failed,
                  "left": sorted(p.name for p in partition.iterdir()) if partition.exists() else [],
                  "landed": sorted(p.name for p in (raw.parents[1] / "landing" / "churn").iterdir()),
                  "log": api.task_log("s3_ingest", run_id, task_id, failed["try_number"])}
    free_up(raw)
    clear_task(api, "s3_ingest", run_id, task_id)  # the space is back: run it again
    seen["run"] = api.wait_for_run("s3_ingest", run_id, RUN_TIMEOUT)
    seen["rerun"] = task_instance(api, "s3_ingest", run_id, task_id)
    seen["published"] = api.xcom("s3_ingest", run_id, task_id)
    seen["files"] = sorted(p.name for p in partition.iterdir())
    print(f"disk-full partition: { {k: v for k, v in seen.items() if k != 'log'} }")
    return seen


def test_a_partition_written_to_a_full_disk_fails_naming_it_and_leaves_nothing(disk_full_partition):
    seen = disk_full_partition
    assert seen["failed"]["try_number"] == 1
    assert "[Errno 28] No space left on device" in seen["log"]
    assert seen["left"] == []  # no manifest, no torn part, no temporary file
    assert seen["landed"] == ["customers-disk.csv.faults"]  # the landed file is kept for the re-run


def test_the_partition_is_published_once_after_space_is_freed(airflow, disk_full_partition):
    _, api = airflow
    seen = disk_full_partition
    assert seen["run"]["state"] == "success" and seen["rerun"]["try_number"] == 2
    assert seen["published"]["rows"] == CHURN_ROWS and seen["published"]["files"] == 1
    parts = [name for name in seen["files"] if name.startswith("part-")]
    assert len(parts) == 1 and seen["files"] == sorted([*parts, "_manifest.json"])  # try 1 left nothing
    assert broken_promises(api, RUNS) == []


@pytest.fixture(scope="module")
def disk_full_model(airflow, full_disks, disk_full_partition):
    from urllib.parse import urlparse

    from mlops.backends import get_backend
    from testkit.disk import fill_up, free_up

    _, api = airflow
    _, batch = full_disks
    land_scoring_once(seed=12)
    run_id = batch_run(api)
    wait_for_task(api, BATCH, run_id, "automl_job", ("running",), RUN_TIMEOUT)  # prepare wrote its inputs
    fill_up(batch)
    failed = wait_for_task(api, BATCH, run_id, "automl_job", ("up_for_retry", "failed"), RUN_TIMEOUT)
    plan = api.xcom(BATCH, run_id, "prepare")
    job_dir = Path(urlparse(plan["run_uri"]).path) / plan["job_name"]
    seen: dict = {"run_id": run_id, "failed": failed,
                  "left": sorted(str(p.relative_to(job_dir)) for p in job_dir.rglob("*") if p.is_file())
                  if job_dir.exists() else [],
                  "job": get_backend().automl.describe_job(plan["job_name"]),
                  "log": api.task_log(BATCH, run_id, "automl_job", failed["try_number"])}
    free_up(batch)
    # The job is recorded Failed, final as on Autopilot: the task's retry runs <job>-r2.
    seen["run"] = api.wait_for_run(BATCH, run_id, RUN_TIMEOUT)
    seen["plan"] = plan
    seen["retried_job"] = api.xcom(BATCH, run_id, "automl_job")
    seen["failed_job_after"] = get_backend().automl.describe_job(plan["job_name"])
    seen["published"] = api.xcom(BATCH, run_id, "publish_predictions")
    seen["predictions"] = read_parquet(seen["published"]["predictions_uri"]) if seen["published"] else None
    print(f"disk-full model: { {k: v for k, v in seen.items() if k not in ('log', 'predictions', 'job')} }")
    return seen


def test_a_model_packed_onto_a_full_disk_fails_naming_it_and_leaves_no_artifact(disk_full_model):
    seen = disk_full_model
    assert seen["failed"]["try_number"] == 1
    assert "No space left on device" in seen["log"] and f"AutoML job {seen['job']['job_name']} Failed" in seen["log"]
    assert seen["job"]["status"] == "Failed" and "[Errno 28] No space left on device" in seen["job"]["failure_reason"]
    assert seen["left"] == []  # no torn model.tar.gz, no temporary file


def test_the_retry_after_space_is_freed_runs_the_next_job_name_and_publishes_every_row_once(airflow,
                                                                                             disk_full_model):
    _, api = airflow
    seen = disk_full_model
    assert seen["failed"]["state"] == "up_for_retry"
    assert seen["run"]["state"] == "success"
    # A Failed job is final: the retry ran the next name (cut to fit AutoMLJobName's 32 characters)
    assert seen["retried_job"]["job_name"] == attempt_name(seen["plan"]["job_name"], 2, 32)
    assert seen["retried_job"]["job_name"].endswith("-r2")
    assert seen["retried_job"]["status"] == "Completed" and seen["failed_job_after"] == seen["job"]
    assert len(seen["predictions"]) == seen["published"]["rows"] == seen["plan"]["rows"]
    assert seen["predictions"]["Phone"].is_unique
    assert broken_promises(api, RUNS) == []


# --- 5. the S3 store unreachable (moto's S3 server stopped, then started) ----------------------------

S3_BUCKET, S3_PREFIX, S3_CONN_ID, S3_DS = "mlops-faults", "mlops/data", "s3_store", "2026-03-01"


@pytest.fixture(scope="module")
def s3_store(airflow):
    """The data root on ``s3://mlops-faults/mlops/data`` (moto's S3 server on loopback, IAM
    enforced), the tasks signed as a user holding only the shipped Airflow role's policy; the
    scheduler and the triggerer restarted with it. The registry and the runtime stay the module's."""
    stack, _ = airflow
    with S3Server() as s3, pytest.MonkeyPatch.context() as patch:
        s3.client().create_bucket(Bucket=S3_BUCKET)
        role = s3.add_user("airflow-role", iam.render_for_store("airflow-execution-role.json", S3_BUCKET, S3_PREFIX))
        s3.enforce_iam()
        env = {"MLOPS_DATA_URI": f"s3://{S3_BUCKET}/{S3_PREFIX}", "MLOPS_AWS_CONN_ID": S3_CONN_ID,
               f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": s3.connection_uri(role)}
        restart_task_components(stack, env)
        for key, value in env.items():  # this process lands and reads as the tasks do
            patch.setenv(key, value)
        yield s3


def key_of(uri: str) -> str:
    return uri.split("@", 1)[1].split("/", 1)[1] if "@" in uri else uri.removeprefix("s3://").split("/", 1)[1]


@pytest.fixture(scope="module")
def s3_landing(airflow, s3_store):
    from mlops.core.entrypoints import generators_module

    _, api = airflow
    s3 = s3_store
    api.pause("train_model")
    api.unpause("s3_ingest")
    land(generators_module().churn(CHURN_ROWS, seed=13), "landing", "churn", "customers-s3.csv.faults")
    partition = f"{S3_PREFIX}/raw/churn/ds={S3_DS}/"
    s3.go_down_on(lambda r: r.method == "PUT" and r.key == f"{partition}_manifest.json")  # parts written
    task_id = "churn.publish_raw_partition"
    run_id = api.send("POST", "/dags/s3_ingest/dagRuns", {"logical_date": f"{S3_DS}T00:00:00Z", "conf": INGEST_CONF})["dag_run_id"]
    failed = wait_for_task(api, "s3_ingest", run_id, task_id, ("up_for_retry", "failed"), RUN_TIMEOUT)
    s3.start()  # the store is back before the retry (retry_delay: 1 minute)
    seen: dict = {"run_id": run_id, "failed": failed, "cut": s3.cut, "url": s3.url,
                  "after_failure": s3.keys(S3_BUCKET, S3_PREFIX),
                  "log": api.task_log("s3_ingest", run_id, task_id, failed["try_number"])}
    seen["run"] = api.wait_for_run("s3_ingest", run_id, RUN_TIMEOUT)
    seen["retry"] = task_instance(api, "s3_ingest", run_id, task_id)
    seen["published"] = api.xcom("s3_ingest", run_id, task_id)
    seen["keys"] = s3.keys(S3_BUCKET, S3_PREFIX)
    seen["partition"] = partition
    seen["promises"] = broken_promises(api, RUNS)
    print(f"s3 landing: { {k: v for k, v in seen.items() if k != 'log'} }")
    return seen


def test_landing_while_the_store_is_down_fails_naming_its_endpoint_and_publishes_nothing(s3_landing):
    seen = s3_landing
    assert seen["cut"] is not None and seen["cut"].key.endswith("_manifest.json"), "the store never went down"
    assert seen["failed"]["try_number"] == 1
    assert f'Could not connect to the endpoint URL: "{seen["url"]}/' in seen["log"]
    assert f"{seen['partition']}_manifest.json" not in seen["after_failure"]  # nothing published
    assert f"{S3_PREFIX}/landing/churn/customers-s3.csv.faults" in seen["after_failure"]  # nothing landed lost


def test_the_landing_retry_once_the_store_is_back_publishes_the_partition_once(s3_landing):
    seen = s3_landing
    assert seen["run"]["state"] == "success" and seen["retry"]["try_number"] == 2
    assert seen["published"]["rows"] == CHURN_ROWS
    in_partition = [k for k in seen["keys"] if k.startswith(seen["partition"])]
    parts = [k for k in in_partition if k.endswith(".parquet")]
    assert len(parts) == 1 and in_partition == sorted([*parts, f"{seen['partition']}_manifest.json"])
    assert [k for k in seen["keys"] if "/landing/" in k] == []
    assert seen["promises"] == []


@pytest.fixture(scope="module")
def s3_batch(airflow, s3_store, s3_landing):
    from mlops.core.entrypoints import generators_module

    _, api = airflow
    s3 = s3_store
    land(generators_module().churn(SCORING_ROWS, seed=14), "batch", "churn", "incoming", "scoring-s3.csv")
    s3.go_down_on(lambda r: r.method == "PUT" and r.key.endswith("/transform/output/records.csv.out"))
    run_id = batch_run(api)
    failed = wait_for_task(api, BATCH, run_id, "batch_transform", ("up_for_retry", "failed"), RUN_TIMEOUT)
    s3.start()
    plan = api.xcom(BATCH, run_id, "prepare")
    output_uri = f"{plan['run_uri']}/transform/output"
    seen: dict = {"run_id": run_id, "failed": failed, "cut": s3.cut, "url": s3.url, "plan": plan,
                  "after_failure": s3.keys(S3_BUCKET, key_of(output_uri)),
                  "problems_after_failure": transform_output_problems(output_uri, plan["input_uri"]),
                  "log": api.task_log(BATCH, run_id, "batch_transform", failed["try_number"])}
    seen["run"] = api.wait_for_run(BATCH, run_id, RUN_TIMEOUT)
    seen["retry"] = task_instance(api, BATCH, run_id, "batch_transform")
    seen["keys"] = s3.keys(S3_BUCKET, key_of(output_uri))
    seen["published"] = api.xcom(BATCH, run_id, "publish_predictions")
    seen["predictions"] = read_parquet(seen["published"]["predictions_uri"]) if seen["published"] else None
    seen["promises"] = broken_promises(api, RUNS)
    print(f"s3 batch: { {k: v for k, v in seen.items() if k not in ('log', 'predictions')} }")
    return seen


def test_a_transform_whose_store_goes_down_fails_naming_its_endpoint_and_publishes_nothing(s3_batch):
    seen = s3_batch
    assert seen["cut"] is not None and seen["cut"].key.endswith(".out"), "the store never went down"
    assert seen["failed"]["try_number"] == 1
    assert "TransformOutputError" in seen["log"] and "could not write s3://" in seen["log"]
    assert f'Could not connect to the endpoint URL: "{seen["url"]}/' in seen["log"]
    assert not any(k.endswith("/_SUCCESS") for k in seen["after_failure"])
    assert seen["problems_after_failure"] == []  # no torn output; only a hidden temporary one


def test_the_transform_retry_once_the_store_is_back_publishes_one_output(s3_batch):
    seen = s3_batch
    assert seen["run"]["state"] == "success" and seen["retry"]["try_number"] == 2
    prefix = key_of(f"{seen['plan']['run_uri']}/transform/output")
    assert seen["keys"] == [f"{prefix}/_SUCCESS", f"{prefix}/records.csv.out"]  # nothing temporary left
    assert len(seen["predictions"]) == seen["published"]["rows"] == seen["plan"]["rows"] == SCORING_ROWS
    assert seen["predictions"]["Phone"].is_unique
    assert seen["promises"] == []
