"""Monitoring: the registration baseline in Model Monitor's formats, and captured traffic checked against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mlops.backends.local.runtime.capture import CaptureSettings, CaptureWriter
from mlops.ml.monitoring import (
    MonitoringError,
    baseline_constraints,
    baseline_statistics,
    capture_files,
    drift_reason,
    monitor_capture,
    monitoring_report_html,
    monitoring_settings,
    read_ground_truth,
)
from testkit.monitoring import CATEGORICAL, FEATURES, churn_like_frame, labels_of

START = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
TRAINING = churn_like_frame(3000, seed=1)


@pytest.fixture(scope="module")
def baseline():
    statistics = baseline_statistics(TRAINING, FEATURES, CATEGORICAL)
    return statistics, baseline_constraints(statistics)


def capture(root, frame, start=START, ids=True, json_rows=False, extra_field=False):
    """Write ``frame`` as one-record invocations in the capture layout, one per second from ``start``."""
    settings = CaptureSettings.from_config({"EnableCapture": True, "InitialSamplingPercentage": 100,
                                            "DestinationS3Uri": root.as_uri(),
                                            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    writer = CaptureWriter(max_buffered=len(frame) + 1, flush_interval=3600)
    for i, row in enumerate(frame.itertuples(index=False)):
        values = [str(v) for v in row] + (["extra"] if extra_field else [])
        body = (json.dumps({"instances": [dict(zip(FEATURES, values))]}) if json_rows else ",".join(values)).encode()
        probability = 0.9 if row.plan == "basic" else 0.1
        writer.record(settings, "churn-prod", "AllTraffic", body, "application/json" if json_rows else "text/csv",
                      f"{'yes' if probability > 0.5 else 'no'},{probability}\n".encode(), "text/csv; charset=utf-8",
                      inference_id=f"id-{i}" if ids else None, when=start + timedelta(seconds=i))
    writer.stop()
    return f"{root.as_uri()}/churn-prod/AllTraffic"


def check(prefix, baseline, rows, **kwargs):
    statistics, constraints = baseline
    until = START + timedelta(seconds=rows)
    return monitor_capture(statistics, constraints, capture_files(prefix, START, until), START, until, **kwargs)


def test_statistics_follow_model_monitors_schema(baseline):
    statistics, constraints = baseline
    assert statistics["dataset"]["item_count"] == 3000
    by_name = {f["name"]: f for f in statistics["features"]}
    assert by_name["plan"]["inferred_type"] == "String"
    plan = by_name["plan"]["string_statistics"]
    assert plan["distinct_count"] == 3 and sum(b["count"] for b in plan["distribution"]["categorical"]["buckets"]) == 3000
    charges = by_name["charges"]["numerical_statistics"]
    assert by_name["charges"]["inferred_type"] == "Fractional" and by_name["tenure"]["inferred_type"] == "Integral"
    assert charges["common"] == {"num_present": 3000, "num_missing": 0}
    assert charges["mean"] == pytest.approx(TRAINING["charges"].mean())
    assert charges["min"] == TRAINING["charges"].min() and charges["max"] == TRAINING["charges"].max()
    assert sum(b["count"] for b in charges["distribution"]["kll"]["buckets"]) == 3000
    assert {f["name"]: f["completeness"] for f in constraints["features"]} == dict.fromkeys(FEATURES, 1.0)
    comparison = constraints["monitoring_config"]["distribution_constraints"]
    assert comparison["perform_comparison"] == "Enabled" and comparison["comparison_threshold"] == 0.1


def test_traffic_from_the_training_distribution_is_no_drift(tmp_path, baseline):
    prefix = capture(tmp_path, churn_like_frame(1500, seed=2))
    result = check(prefix, baseline, 1500)
    assert result["rows"] == 1500
    assert (result["status"], result["drift"], result["violations"]) == ("ok", False, [])


def test_shifted_traffic_is_drift_on_exactly_the_shifted_features(tmp_path, baseline):
    prefix = capture(tmp_path, churn_like_frame(1500, seed=2, shift=True))
    result = check(prefix, baseline, 1500)
    assert result["drift"] and sorted(result["drifted_features"]) == ["charges", "plan"]
    assert {v["constraint_check_type"] for v in result["violations"]} == {"baseline_drift_check"}
    assert "charges" in drift_reason(result) and "plan" in drift_reason(result)


def test_too_few_rows_give_no_verdict(tmp_path, baseline):
    prefix = capture(tmp_path, churn_like_frame(50, seed=2, shift=True))
    result = check(prefix, baseline, 50)
    assert (result["status"], result["drift"]) == ("insufficient_data", False)


def test_only_records_inside_the_window_are_read(tmp_path, baseline):
    statistics, constraints = baseline
    prefix = capture(tmp_path, churn_like_frame(7200, seed=2))  # two hours, one record a second
    since = START + timedelta(minutes=30)
    until = START + timedelta(minutes=90)
    files = capture_files(prefix, since, until)
    assert len(files) == 2  # the hours 10 and 11
    assert monitor_capture(statistics, constraints, files, since, until)["rows"] == 3600


def test_wrong_types_missing_values_and_extra_fields_are_violations(tmp_path, baseline):
    frame = churn_like_frame(300, seed=2).astype(object)
    frame.loc[:9, "charges"] = "n/a"
    frame.loc[10:19, "tenure"] = ""
    prefix = capture(tmp_path, frame, extra_field=True)
    violations = {(v["constraint_check_type"], v["feature_name"]) for v in check(prefix, baseline, 300)["violations"]}
    assert {("data_type_check", "charges"), ("completeness_check", "tenure"), ("extra_column_check", "*")} <= violations


def test_json_records_are_read_like_csv_ones(tmp_path, baseline):
    prefix = capture(tmp_path, churn_like_frame(200, seed=2), json_rows=True)
    result = check(prefix, baseline, 200)
    assert result["rows"] == 200 and not result["violations"]


def test_ground_truth_joined_on_the_inference_id_gives_model_quality(tmp_path, baseline):
    frame = churn_like_frame(400, seed=2)
    prefix = capture(tmp_path, frame)
    truth = tmp_path / "ground-truth" / "2026" / "03" / "04" / "10"
    truth.mkdir(parents=True)
    (truth / "labels.jsonl").write_text("".join(
        json.dumps({"groundTruthData": {"data": label, "encoding": "CSV"}, "eventMetadata": {"eventId": f"id-{i}"},
                    "eventVersion": "0"}) + "\n" for i, label in enumerate(labels_of(frame))))
    labels = read_ground_truth([str(p) for p in truth.iterdir()])
    result = check(prefix, baseline, 400, labels=labels, positive_label="yes",
                   thresholds={"min_holdout_roc_auc": 0.99})
    quality = result["model_quality"]
    assert quality["metrics"]["labelled_rows"] == 400 and 0.5 < quality["metrics"]["roc_auc"] < 0.99
    assert "min_holdout_roc_auc" in quality["below_thresholds"]
    assert result["drift"] and any(v["constraint_check_type"] == "model_quality_check" for v in result["violations"])


def test_the_report_names_the_statistic_and_plots_every_feature(tmp_path, baseline):
    prefix = capture(tmp_path, churn_like_frame(300, seed=2, shift=True))
    html = monitoring_report_html("churn monitoring", check(prefix, baseline, 300))
    assert "Kolmogorov-Smirnov" in html and "L-infinity" in html
    assert html.count("data:image/png;base64,") == len(FEATURES)


@pytest.mark.parametrize("setting, named", [
    ({"on_drift": "panic"}, "on_drift"), ({"drift": {"threshold": 2}}, "threshold"),
    ({"drift": {"alpha": 0.2}}, "alpha"),
])
def test_a_bad_monitoring_setting_is_refused_naming_it(setting, named):
    class Config:
        raw = {"monitoring": setting}

    with pytest.raises(MonitoringError, match=named):
        monitoring_settings(Config())


def test_an_empty_or_open_ended_window_is_refused(tmp_path):
    with pytest.raises(MonitoringError, match="empty"):
        capture_files(tmp_path.as_uri(), START, START)
    with pytest.raises(MonitoringError, match="time zone"):
        capture_files(tmp_path.as_uri(), datetime(2026, 1, 1), START)


def test_preparing_training_data_writes_the_registration_baseline_of_the_training_rows(tmp_path, monkeypatch):
    from include.data.generate import churn
    from mlops.core import partitions
    from mlops.core.config import load_pipeline
    from mlops.core.storage import read_json
    from mlops.ml.dataset import prepare_training_data

    monkeypatch.setattr(partitions, "read_partition", lambda uri: churn(600, seed=3))
    config = load_pipeline("churn")
    prepared = prepare_training_data(config, "file:///unused", (tmp_path / "run").as_uri())
    statistics = read_json(prepared["baseline_statistics_uri"])
    constraints = read_json(prepared["baseline_constraints_uri"])
    assert statistics["dataset"]["item_count"] == prepared["train_rows"]
    assert [f["name"] for f in statistics["features"]] == config.feature_columns
    assert {f["name"]: f["inferred_type"] for f in statistics["features"]}["Area Code"] == "String"
    assert [f["name"] for f in constraints["features"]] == config.feature_columns


def test_the_aws_registry_links_an_s3_baseline_as_drift_check_baselines():
    from mlops.backends.aws.registry import drift_check_baselines

    linked = drift_check_baselines({"baseline_statistics_uri": "s3://b/p/statistics.json",
                                    "baseline_constraints_uri": "s3://b/p/constraints.json"})
    assert linked == {"ModelDataQuality": {
        "Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/p/statistics.json"},
        "Constraints": {"ContentType": "application/json", "S3Uri": "s3://b/p/constraints.json"}}}
    assert drift_check_baselines({"baseline_statistics_uri": "file:///x"}) is None


def test_model_monitor_requests_are_valid_for_the_sagemaker_and_cloudwatch_apis(baseline):
    import botocore.session
    from botocore.validate import ParamValidator

    from mlops.backends.aws.model_monitor import (
        data_quality_job_definition_request,
        monitoring_schedule_request,
        violation_alarm_requests,
    )

    session = botocore.session.get_session()

    def valid(service: str, operation: str, request: dict) -> None:
        shape = session.get_service_model(service).operation_model(operation).input_shape
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), report.generate_report()

    _, constraints = baseline
    definition = data_quality_job_definition_request(
        "mlops-churn-prod-dq", "mlops-churn-classifier-prod", "s3://b/p/statistics.json", "s3://b/p/constraints.json",
        "s3://b/p/monitoring/model-monitor/prod", "arn:aws:iam::123456789012:role/mlops-sagemaker", "us-east-1")
    valid("sagemaker", "CreateDataQualityJobDefinition", definition)
    assert definition["DataQualityAppSpecification"]["ImageUri"].startswith("156813124566.dkr.ecr.us-east-1")
    valid("sagemaker", "CreateMonitoringSchedule", monitoring_schedule_request("mlops-churn-prod", "mlops-churn-prod-dq"))
    alarms = violation_alarm_requests("mlops-churn-classifier-prod", "mlops-churn-prod", constraints, FEATURES)
    assert [a["MetricName"] for a in alarms] == [f"feature_baseline_drift_{f}" for f in FEATURES]
    for alarm in alarms:
        valid("cloudwatch", "PutMetricAlarm", alarm)
    with pytest.raises(ValueError, match="region 'xx-north-9'"):
        data_quality_job_definition_request("n", "e", "s3://b/s", "s3://b/c", "s3://b/o", "r", "xx-north-9")
    with pytest.raises(ValueError, match="statistics URI must be s3://"):
        data_quality_job_definition_request("n", "e", "file:///s", "s3://b/c", "s3://b/o", "r", "us-east-1")


def test_monitoring_settings_are_the_validated_specs_and_an_unknown_key_is_named():
    from mlops.core.config import load_pipeline

    config = load_pipeline("churn")
    assert monitoring_settings(config) == config.spec.monitoring.model_dump()
    assert monitoring_settings(None)["drift"]["alpha"] == 0.01 and monitoring_settings(None)["on_drift"] == "retrain"

    class Config:
        raw = {"monitoring": {"drift": {"treshold": 0.2}}}

    with pytest.raises(MonitoringError, match=r"monitoring\.drift: unknown key\(s\) .*treshold"):
        monitoring_settings(Config())


# ---------------------------------------------------------------- Model Monitor's reports, one result format
def test_a_model_monitor_execution_reads_into_the_local_result_format(tmp_path, baseline):
    """The same shifted traffic, checked locally and summarised by Model Monitor (its statistics
    and its violations): the same verdict, fields and features; the distances agree closely."""
    from mlops.ml.monitoring import model_monitor_result

    statistics, _ = baseline
    shifted = churn_like_frame(1500, seed=4, shift=True)
    local = check(capture(tmp_path, shifted), baseline, 1500)
    execution = baseline_statistics(shifted, FEATURES, CATEGORICAL)  # what the execution's statistics.json holds
    violations = {"violations": [{"feature_name": name, "constraint_check_type": "baseline_drift_check",
                                  "description": "Baseline drift distance exceeds threshold: 0.1"}
                                 for name in local["drifted_features"]]}
    aws = model_monitor_result(statistics, execution, violations)
    assert set(aws) >= set(local) - {"window"}
    assert (aws["status"], aws["drift"], aws["rows"]) == ("violations", True, 1500)
    assert aws["drifted_features"] == local["drifted_features"] == ["plan", "charges"]
    distances = {f["name"]: f["distance"] for f in local["features"]}
    for feature in aws["features"]:
        assert feature["distance"] == pytest.approx(distances[feature["name"]], abs=0.05), feature["name"]
    assert "Kolmogorov-Smirnov" in monitoring_report_html("churn", {**aws, "window": {}})


def test_a_quiet_or_small_model_monitor_execution_is_no_drift(baseline):
    from mlops.ml.monitoring import model_monitor_result

    statistics, _ = baseline
    quiet = model_monitor_result(statistics, baseline_statistics(churn_like_frame(800, seed=8), FEATURES, CATEGORICAL),
                                 {"violations": []})
    assert (quiet["status"], quiet["drift"], quiet["violations"]) == ("ok", False, [])
    assert max(f["distance"] for f in quiet["features"]) < 0.1
    small = model_monitor_result(statistics, baseline_statistics(churn_like_frame(20, seed=8, shift=True), FEATURES,
                                                                 CATEGORICAL),
                                 {"violations": [{"feature_name": "plan", "constraint_check_type": "baseline_drift_check",
                                                  "description": "x"}]})
    assert (small["status"], small["drift"]) == ("insufficient_data", False)
    with pytest.raises(MonitoringError, match="not Model Monitor's"):
        model_monitor_result(statistics, {"features": []}, {"violations": []})


# ---------------------------------------------------------------- the local schedule: monitor_model's own check
def test_the_local_schedule_records_one_baseline_per_endpoint_and_a_new_one_replaces_it(tmp_path):
    from mlops.backends.base import MonitoringBaseline
    from mlops.backends.local.monitoring import LocalDataQualityMonitor

    monitor = LocalDataQualityMonitor(tmp_path)
    one = MonitoringBaseline("v1", "file:///b/1/statistics.json", "file:///b/1/constraints.json")
    two = MonitoringBaseline("v2", "file:///b/2/statistics.json", "file:///b/2/constraints.json")
    created = monitor.ensure_schedule("churn-prod", one)
    again = monitor.ensure_schedule("churn-prod", one)
    assert (created.change, again.change) == ("created", "unchanged")
    assert again.job_definition_name == created.job_definition_name and again.baseline["model_package_arn"] == "v1"
    replaced = LocalDataQualityMonitor(tmp_path).ensure_schedule("churn-prod", two)  # another process: the same record
    assert replaced.change == "replaced" and replaced.job_definition_name != created.job_definition_name
    assert monitor.schedule("churn-prod").baseline["model_package_arn"] == "v2"
    assert list(json.loads((tmp_path / "monitoring" / "schedules.json").read_text())) == ["churn-prod"]


def test_the_local_schedule_checks_the_capture_against_its_recorded_baseline(tmp_path, baseline):
    from mlops.backends.base import MonitoringBaseline, MonitoringCheck, MonitoringScheduleError
    from mlops.backends.local.monitoring import LocalDataQualityMonitor
    from mlops.core.storage import write_json

    statistics, constraints = baseline
    recorded = MonitoringBaseline("v1", write_json((tmp_path / "b" / "statistics.json").as_uri(), statistics),
                                  write_json((tmp_path / "b" / "constraints.json").as_uri(), constraints))
    monitor = LocalDataQualityMonitor(tmp_path / "state")
    schedule = monitor.ensure_schedule("churn-prod", recorded)
    prefix = capture(tmp_path / "capture", churn_like_frame(600, seed=3, shift=True))
    window = MonitoringCheck(since=START.isoformat(), until=(START + timedelta(seconds=600)).isoformat(),
                             capture_prefix=prefix, ground_truth_prefix=(tmp_path / "truth").as_uri(),
                             settings=monitoring_settings(None))
    result = monitor.report(schedule, window)
    assert result["rows"] == 600 and result["drift"] and "charges" in result["drifted_features"]
    assert result["execution"]["job_definition_name"] == schedule.job_definition_name
    monitor.ensure_schedule("churn-prod", MonitoringBaseline("v2", "file:///x/s.json", "file:///x/c.json"))
    with pytest.raises(MonitoringScheduleError, match="checks against churn-prod-dq-"):
        monitor.report(schedule, window)  # the schedule was replaced: the old one is no longer what runs


def test_the_local_backend_runs_its_own_check_whichever_aws_check_the_config_names(tmp_path):
    """``monitoring.aws.data_quality`` chooses between Model Monitor and the own check on AWS; the
    local backend has only its own, so both choices give it."""
    from mlops.backends.backend import Backend
    from mlops.backends.local.monitoring import LocalDataQualityMonitor

    local = LocalDataQualityMonitor(tmp_path)
    backend = Backend(name="local", tuner=None, trainer=None, registry=None, hosting=None, automl=None,
                      transform=None, monitoring=local)
    assert backend.monitoring_for(None, managed=True) is local and backend.monitoring_for(None) is local
