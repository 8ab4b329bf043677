"""The main job: generate sample data, run every DAG in pipeline order on the local backend,
print where everything is. ``make demo`` runs it (``python -m mlops.demo``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from datetime import UTC, datetime

from mlops.airflow_env import configure

SCORING_ROWS = 2000


def generate_sample_data(churn_rows: int, retail_rows: int) -> dict[str, str]:
    """Land the sample files where the pipelines look for them (deterministic)."""
    from mlops.entrypoints import generators_module
    from mlops.storage import data_path

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


def run_pipeline(churn_rows: int = 5000, retail_rows: int = 20000, n_trials: int | None = None,
                 automl_budget_s: int | None = None, max_p95_latency_ms: float | None = None) -> dict:
    """Run the whole chain; return what the summary prints.

    ``n_trials`` and ``automl_budget_s`` override the pipeline config (the tests use small ones).
    """
    from mlops.airflow_env import migrate_db, run_dag, task_states, xcom
    from mlops.backends import get_backend
    from mlops.settings import get_settings

    settings = get_settings()
    started = time.perf_counter()
    _step("Airflow metadata database")
    migrate_db()
    _step("Sample data")
    generate_sample_data(churn_rows, retail_rows)
    print("  keyspaces_ingest needs a CQL endpoint (Amazon Keyspaces or Cassandra), which this machine "
          "does not have:\n  the demo lands the same data through s3_ingest instead "
          "(the tests run keyspaces_ingest against a fake driver session).")

    runs, summary = {}, {}
    plan = [
        ("s3_ingest", {}),
        ("customer_segmentation", {}),
        ("train_model", {"approval_mode": "policy", "n_trials": n_trials}),
        ("deploy_model", {"approval_mode": "policy", "max_p95_latency_ms": max_p95_latency_ms}),
        ("autopilot_batch_predict", {"time_budget_s": automl_budget_s}),
    ]
    for dag_id, conf in plan:
        _step(f"{dag_id} (dag.test)")
        t0 = time.perf_counter()
        run = run_dag(dag_id, conf)
        runs[dag_id] = run
        states = task_states(run)
        print(f"  {run.state} in {time.perf_counter() - t0:.1f}s; tasks: "
              + ", ".join(f"{k}={v.split('.')[-1]}" for k, v in sorted(states.items())))
        if str(run.state) not in ("success", "DagRunState.SUCCESS"):
            raise SystemExit(f"{dag_id} ended {run.state}; see the task logs under {settings.home}/airflow/logs")

    ingest = runs["s3_ingest"]
    summary["rows_ingested"] = {uc: (xcom(ingest, f"{uc}.publish_raw_partition") or {}).get("rows") for uc in ("churn", "retail")}
    segmentation = xcom(runs["customer_segmentation"], "segment")
    train = runs["train_model"]
    validation = xcom(train, "validate")
    tuning = xcom(train, "tune")
    evaluation = xcom(train, "evaluate")
    registered = xcom(train, "register")
    decision = xcom(train, "approve_model", key="decision")
    deploy = runs["deploy_model"]
    prod = xcom(deploy, "deploy_prod")
    staging = xcom(deploy, "deploy_staging")
    tests = xcom(deploy, "test_staging")
    prod_decision = xcom(deploy, "approve_prod", key="decision")
    batch = xcom(runs["autopilot_batch_predict"], "publish_predictions")
    version = get_backend().registry.get(registered["arn"])
    from mlops.endpoint_tests import load_golden

    _, golden_rows, _ = load_golden(version.metadata["golden_uri"])
    summary["example_row"] = ",".join(str(v) for v in golden_rows[0])
    summary.update({
        "validation": validation, "tuning": tuning, "holdout": evaluation, "version": version.to_dict(),
        "model_decision": decision, "prod_decision": prod_decision, "staging": staging, "prod": prod,
        "endpoint_tests": tests, "batch": batch, "segmentation": segmentation,
        "wall_time_s": time.perf_counter() - started, "runtime_url": settings.runtime_url,
        "registry_db": str(settings.registry_db),
    })
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
    print(f"registry             group {version['group']}, version {version['version']}, status {version['status']}")
    print(f"                     {version['arn']} (SQLite: {s['registry_db']})")
    print(f"approvals            model: {s['model_decision']['approver']} — {s['model_decision']['reason']}")
    print(f"                     prod:  {s['prod_decision']['approver']} — {s['prod_decision']['reason']}")
    print("                     (policy mode: thresholds from include/pipelines/churn.yaml; set approval_mode=manual "
          "to approve in the Airflow UI)")
    latency = s["endpoint_tests"]["latency_ms"]
    print(f"staging endpoint     {s['staging']['name']} (serverless twin; passed tests, p50 {latency['p50']:.1f} ms, "
          f"p95 {latency['p95']:.1f} ms; torn down)")
    print(f"prod endpoint        {prod['name']} at {prod['url']}")
    row = s["example_row"]
    print("  curl:   curl -s -X POST -H 'Content-Type: text/csv' \\\n"
          f"            --data '{row}' {prod['url']}")
    print("  boto3:  import boto3\n"
          f"          rt = boto3.client('sagemaker-runtime', endpoint_url='{s['runtime_url']}', region_name='us-east-1',\n"
          "                            aws_access_key_id='local', aws_secret_access_key='local')\n"
          f"          rt.invoke_endpoint(EndpointName='{prod['name']}', ContentType='text/csv',\n"
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
    print(f"total wall time      {s['wall_time_s']:.1f} s")
    print("stop the local runtime and remove local state with: make clean")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--churn-rows", type=int, default=5000)
    parser.add_argument("--retail-rows", type=int, default=20000)
    parser.add_argument("--verbose", action="store_true", help="show every task's log lines")
    args = parser.parse_args(argv)
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
    summary = run_pipeline(args.churn_rows, args.retail_rows)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
