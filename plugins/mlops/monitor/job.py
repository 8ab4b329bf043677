"""One monitoring run, and the retraining decision on its drift event (the task bodies of
``monitor_model`` and of ``train_model``'s drift gate).

A run checks the prod endpoint's capture in a window against the baseline of the version that
served prod at the window's end (its registration metadata links ``statistics.json`` and
``constraints.json``), joins ground truth when labels have arrived, and writes under
``monitoring/<use case>/reports/<run>/``: ``result.json`` (one format for both backends),
``constraint_violations.json`` (Model Monitor's) and ``report.html``.

The check itself is the backend's :class:`~mlops.backends.base.DataQualityMonitor`:
``monitor_model``'s own check on the capture (:mod:`mlops.ml.capture_monitor`; locally, and on AWS
by default), or, with ``monitoring.aws.data_quality: model_monitor``, SageMaker Model Monitor's
hourly data-quality schedule (this run keeps it on the serving version's baseline and reads its
newest completed execution; model quality is then computed here from the S3 capture and the
ground truth, as the own check does). One result format either way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

GROUND_TRUTH = "monitoring/ground-truth"  # under MLOPS_DATA_URI: <endpoint>/yyyy/mm/dd/hh/*.jsonl


def monitoring_window(context: dict[str, Any], params: dict[str, Any] | None = None) -> tuple[datetime, datetime]:
    """``[since, until)`` of a run: the ``since``/``until`` Params when given; else the scheduled
    run's data interval (hourly: each run reads the capture since the previous one); else the
    ``lookback_hours`` before the run's date. Fixed when the run is created, so a re-run reads the
    same records."""
    from mlops.core.runs import run_moment
    from mlops.ml.monitoring import MonitoringError, _utc

    params = params or context.get("params") or {}
    if params.get("since") or params.get("until"):
        if not (params.get("since") and params.get("until")):
            raise MonitoringError("give both since and until (ISO-8601 with a time zone), or neither")
        return _utc(params["since"]), _utc(params["until"])
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and end > start:
        return _utc(start), _utc(end)
    until = run_moment(context)
    hours = params.get("lookback_hours") or 1
    return until - timedelta(hours=int(hours)), until


def serving_baseline(registry, account: str | None, at: datetime) -> tuple[Any, dict[str, Any]] | None:
    """(version serving prod at ``at``, its newest succeeded prod deployment's detail), or None."""
    from mlops.deploy.flow import version_in_stage_at

    version = version_in_stage_at(registry, "prod", at=at, account=account)
    if version is None:
        return None
    for deployment in registry.deployments("prod", account):
        if deployment.arn == version.arn and deployment.outcome == "succeeded":
            return version, {"endpoint_name": deployment.endpoint_name}
    return version, {}


def run_monitoring(use_case: str, endpoint_name: str, since: datetime, until: datetime, out_uri: str,
                   backend=None) -> dict[str, Any]:
    """Monitor ``endpoint_name`` (prod) over ``[since, until)`` through the backend's
    :class:`~mlops.backends.base.DataQualityMonitor`; write the result and report under
    ``out_uri``; return a small summary (XCom): ``status``, ``drift``, ``reason``,
    ``drifted_features``, ``violations``, ``rows``, ``model_package_arn``, ``window``, the URIs,
    ``schedule`` (its name, definition and what this run changed) and ``on_drift`` (what the
    pipeline config says a drift should lead to).

    First the endpoint's schedule is made to check against the baseline of the version serving
    prod at ``until`` (on AWS: Model Monitor's definition, hourly schedule and alarms; locally a
    record, this run being the schedule); then the schedule's report of the window is read (on AWS
    the newest completed execution's; locally the check runs now). ``no_report`` (AWS: no execution
    has completed yet, e.g. in the schedule's first hour) is not drift.
    """
    from mlops.backends import get_backend
    from mlops.backends.backend import BackendNotAvailable
    from mlops.backends.base import MonitoringBaseline, MonitoringCheck, MonitoringReportNotFound
    from mlops.core.config import load_pipeline, stage_target
    from mlops.core.settings import get_settings
    from mlops.core.storage import to_path, write_json
    from mlops.deploy.endpoint_options import data_capture_config
    from mlops.ml.evaluation import write_report
    from mlops.ml.monitoring import (
        capture_prefix,
        constraint_violations,
        drift_reason,
        monitoring_report_html,
        monitoring_settings,
    )

    config = load_pipeline(use_case)
    settings = monitoring_settings(config)
    backend = backend or get_backend()
    window = {"since": since.isoformat(), "until": until.isoformat()}
    summary: dict[str, Any] = {"use_case": use_case, "endpoint_name": endpoint_name, "window": window,
                               "on_drift": settings["on_drift"], "drift": False, "drifted_features": [],
                               "violations": 0, "rows": 0, "model_package_arn": None}
    target = backend.stages.resolve(stage_target(config, "prod"))
    # monitoring.aws.data_quality: Model Monitor's schedule (in prod's account, beside its endpoint)
    # or monitor_model's own check on the capture (the data bucket); a local backend has only its own
    monitor = backend.monitoring_for(target, managed=settings["aws"]["data_quality"] == "model_monitor")
    if monitor is None:
        raise BackendNotAvailable(f"the {backend.name} backend has no data-quality monitoring port")
    serving = serving_baseline(backend.registry, target.account_id, until)
    if serving is None:
        return {**summary, "status": "no_model", "reason": f"nothing served prod at {until.isoformat()}"}
    version, deployment = serving
    summary["model_package_arn"] = version.arn
    statistics_uri = version.metadata.get("baseline_statistics_uri")
    constraints_uri = version.metadata.get("baseline_constraints_uri")
    if not statistics_uri or not constraints_uri:
        return {**summary, "status": "no_baseline",
                "reason": f"{version.arn} was registered without a monitoring baseline"}
    schedule = monitor.ensure_schedule(endpoint_name, MonitoringBaseline(version.arn, statistics_uri, constraints_uri))
    summary["schedule"] = {"name": schedule.name, "job_definition_name": schedule.job_definition_name,
                           "change": schedule.change, "status": schedule.status, "alarms": len(schedule.alarm_names)}
    capture = data_capture_config(get_settings(), endpoint_name, config.section("endpoint")["prod"])
    prefix = capture_prefix(capture, deployment.get("endpoint_name") or endpoint_name)
    approval = config.raw.get("approval") or {}
    check = MonitoringCheck(
        since=since.isoformat(), until=until.isoformat(), capture_prefix=prefix,
        ground_truth_prefix=f"{get_settings().data_uri.rstrip('/')}/{GROUND_TRUTH}/{endpoint_name}",
        settings=settings, positive_label=config.schema.get("positive_label"),
        thresholds=approval.get("model") or {})
    try:
        result = monitor.report(schedule, check)
    except MonitoringReportNotFound as err:
        return {**summary, "status": "no_report", "reason": str(err)}
    result.update({"model_package_arn": version.arn, "endpoint_name": endpoint_name, "capture_prefix": prefix,
                   "baseline": {"statistics_uri": statistics_uri, "constraints_uri": constraints_uri},
                   "schedule": schedule.to_dict()})
    base = out_uri.rstrip("/")
    to_path(base).mkdir(parents=True, exist_ok=True)
    result_uri = write_json(f"{base}/result.json", result)
    violations_uri = write_json(f"{base}/constraint_violations.json", constraint_violations(result))
    report_uri = write_report(monitoring_report_html(f"{config.name}: monitoring {endpoint_name}", result),
                              f"{base}/report.html")
    return {**summary, "status": result["status"], "drift": result["drift"], "reason": drift_reason(result),
            "drifted_features": result["drifted_features"], "violations": len(result["violations"]),
            "rows": result["rows"], "model_quality": (result["model_quality"] or {}).get("metrics"),
            "execution": result.get("execution"),
            "result_uri": result_uri, "violations_uri": violations_uri, "report_uri": report_uri}


def drift_event(summary: dict[str, Any]) -> dict[str, Any]:
    """What the ``<use case>_drift`` event announces (its ``extra``)."""
    keys = ("use_case", "endpoint_name", "model_package_arn", "window", "reason", "drifted_features", "violations",
            "rows", "report_uri", "result_uri", "on_drift")
    return {key: summary.get(key) for key in keys}


def retrain_decision(use_case: str, context: dict[str, Any]) -> dict[str, Any] | None:
    """Whether a ``train_model`` run goes ahead, and why it runs (its lineage's ``trigger``).

    A run triggered only by a ``<use case>_drift`` event goes ahead when ``monitoring.on_drift``
    is ``retrain`` (the trigger names the drift report and reason); with ``notify`` or ``off``
    it stops here (None): the monitor has notified already, or nobody asked. Any other run
    (new data, a manual trigger) goes ahead; the drift event, if it came too, is recorded.
    """
    from mlops.core.assets import model_drift, raw_data
    from mlops.core.config import load_pipeline
    from mlops.core.runs import announced
    from mlops.ml.monitoring import monitoring_settings

    drift = announced(context, model_drift(use_case))
    data = announced(context, raw_data(use_case))
    if drift is None:
        return {"kind": "data" if data is not None else "manual"}
    trigger = {"kind": "drift", "reason": drift.get("reason"), "report_uri": drift.get("report_uri"),
               "result_uri": drift.get("result_uri"), "drifted_features": drift.get("drifted_features"),
               "monitored_version": drift.get("model_package_arn"), "window": drift.get("window")}
    if data is not None:
        return {**trigger, "kind": "data+drift"}
    mode = monitoring_settings(load_pipeline(use_case))["on_drift"]
    if mode != "retrain":
        print(f"drift event ({trigger['reason']}); monitoring.on_drift={mode}: no retraining")
        return None
    return trigger
