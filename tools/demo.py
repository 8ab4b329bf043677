"""The main job (``make demo``): the whole chain on Airflow's real components, on this machine.

1. Starts the local model runtime (the twin of SageMaker's endpoint service) and a metadata
   database of its own (:mod:`tools.metadata_db`: PostgreSQL where it can), then Airflow's
   API server, scheduler (LocalExecutor), dag-processor and triggerer (:mod:`tools.airflow_stack`);
   ``--executor celery``: the CeleryExecutor with Redis and a Celery worker per queue instead.
2. Lands deterministic sample data in the landing prefixes, unpauses the DAGs of the chain and
   triggers ``s3_ingest`` over the REST API, as a user would.
3. Assets chain the rest: ``churn_raw`` starts ``train_model``, ``retail_raw`` starts
   ``customer_segmentation``, the approved model starts ``deploy_model``. The approvals wait as
   human-in-the-loop tasks; in ``--approvals policy`` (the default) this script answers them
   through the HITL REST API as the ``policy`` account, the way the policy in the pipeline
   config recommends; with ``--approvals manual`` a person answers them in the UI.
4. Unpauses ``autopilot_batch_predict``, whose scheduled run makes the batch predictions.
5. Prints the summary, stops Airflow and drops its database. The model runtime keeps serving the
   prod endpoint until ``make clean``.

``--dag-test`` runs the same DAGs with ``dag.test()`` in this process instead: a debugging aid
(and the baseline of ``benchmarks/bench_chain.py``), not the product path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from datetime import UTC, datetime
from typing import Any

SCORING_ROWS = 2000
CHAIN_TIMEOUT_S = 1800
CHAIN = ("s3_ingest", "customer_segmentation", "train_model", "deploy_model", "autopilot_batch_predict")


def generate_sample_data(churn_rows: int, retail_rows: int) -> dict[str, str]:
    """Land the sample files where the pipelines look for them (deterministic)."""
    from mlops.core.entrypoints import generators_module
    from mlops.core.storage import data_path

    generate = generators_module()
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    targets = {
        "churn": (data_path("landing", "churn", f"customers-{stamp}.csv"), generate.churn(churn_rows, seed=7)),
        "retail": (data_path("landing", "retail", f"transactions-{stamp}.csv"), generate.retail(retail_rows, seed=11)),
        "scoring": (data_path("batch", "churn", "incoming", f"scoring-{stamp}.csv"),
                    generate.churn(SCORING_ROWS, seed=8)),
    }
    written = {}
    for name, (path, frame) in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as handle:
            frame.to_csv(handle, index=False)
        written[name] = str(path)
        print(f"  generated {len(frame):>7,} rows -> {path}")
    return written


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


# ---------------------------------------------------------------- the chain through the scheduler
class PolicyApprover:
    """Answers waiting approval tasks through the HITL REST API the way the policy recommends.

    The approval operators put the policy's recommendation (thresholds of the pipeline config
    against the evidence) in the XCom ``recommendation``; this answers as the ``policy`` account,
    so the registry records "policy" as the approver, with the recommendation as the reason.
    """

    def __init__(self, api):
        from tools.airflow_stack import POLICY_USER

        self.api = api.as_user(POLICY_USER)
        self.answered: list[dict[str, Any]] = []

    def __call__(self, dag_id: str, run_id: str, ti: dict[str, Any]) -> None:
        recommendation = self.api.xcom(dag_id, run_id, ti["task_id"], key="recommendation")
        if recommendation is None:
            raise RuntimeError(f"{dag_id}.{ti['task_id']} waits for input but recommends nothing")
        option = "Approve" if recommendation["approved"] else "Reject"
        self.api.answer(dag_id, run_id, ti["task_id"], option)
        self.answered.append({"dag_id": dag_id, "task_id": ti["task_id"], "option": option,
                              "reason": recommendation["reason"]})
        print(f"  {dag_id}.{ti['task_id']}: answered {option} over REST as 'policy' ({recommendation['reason']})",
              flush=True)


class ManualApprover:
    """Leaves approvals to a person: says where they wait, once each."""

    def __init__(self, api):
        self.api = api

    def __call__(self, dag_id: str, run_id: str, ti: dict[str, Any]) -> None:
        print(f"  {dag_id}.{ti['task_id']} waits for you: {self.api.url}/required_actions "
              f"(login in {self.api.passwords_file})", flush=True)


def _finished(api, dag_id: str, run_id: str, timeout: float, on_waiting=None) -> dict[str, Any]:
    started = time.perf_counter()
    run = api.wait_for_run(dag_id, run_id, timeout, on_waiting=on_waiting)
    states = api.task_states(dag_id, run_id)
    print(f"  {dag_id} {run['state']} in {time.perf_counter() - started:.1f}s ({run['run_type']} run); tasks: "
          + ", ".join(f"{task}={state}" for task, state in sorted(states.items())), flush=True)
    if run["state"] != "success":
        failed = [task for task, state in states.items() if state in ("failed", "upstream_failed")]
        raise SystemExit(f"{dag_id} run {run_id} ended {run['state']} (failed: {', '.join(failed) or 'none'}); "
                         f"task logs under {api.home / 'logs' / f'dag_id={dag_id}'}")
    return run


def run_chain(api, approver, timeout: float = CHAIN_TIMEOUT_S, trigger_autopilot: bool = False) -> dict[str, str]:
    """Trigger ``s3_ingest`` over REST and follow the runs the Assets and the schedule make.

    Returns ``{dag_id: run_id}`` of the run of each DAG in :data:`CHAIN` whose outcome the
    summary reports.

    :param trigger_autopilot: trigger ``autopilot_batch_predict`` over REST instead of waiting
        for its scheduled run (a deployment whose run of the day has happened already).
    """
    from tools.airflow_stack import now

    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(deadline - time.monotonic(), 1)

    for dag_id in ("customer_segmentation", "train_model", "deploy_model", "s3_ingest"):
        api.unpause(dag_id)
    print("  unpaused s3_ingest, customer_segmentation, train_model, deploy_model", flush=True)
    started = now()
    runs = {"s3_ingest": api.trigger("s3_ingest")}
    print(f"  triggered s3_ingest over REST: {runs['s3_ingest']}", flush=True)
    _step("s3_ingest -> customer_segmentation, train_model (Asset events)")
    _finished(api, "s3_ingest", runs["s3_ingest"], left())
    for dag_id in ("customer_segmentation", "train_model"):
        runs[dag_id] = api.wait_for_new_run(dag_id, "asset_triggered", left(), after=started)
    _finished(api, "customer_segmentation", runs["customer_segmentation"], left())
    _finished(api, "train_model", runs["train_model"], left(), on_waiting=approver)
    _step("train_model -> deploy_model (Asset event)")
    runs["deploy_model"] = api.wait_for_new_run("deploy_model", "asset_triggered", left(), after=started)
    _finished(api, "deploy_model", runs["deploy_model"], left(), on_waiting=approver)
    api.unpause("autopilot_batch_predict")
    if trigger_autopilot:
        _step("autopilot_batch_predict (triggered over REST)")
        runs["autopilot_batch_predict"] = api.trigger("autopilot_batch_predict")
    else:
        _step("autopilot_batch_predict (its schedule, once unpaused)")
        runs["autopilot_batch_predict"] = api.wait_for_new_run("autopilot_batch_predict", "scheduled", left())
    _finished(api, "autopilot_batch_predict", runs["autopilot_batch_predict"], left())
    return runs


def collect_summary(xcom) -> dict[str, Any]:
    """What the summary prints, from the XComs of the chain's runs (``xcom(dag_id, task_id, key)``)."""
    from mlops.backends import get_backend
    from mlops.core.settings import get_settings
    from mlops.deploy.endpoint_checks import load_golden
    from mlops.notifications import notifications_file, read_notifications

    settings = get_settings()
    registered = xcom("train_model", "register")
    version = get_backend().registry.get(registered["arn"])
    _, golden_rows, _ = load_golden(version.metadata["golden_uri"])
    return {
        "rows_ingested": {"churn": xcom("train_model", "resolve_partition", "rows"),
                          "retail": xcom("customer_segmentation", "resolve_partition", "rows")},
        "segmentation": xcom("customer_segmentation", "segment"),
        "validation": xcom("train_model", "validate"),
        "tuning": xcom("train_model", "tune"),
        "holdout": xcom("train_model", "evaluate"),
        "registered": registered,
        "version": version.to_dict(),
        "model_decision": xcom("train_model", "approve_model", "decision"),
        "staging": xcom("deploy_model", "deploy_staging"),
        "endpoint_tests": xcom("deploy_model", "test_staging"),
        "prod_decision": xcom("deploy_model", "approve_prod", "decision"),
        "prod": xcom("deploy_model", "deploy_prod"),
        "batch": xcom("autopilot_batch_predict", "publish_predictions"),
        "example_row": ",".join(str(v) for v in golden_rows[0]),
        "runtime_url": settings.runtime_url,
        "registry_db": str(settings.registry_db),
        "stage_targets": xcom("deploy_model", "stage_targets"),
        "comparison": xcom("train_model", "compare_with_prod"),
        "notifications": [n for n in read_notifications() if n["model_version"] == registered["arn"]
                          or n["event"] == "task_failed"],
        "notifications_file": str(notifications_file()),
    }


