"""Prod data capture -> checks against the registration baseline -> report -> churn_drift Asset."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from mlops.core.assets import model_drift
from mlops.dag_defaults import DEFAULT_ARGS, PROD_ENDPOINT, START_DATE

USE_CASE = "churn"


@dag(
    dag_id="monitor_model",
    schedule=timedelta(hours=1),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["monitoring", "sagemaker"],
    params={
        "since": Param(None, type=["null", "string"],
                       description="Start of the window of captured traffic to check (ISO-8601 with a time zone, "
                                   "e.g. 2026-01-01T10:00:00+00:00). Empty: the scheduled run's interval (the "
                                   "hour since the previous run), or lookback_hours before the run's date."),
        "until": Param(None, type=["null", "string"],
                       description="End of the window (exclusive), with since. Empty: see since."),
        "lookback_hours": Param(1, type="integer", minimum=1, maximum=744,
                                description="A triggered run without since/until checks this many hours "
                                            "before its date."),
    },
    doc_md="""
### monitor_model
Hourly (and on demand) check of the churn **prod** endpoint's traffic:

1. **monitor**: keeps the endpoint's data-quality schedule on the baseline of the version serving
   prod, then reads the schedule's report of the window. By default (locally, and on AWS with
   `monitoring.aws.data_quality: own_check`) this run is the schedule: it reads the records the
   endpoint's data capture wrote in the window (S3 on AWS). With `model_monitor` (AWS accounts that
   already use SageMaker Model Monitor, closed to new customers): Model Monitor's job definition,
   hourly schedule and a CloudWatch alarm per feature, replaced in place when prod's version
   changes, and the newest completed execution's `statistics.json` / `constraint_violations.json`
   where its processing job wrote them (`no_report` until one has completed). The own check reads the
   capture at (`<capture destination>/<endpoint>/AllTraffic/yyyy/mm/dd/hh/`, SageMaker's layout on both
   backends; a scheduled run reads the hour since the previous one) and checks them against the
   baseline registered with the version that served prod (Model Monitor's `statistics.json` and
   `constraints.json`): missing and extra columns, types, completeness, and per-feature drift
   (Kolmogorov-Smirnov distance for numeric features, L-infinity distance for categorical ones,
   over `monitoring.drift.threshold` and the sampling noise). Labels uploaded as ground truth
   (joined on the inference id) add model quality against the approval thresholds, with either
   check (computed here from the capture with Model Monitor too). Writes
   `result.json`, `constraint_violations.json` and `report.html` (plots) under
   `monitoring/churn/reports/<run>/`.
2. **announce_drift**: on any violation, emits the `churn_drift` Asset (its event names the
   report, the reason and the drifted features) and notifies; `train_model` listens to it and
   retrains when `monitoring.on_drift` is `retrain`. Without violations it is skipped.
""",
)
def monitor_model():
    @task
    def monitor(**context) -> dict:
        from mlops.core.naming import path_safe
        from mlops.core.storage import data_path
        from mlops.monitor.job import monitoring_window, run_monitoring

        since, until = monitoring_window(context)
        out = data_path("monitoring", USE_CASE, "reports", path_safe(context["run_id"]))
        summary = run_monitoring(USE_CASE, PROD_ENDPOINT, since, until, str(out))
        print(f"monitoring {PROD_ENDPOINT} {since.isoformat()} .. {until.isoformat()}: {summary['status']}: "
              f"{summary['reason']}")
        return summary

    @task(outlets=[model_drift(USE_CASE)])
    def announce_drift(summary: dict, **context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.core.runs import announce
        from mlops.monitor.job import drift_event
        from mlops.notifications import send

        if not summary["drift"]:
            raise AirflowSkipException(f"no drift: {summary['reason']}")
        event = drift_event(summary)
        announce(context, model_drift(USE_CASE), event)
        if summary["on_drift"] != "off":
            send("drift_detected", context, f"{PROD_ENDPOINT}: {summary['reason']} (on_drift={summary['on_drift']})",
                 use_case=USE_CASE, model_version=summary.get("model_package_arn") or "",
                 report_uri=summary.get("report_uri") or "", detail=event)
        return event

    announce_drift(monitor())


monitor_model()
