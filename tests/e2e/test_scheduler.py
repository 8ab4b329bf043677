"""Every DAG under Airflow's real scheduler, on PostgreSQL, the way users run them.

One Airflow (:class:`~tools.airflow_stack.AirflowStack`: api-server, scheduler with the
LocalExecutor, dag-processor, triggerer) serves the whole module; the tests run in file order
and build on each other, like a user's week:

1. the demo's chain: sample data landed, ``s3_ingest`` triggered over REST, Asset events start
   ``customer_segmentation`` and ``train_model``, the approvals wait as human-in-the-loop tasks
   and are answered over the HITL REST API by the policy, the approved model's event starts
   ``deploy_model``, and unpausing ``autopilot_batch_predict`` starts its scheduled run;
2. new data ingested for another date (a REST trigger with a logical date): the next version is
   trained on exactly that partition, approved and promoted by a person over REST;
3. ``rollback_model`` puts the first version back in prod;
4. re-training on the first partition returns the version already registered;
5. clearing a task re-reads the inputs the run was triggered with;
6. ``keyspaces_ingest`` without its connection fails in its first task, naming it;
7. an ``s3_ingest`` run waiting for files does not hold back a triggered one;
8. the demo's chain again on an S3 store (``MLOPS_DATA_URI=s3://<bucket>/<prefix>``, moto's S3
   server on loopback), the tasks and the model runtime signed as IAM users holding the
   shipped Airflow and SageMaker role policies, with IAM enforced.

Outcomes are checked outside Airflow: the registry, the prod endpoint over HTTP through boto3,
prediction and segment rows in the object store (and, on S3, the objects in the bucket).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import iam
from testkit.airflow import model_runtime, project_environment, restart_task_components, running_airflow
from testkit.chain import (
    CHURN_ROWS,
    RETAIL_ROWS,
    SCORING_ROWS,
    assert_prod_answers_and_staging_is_gone,
    golden_answer,
    invoke,
    read_parquet,
    registry,
    run_the_demos_chain,
    small_pipelines,
)
from testkit.s3 import S3Server

pytestmark = pytest.mark.scheduler

SECOND_DATE = "2026-01-15"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("scheduler")
    with running_airflow(home, small_pipelines(home / "pipelines")) as (stack, api, env), \
            pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():  # this process reads the registry and the store as the tasks do
            patch.setenv(key, value)
        yield stack, api


@pytest.fixture(scope="module")
def chain(airflow):
    _, api = airflow
    return run_the_demos_chain(api)


# --- 1. the demo's chain ----------------------------------------------------------------------------

def test_asset_events_started_segmentation_and_training_runs_without_a_logical_date(airflow, chain):
    _, api = airflow
    for dag_id in ("customer_segmentation", "train_model", "deploy_model"):
        run = api.run(dag_id, chain["runs"][dag_id])
        assert run["run_type"] == "asset_triggered" and run["logical_date"] is None, dag_id
        assert run["state"] == "success", dag_id
    assert api.run("autopilot_batch_predict", chain["runs"]["autopilot_batch_predict"])["run_type"] == "scheduled"


def test_training_and_segmentation_read_the_partitions_their_events_announced(airflow, chain):
    _, api = airflow
    runs = chain["runs"]
    for dag_id, use_case, rows in (("train_model", "churn", CHURN_ROWS), ("customer_segmentation", "retail", RETAIL_ROWS)):
        (event,) = api.get(f"/dags/{dag_id}/dagRuns/{runs[dag_id]}/upstreamAssetEvents")["asset_events"]
        assert event["name"] == f"{use_case}_raw"
        assert api.xcom(dag_id, runs[dag_id], "resolve_partition", "uri") == event["extra"]["partition_uri"]
        assert api.xcom(dag_id, runs[dag_id], "resolve_partition", "digest") == event["extra"]["digest"]
        assert event["extra"]["rows"] == rows


def test_every_segment_row_is_written(chain):
    segmentation = chain["summary"]["segmentation"]
    results = read_parquet(segmentation["results_uri"])
    assert set(results["segment"]) == set(segmentation["segments"])
    assert results["total_customers"].sum() == segmentation["customers"]


def test_the_policy_answered_both_approvals_over_the_hitl_rest_api(chain):
    assert [(a["dag_id"], a["task_id"], a["option"]) for a in chain["answered"]] == [
        ("train_model", "approve_model", "Approve"), ("deploy_model", "approve_prod", "Approve")]
    version = registry().get(chain["summary"]["registered"]["arn"])
    assert version.status == "Approved" and version.approver == "policy"
    assert version.approval_reason.startswith("policy: holdout_roc_auc=")
    assert chain["summary"]["prod_decision"]["approver"] == "policy"


def test_deploy_model_deployed_the_version_the_approval_announced(airflow, chain):
    _, api = airflow
    run_id = chain["runs"]["deploy_model"]
    (event,) = api.get(f"/dags/deploy_model/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]
    assert event["extra"]["model_package_arn"] == chain["summary"]["registered"]["arn"]
    assert api.xcom("deploy_model", run_id, "deploy_prod")["arn"] == event["extra"]["model_package_arn"]


def test_the_prod_endpoint_answers_over_http_and_staging_is_gone(chain):
    assert_prod_answers_and_staging_is_gone(chain["summary"])


def test_stages_deployed_in_accounts_of_their_own_and_the_records_stayed_with_the_registry(chain):
    from mlops.backends.local.accounts import STAGE_ACCOUNTS

    arn = chain["summary"]["registered"]["arn"]
    records = [(d.stage, d.account, d.outcome) for d in registry().deployments() if d.arn == arn]
    assert ("staging", STAGE_ACCOUNTS["staging"], "succeeded") in records
    assert ("prod", STAGE_ACCOUNTS["prod"], "succeeded") in records
    assert chain["summary"]["prod"]["account"] == STAGE_ACCOUNTS["prod"]


def test_the_chain_notified_the_approvals_and_the_prod_deploy(chain):
    from mlops.notifications import read_notifications

    arn = chain["summary"]["registered"]["arn"]
    sent = [(n["event"], n["dag_id"]) for n in read_notifications() if n["model_version"] == arn]
    assert ("approval_waiting", "train_model") in sent and ("approval_decision", "train_model") in sent
    assert ("approval_waiting", "deploy_model") in sent and ("approval_decision", "deploy_model") in sent
    assert ("prod_deployed", "deploy_model") in sent
    deployed = next(n for n in read_notifications() if n["event"] == "prod_deployed" and n["model_version"] == arn)
    assert deployed["links"]["ui"].startswith("http") and "/dags/deploy_model/runs/" in deployed["links"]["ui"]


def test_batch_predictions_have_one_row_per_scoring_row(chain):
    batch = chain["summary"]["batch"]
    predictions = read_parquet(batch["predictions_uri"])
    assert len(predictions) == batch["rows"] == SCORING_ROWS
    assert predictions["Phone"].is_unique and predictions["probability"].between(0, 1).all()


# --- 2. new data for another date, approved and promoted by a person --------------------------------

@pytest.fixture(scope="module")
def second_version(airflow, chain):
    from mlops.core.entrypoints import generators_module
    from mlops.core.storage import data_path

    _, api = airflow
    path = data_path("landing", "churn", "customers-second.csv")
    with path.open("w") as handle:
        generators_module().churn(CHURN_ROWS, seed=21).to_csv(handle, index=False)
    from tools.airflow_stack import now

    before = now()
    ingest = api.send("POST", "/dags/s3_ingest/dagRuns",
                      {"logical_date": f"{SECOND_DATE}T00:00:00Z", "conf": {}})["dag_run_id"]
    assert api.wait_for_run("s3_ingest", ingest, 300)["state"] == "success"
    person = api.as_user("admin")
    answers = []

    def approve_as_a_person(dag_id, run_id, ti):
        answers.append(person.answer(dag_id, run_id, ti["task_id"], "Approve"))

    train = api.wait_for_new_run("train_model", "asset_triggered", 120, after=before)
    assert api.wait_for_run("train_model", train, 900, on_waiting=approve_as_a_person)["state"] == "success"
    deploy = api.wait_for_new_run("deploy_model", "asset_triggered", 120, after=before)
    assert api.wait_for_run("deploy_model", deploy, 900, on_waiting=approve_as_a_person)["state"] == "success"
    return {"train": train, "deploy": deploy, "answers": answers,
            "registered": api.xcom("train_model", train, "register")}


def test_the_next_version_is_trained_on_the_partition_of_its_date(airflow, second_version):
    _, api = airflow
    uri = api.xcom("train_model", second_version["train"], "resolve_partition", "uri")
    assert uri.endswith(f"raw/churn/ds={SECOND_DATE}")
    assert second_version["registered"]["version"] == 2 and not second_version["registered"]["reused"]


def test_a_person_approved_over_rest_is_recorded_as_the_approver(airflow, second_version):
    assert [a["responded_by"]["name"] for a in second_version["answers"]] == ["admin", "admin"]
    version = registry().get(second_version["registered"]["arn"])
    assert version.status == "Approved" and version.approver == "admin"


def test_prod_serves_the_second_version(chain, second_version):
    from mlops.deploy.flow import version_in_stage_at

    assert version_in_stage_at(registry(), "prod").arn == second_version["registered"]["arn"]


# --- 3. rollback ------------------------------------------------------------------------------------

def test_rollback_model_puts_the_previous_approved_version_back_in_prod(airflow, chain, second_version):
    from mlops.deploy.flow import version_in_stage_at

    _, api = airflow
    api.unpause("rollback_model")
    run_id = api.trigger("rollback_model")
    assert api.wait_for_run("rollback_model", run_id, 300)["state"] == "success"

    first = chain["summary"]["registered"]["arn"]
    assert version_in_stage_at(registry(), "prod").arn == first
    newest = registry().deployments("prod")[0]
    assert newest.detail["rollback_from"] == second_version["registered"]["arn"] and newest.outcome == "succeeded"
    label, probability = invoke(chain["summary"]["prod"]["name"], chain["summary"]["example_row"])
    expected_label, expected_probability = golden_answer(chain["summary"])  # the first version's answer
    assert (label, probability) == (expected_label, pytest.approx(expected_probability, abs=1e-6))


# --- 4. the same data, code and hyperparameters: no second version ----------------------------------

def test_retraining_on_the_same_partition_returns_the_registered_version(airflow, chain, second_version):
    _, api = airflow
    api.pause("deploy_model")  # nothing new is approved; no deploy run is wanted either way
    first_run = chain["runs"]["train_model"]
    partition = api.xcom("train_model", first_run, "resolve_partition", "uri")
    run_id = api.trigger("train_model", {"partition_uri": partition, "approval_mode": "policy"})
    assert api.wait_for_run("train_model", run_id, 900)["state"] == "success"

    registered = api.xcom("train_model", run_id, "register")
    assert registered["reused"] and registered["arn"] == chain["summary"]["registered"]["arn"]
    assert [v.version for v in registry().list_versions("churn-classifier")] == [2, 1]


# --- 5. a cleared task reads the same inputs ----------------------------------------------------------

def test_clearing_a_task_of_an_asset_triggered_run_reads_the_partition_it_announced(airflow, chain, second_version):
    _, api = airflow
    run_id = chain["runs"]["train_model"]
    before = api.xcom("train_model", run_id, "resolve_partition", "uri")
    api.send("POST", "/dags/train_model/clearTaskInstances",
             {"dag_run_id": run_id, "task_ids": ["resolve_partition"], "include_downstream": False,
              "dry_run": False, "reset_dag_runs": True, "only_failed": False})
    assert api.wait_for_run("train_model", run_id, 300)["state"] == "success"

    assert api.xcom("train_model", run_id, "resolve_partition", "uri") == before
    assert not before.endswith(SECOND_DATE)  # not the newer partition ingested since


# --- 6. keyspaces_ingest without its connection ---------------------------------------------------------

def test_keyspaces_ingest_without_its_connection_fails_in_its_first_task(airflow):
    _, api = airflow
    api.unpause("keyspaces_ingest")
    run_id = api.trigger("keyspaces_ingest")
    assert api.wait_for_run("keyspaces_ingest", run_id, 300)["state"] == "failed"

    tis = {ti["task_id"]: ti for ti in api.task_instances("keyspaces_ingest", run_id)}
    assert tis["segment_list"]["state"] == "failed" and tis["segment_list"]["try_number"] == 1
    assert all(ti["state"] == "upstream_failed" for name, ti in tis.items() if name != "segment_list")
    text = api.task_log("keyspaces_ingest", run_id, "segment_list")
    assert "no Airflow connection 'keyspaces_default'" in text and "AIRFLOW_CONN_KEYSPACES_DEFAULT" in text


# --- 7. a waiting s3_ingest run and a triggered one ------------------------------------------------

def test_a_triggered_s3_ingest_does_not_wait_behind_a_run_waiting_for_files(airflow):
    _, api = airflow
    api.unpause("s3_ingest")
    waiting = api.trigger("s3_ingest", {"wait_for_files": True})  # waits like a scheduled run does
    api.wait_for(lambda: api.task_states("s3_ingest", waiting).get("churn.wait_for_files") == "deferred",
                 180, "the first run to wait for files in the triggerer")

    run_id = api.trigger("s3_ingest")
    assert api.wait_for_run("s3_ingest", run_id, 180)["state"] == "success"

    states = api.task_states("s3_ingest", run_id)
    assert states["churn.wait_for_files"] == "skipped" and states["churn.publish_raw_partition"] == "skipped"
    assert api.run("s3_ingest", waiting)["state"] == "running"  # still waiting for files, holding no slot


# --- 8. the chain on an S3 store, under the shipped IAM policies ---------------------------------------

S3_BUCKET, S3_PREFIX, S3_CONN_ID = "mlops-chain", "mlops/data", "s3_store"


@pytest.fixture(scope="module")
def s3_chain(airflow, tmp_path_factory):
    """The demo's chain on ``s3://mlops-chain/mlops/data``, with a home (registry, runtime) of its own.

    The S3 server is moto's on loopback (:class:`testkit.s3.S3Server`). The scheduler and the
    triggerer are restarted with the S3 settings; tasks reach the bucket through the Airflow
    connection ``s3_store`` (``endpoint_url`` in its extra) as an IAM user whose only policy is
    the shipped Airflow role's, the model runtime with ``AWS_*`` variables as one holding the
    SageMaker role's, and IAM is enforced from the first request of the chain.
    """
    stack, api = airflow
    home = tmp_path_factory.mktemp("scheduler-s3")
    with S3Server() as s3, pytest.MonkeyPatch.context() as patch:
        s3.client().create_bucket(Bucket=S3_BUCKET)
        tasks_user = s3.add_user("airflow-role", iam.render_for_store("airflow-execution-role.json", S3_BUCKET,
                                                                      S3_PREFIX))
        runtime_user = s3.add_user("sagemaker-role", iam.render_for_store("sagemaker-execution-role.json",
                                                                          S3_BUCKET, S3_PREFIX))
        s3.enforce_iam()
        env = {**project_environment(home, Path(stack.env["MLOPS_PIPELINES_DIR"])),
               "MLOPS_DATA_URI": f"s3://{S3_BUCKET}/{S3_PREFIX}", "MLOPS_AWS_CONN_ID": S3_CONN_ID,
               f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": s3.connection_uri(tasks_user)}
        with model_runtime({**env, **s3.environment(runtime_user)}):
            restart_task_components(stack, env)
            for key, value in env.items():  # this process lands the data and reads the outcomes as the tasks do
                patch.setenv(key, value)
            yield {**run_the_demos_chain(api, trigger_autopilot=True), "s3": s3}


def test_on_s3_the_chain_ran_from_one_rest_trigger_through_asset_events(airflow, s3_chain):
    _, api = airflow
    runs = s3_chain["runs"]
    for dag_id in ("customer_segmentation", "train_model", "deploy_model"):
        assert api.run(dag_id, runs[dag_id])["run_type"] == "asset_triggered", dag_id
    assert all(api.run(dag_id, run_id)["state"] == "success" for dag_id, run_id in runs.items())
    assert [(a["dag_id"], a["option"]) for a in s3_chain["answered"]] == [
        ("train_model", "Approve"), ("deploy_model", "Approve")]


def test_on_s3_the_data_models_and_results_are_objects_in_the_bucket(s3_chain):
    keys = s3_chain["s3"].keys(S3_BUCKET, S3_PREFIX)
    summary = s3_chain["summary"]
    in_bucket = f"s3://{S3_CONN_ID}@{S3_BUCKET}/"

    assert [k for k in keys if "/landing/" in k] == []  # moved to processed/ once published
    assert {k.split("/")[3] for k in keys if k.startswith(f"{S3_PREFIX}/processed/")} == {"churn", "retail"}
    for use_case in ("churn", "retail"):
        assert any(k.startswith(f"{S3_PREFIX}/raw/{use_case}/ds=") and k.endswith("/_manifest.json") for k in keys)
    version = registry().get(summary["registered"]["arn"])
    for uri in (version.model_uri, summary["segmentation"]["results_uri"], summary["batch"]["predictions_uri"]):
        assert uri.startswith(in_bucket) and uri.removeprefix(in_bucket) in keys, uri


def test_on_s3_the_approved_version_serves_prod_over_http(s3_chain):
    summary = s3_chain["summary"]
    version = registry().get(summary["registered"]["arn"])
    assert version.status == "Approved" and version.approver == "policy"

    label, probability = invoke(summary["prod"]["name"], summary["example_row"])

    expected_label, expected_probability = golden_answer(summary)
    assert (label, probability) == (expected_label, pytest.approx(expected_probability, abs=1e-6))
    model_reads = [r for r in s3_chain["s3"].requests if r.user == "sagemaker-role" and r.method == "GET"
                   and r.key == version.model_uri.removeprefix(f"s3://{S3_CONN_ID}@{S3_BUCKET}/")]
    assert model_reads and all(r.status == 200 for r in model_reads)  # the runtime read it with its own role


def test_on_s3_predictions_and_segments_have_their_rows(s3_chain):
    batch, segmentation = s3_chain["summary"]["batch"], s3_chain["summary"]["segmentation"]
    predictions = read_parquet(batch["predictions_uri"])
    assert len(predictions) == batch["rows"] == SCORING_ROWS and predictions["Phone"].is_unique
    results = read_parquet(segmentation["results_uri"])
    assert results["total_customers"].sum() == segmentation["customers"]


def test_on_s3_no_request_of_the_chain_was_refused(s3_chain):
    sent = [r for r in s3_chain["s3"].requests if r.user in ("airflow-role", "sagemaker-role")]
    assert {r.user for r in sent} == {"airflow-role", "sagemaker-role"}
    assert [r for r in sent if r.status == 403] == []