def demo_monitoring(summary: dict[str, Any], requests: int = 100, rows_per_request: int = 10) -> dict[str, Any]:
    """Prod traffic from the registered version's holdout (the training distribution), then one
    monitoring check of exactly that window (what a ``monitor_model`` run does, in this process):
    the summary's monitoring result. Never fails the demo: a failure is the result's reason."""
    try:
        from mlops.backends import get_backend
        from mlops.core.config import load_pipeline, stage_target
        from mlops.core.storage import data_path, read_json, to_path
        from mlops.dag_defaults import PROD_ENDPOINT
        from mlops.monitor.job import run_monitoring

        if not summary.get("prod"):
            return {"status": "skipped", "reason": "nothing was deployed to prod"}
        import pandas as pd

        backend = get_backend()
        version = backend.registry.get(summary["version"]["arn"])
        columns = [f["name"] for f in read_json(version.metadata["baseline_statistics_uri"])["features"]]
        with to_path(version.metadata["holdout_uri"]).open("rb") as handle:
            holdout = pd.read_parquet(handle)[columns]
        hosting = backend.hosting_for(backend.stages.resolve(stage_target(load_pipeline("churn"), "prod")))
        client = hosting.runtime_client()
        since = datetime.now(UTC)
        for start in range(0, min(len(holdout), requests * rows_per_request), rows_per_request):
            client.invoke_endpoint(EndpointName=summary["prod"]["name"], ContentType="text/csv",
                                   Body=holdout.iloc[start:start + rows_per_request].to_csv(header=False, index=False),
                                   InferenceId=f"demo-{start}")
        if hasattr(hosting, "flush_capture"):
            hosting.flush_capture()
        until = datetime.now(UTC)
        return run_monitoring("churn", PROD_ENDPOINT, since, until,
                              str(data_path("monitoring", "churn", "reports", "demo")), backend)
    except Exception as err:  # the chain ran; the summary says why monitoring did not
        return {"status": "failed", "reason": f"{type(err).__name__}: {err}"}


def run_demo(churn_rows: int = 5000, retail_rows: int = 20000, approvals: str = "policy",
             timeout: float = CHAIN_TIMEOUT_S, executor: str | None = None) -> dict[str, Any]:
    """Everything ``make demo`` does; returns the summary (also what the scheduler tests check).

    :param executor: ``local`` or ``celery`` (default ``$MLOPS_AIRFLOW_EXECUTOR``, else ``local``).
    """
    from mlops.backends.local.runtime.service import start_runtime
    from mlops.core.schema import TcpPort, env_value
    from mlops.core.settings import get_settings
    from tools.airflow_env import executor_name
    from tools.airflow_stack import free_port, project_stack

    settings = get_settings()
    started = time.perf_counter()
    _step("Model runtime (the local twin of SageMaker's endpoint service)")
    pid = start_runtime(settings)
    print(f"  serving {settings.runtime_url} (pid {pid}; log {settings.runtime_dir / 'runtime.log'})")
    _step("Airflow metadata database")
    executor = executor_name(executor)
    stack, database = project_stack("demo", settings.home, executor,
                                    port=env_value("MLOPS_AIRFLOW_PORT", TcpPort, None) or free_port(),
                                    environment={"MLOPS_HOME": str(settings.home)})
    print(f"  {database.describe()}")
    try:
        if stack.celery is None:
            _step("Airflow: api-server, scheduler (LocalExecutor), dag-processor, triggerer")
        else:
            _step("Airflow: api-server, scheduler (CeleryExecutor), dag-processor, triggerer, Celery workers")
            print(f"  broker {stack.celery.broker_url}, result backend in the metadata database; workers: "
                  + ", ".join(f"{w.name} (queues {','.join(w.queues)}, concurrency {w.concurrency})"
                              for w in stack.celery.workers))
        api = stack.start()
        print(f"  {api.url} (login {api.username}/{api.password()}); component logs in {stack.log_dir}")
        _step("Sample data")
        generate_sample_data(churn_rows, retail_rows)
        print("  keyspaces_ingest needs a CQL endpoint (Amazon Keyspaces or Cassandra), which this machine "
              "does not have:\n  the demo lands the same data through s3_ingest instead "
              "(the tests run keyspaces_ingest against a fake driver session).")
        approver = PolicyApprover(api) if approvals == "policy" else ManualApprover(api)
        chain_started = time.perf_counter()
        runs = run_chain(api, approver, timeout)
        chain_s = time.perf_counter() - chain_started
        summary = collect_summary(lambda dag_id, task_id, key="return_value": api.xcom(dag_id, runs[dag_id],
                                                                                       task_id, key))
        summary["monitoring"] = demo_monitoring(summary)
        summary.update(runs=runs, metadata_db=database.describe(), airflow_url=api.url, chain_s=chain_s,
                       dag_seconds={dag_id: _seconds(api.run(dag_id, run_id)) for dag_id, run_id in runs.items()},
                       **_task_work(api, runs), executor=executor, wall_time_s=time.perf_counter() - started)
        return summary
    finally:
        stack.stop()
        database.drop()


def _task_work(api, runs: dict[str, str]) -> dict[str, Any]:
    """``tasks_run``: the task instances of the runs that ran (skipped ones never reached an
    executor); ``queue_seconds``: their durations added up per queue (an approval's include its
    wait for the answer)."""
    ran = [ti for dag_id, run_id in runs.items() for ti in api.task_instances(dag_id, run_id)
           if ti["state"] in ("success", "failed")]
    seconds: dict[str, float] = {}
    for ti in ran:
        seconds[ti["queue"]] = seconds.get(ti["queue"], 0.0) + (ti["duration"] or 0.0)
    return {"tasks_run": len(ran), "queue_seconds": seconds}


def _seconds(run: dict[str, Any]) -> float:
    """How long a finished run took, from the REST API's start and end dates."""
    return (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()


def run_demo_with_dag_test(churn_rows: int = 5000, retail_rows: int = 20000, n_trials: int | None = None,
                           automl_budget_s: int | None = None, max_p95_latency_ms: float | None = None
                           ) -> dict[str, Any]:
    """The same chain with ``dag.test()`` in this process (a debugging aid; approvals by policy)."""
    from tools.airflow_env import migrate_db, run_dag, task_states, xcom

    started = time.perf_counter()
    _step("Airflow metadata database (dag.test: SQLite under AIRFLOW_HOME)")
    migrate_db()
    _step("Sample data")
    generate_sample_data(churn_rows, retail_rows)
    plan = {
        "s3_ingest": {},
        "customer_segmentation": {},
        "train_model": {"approval_mode": "policy", "n_trials": n_trials},
        "deploy_model": {"approval_mode": "policy", "max_p95_latency_ms": max_p95_latency_ms},
        "autopilot_batch_predict": {"time_budget_s": automl_budget_s},
    }
    runs, dag_seconds = {}, {}
    chain_started = time.perf_counter()
    for dag_id, conf in plan.items():
        _step(f"{dag_id} (dag.test)")
        t0 = time.perf_counter()
        runs[dag_id] = run = run_dag(dag_id, conf)
        dag_seconds[dag_id] = time.perf_counter() - t0
        print(f"  {run.state} in {dag_seconds[dag_id]:.1f}s; tasks: "
              + ", ".join(f"{k}={v.split('.')[-1]}" for k, v in sorted(task_states(run).items())))
        if str(run.state) not in ("success", "DagRunState.SUCCESS"):
            raise SystemExit(f"{dag_id} ended {run.state}")
    chain_s = time.perf_counter() - chain_started
    summary = collect_summary(lambda dag_id, task_id, key="return_value": xcom(runs[dag_id], task_id, key))
    summary["monitoring"] = demo_monitoring(summary)
    summary.update(runs={d: r.run_id for d, r in runs.items()}, metadata_db="sqlite (dag.test)",
                   chain_s=chain_s, dag_seconds=dag_seconds, wall_time_s=time.perf_counter() - started)
    return summary


def print_summary(s: dict) -> None:
    best = s["tuning"]["best"]
    metric = s["tuning"]["objective"]
    holdout = s["holdout"]["metrics"]
    version = s["version"]
    prod = s["prod"] or {"name": "(not deployed: prod approval rejected)", "url": "n/a"}
    print("\n" + "=" * 78)
    print("SUMMARY (local backend)")
    print("=" * 78)
    print(f"Airflow              metadata database: {s['metadata_db']}")
    print("                     runs: " + ", ".join(f"{dag} {run}" for dag, run in s["runs"].items()))
    print(f"rows ingested        churn {s['rows_ingested']['churn']:,}, retail {s['rows_ingested']['retail']:,} (s3_ingest)")
    print(f"validation           passed: {s['validation']['rows']:,} rows, id {s['validation']['validation_id']}")
    print(f"                     report {s['validation']['report_uri']}")
    print(f"segmentation         {s['segmentation']['customers']:,} customers, KMeans k={s['segmentation']['best_k']}, "
          f"segments {s['segmentation']['segments']}")
    print(f"                     report {s['segmentation']['report_uri']}")
    print(f"CV {metric} per fold   " + ", ".join(f"{v:.4f}" for v in best["fold_scores"]))
    print(f"CV mean ± std        {best['mean']:.4f} ± {best['std']:.4f} ({s['tuning']['n_trials']} trials)")
    print(f"best hyperparameters {json.dumps(best['hyperparameters'], default=str)}")
    print("holdout              " + ", ".join(f"{k.removeprefix('holdout_')}={v:.4f}" for k, v in holdout.items()
                                             if k.startswith("holdout_") and isinstance(v, float)))
    print(f"model report         {s['holdout']['report_uri']}")
    reused = " (already registered for this data, code and hyperparameters: reused)" \
        if s["registered"].get("reused") else ""
    print(f"registry             group {version['group']}, version {version['version']}, status {version['status']}"
          f"{reused}")
    print(f"                     {version['arn']} (SQLite: {s['registry_db']})")
    if s.get("comparison"):
        serving = s["comparison"]["serving"]
        print("compared with prod   " + (f"version {serving['version']} (account {s['comparison']['account']}) on the "
                                         "same holdout: " + ", ".join(
                                             f"{k.removeprefix('holdout_')}={v:.4f}" for k, v in serving["metrics"].items()
                                             if isinstance(v, float)) if serving else s["comparison"]["note"]))
    print(f"approvals            model: {s['model_decision']['approver']} — {s['model_decision']['reason']}")
    print(f"                     prod:  {s['prod_decision']['approver']} — {s['prod_decision']['reason']}")
    latency = s["endpoint_tests"]["latency_ms"]
    print(f"staging endpoint     {s['staging']['name']} (serverless twin; passed tests, p50 {latency['p50']:.1f} ms, "
          f"p95 {latency['p95']:.1f} ms; torn down)")
    targets = s.get("stage_targets") or {}
    if targets:
        print("stage accounts       " + ", ".join(f"{stage} {t['account_id']}" for stage, t in targets.items())
              + f" (the registry's: {next(iter(targets.values()))['registry_account']}; records kept there)")
    print(f"prod endpoint        {prod['name']} at {prod['url']}")
    row = s["example_row"]
    account = prod.get("account") or "local"
    print("  curl:   curl -s -X POST -H 'Content-Type: text/csv' -H 'Accept: text/csv' \\\n"
          f"            --data '{row}' {prod['url']}")
    print("  boto3:  import boto3\n"
          f"          rt = boto3.client('sagemaker-runtime', endpoint_url='{s['runtime_url']}', region_name='us-east-1',\n"
          f"                            aws_access_key_id='{account}', aws_secret_access_key='local')  # prod's account\n"
          f"          rt.invoke_endpoint(EndpointName='{prod['name']}', ContentType='text/csv', Accept='text/csv',\n"
          f"                             Body='{row}')['Body'].read()")
    batch = s["batch"]
    print(f"batch predictions    {batch['rows']:,} rows -> {batch['predictions_uri']}")
    print(f"                     candidate {batch['candidate']}")
    if batch.get("report_uri"):
        print(f"                     report {batch['report_uri']}")
    if "evaluation" in batch:
        e = batch["evaluation"]
        print(f"                     ROC AUC {e['roc_auc']:.4f}, PR AUC {e['pr_auc']:.4f}, threshold {e['threshold']:.3f} "
              f"(recall {e['recall_at_threshold']:.3f} at precision >= {e['min_precision']})")
    monitoring = s.get("monitoring") or {"status": "not run", "reason": ""}
    print(f"monitoring           prod traffic from the holdout: {monitoring['status']}: {monitoring['reason']}"
          + (f"\n                     report {monitoring['report_uri']}" if monitoring.get("report_uri") else ""))
    sent = s.get("notifications") or []
    print(f"notifications        {len(sent)}: " + ", ".join(f"{n['event']} ({n['dag_id']})" for n in sent)
          + f" -> {s.get('notifications_file', '')}")
    print(f"total wall time      {s['wall_time_s']:.1f} s (the chain, first trigger to predictions written: "
          f"{s['chain_s']:.1f} s)")
    if "tasks_run" in s:
        print(f"throughput           {s['tasks_run']} tasks in the chain on the {s['executor']} executor: "
              f"{s['tasks_run'] * 60 / s['chain_s']:.1f} tasks/minute")
    print("stop the local runtime and remove local state with: make clean")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--churn-rows", type=int, default=5000)
    parser.add_argument("--retail-rows", type=int, default=20000)
    parser.add_argument("--approvals", choices=("policy", "manual"), default="policy",
                        help="policy: answer the approval tasks over REST as the policy recommends; "
                             "manual: leave them to a person in the UI")
    parser.add_argument("--executor", choices=("local", "celery"), default=None,
                        help="Airflow's executor: local (LocalExecutor, the default; or $MLOPS_AIRFLOW_EXECUTOR) or "
                             "celery (CeleryExecutor: Redis at $MLOPS_CELERY_BROKER_URL, a worker per queue)")
    parser.add_argument("--dag-test", action="store_true", help="run each DAG with dag.test() in this process "
                                                                "(a debugging aid)")
    parser.add_argument("--verbose", action="store_true", help="show every task's log lines (with --dag-test)")
    parser.add_argument("--summary-json", help="also write the summary to this file as JSON")
    args = parser.parse_args(argv)
    if not args.dag_test:
        summary = run_demo(args.churn_rows, args.retail_rows, args.approvals, executor=args.executor)
    else:
        summary = _dag_test(args)
    print_summary(summary)
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2, default=str)
    return 0


def _dag_test(args) -> dict[str, Any]:
    from tools.airflow_env import configure

    if not args.verbose:  # task logs at INFO would bury the summary; failures still print
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        warnings.filterwarnings("ignore", message="Using `httpx` with")
    configure()
    if not args.verbose:
        # Airflow's file discovery still uses pathspec's deprecated "gitwildmatch" name: nothing to
        # act on here. Importing airflow.configuration puts Airflow's own "show deprecations"
        # filter first, so this one goes after that import.
        import airflow.configuration  # noqa: F401

        warnings.filterwarnings("ignore", message="GitWildMatchPattern", category=DeprecationWarning)
    return run_demo_with_dag_test(args.churn_rows, args.retail_rows)


if __name__ == "__main__":
    sys.exit(main())
