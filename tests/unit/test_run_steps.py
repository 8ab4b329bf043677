"""The run steps the DAG files call (``mlops.ml.training_run``, ``mlops.deploy.stage_settings``)."""

from __future__ import annotations

import pytest

from mlops.core.config import load_pipeline
from mlops.deploy.stage_settings import endpoint_settings, prod_approval_settings, prod_evidence
from mlops.ml.training_run import passes_quality_gate, registration_lineage, tuning_settings

CONFIG = load_pipeline("churn")
TRAINING = CONFIG.section("training")


def tuning(mean: float) -> dict:
    return {"objective": "roc_auc", "history_uri": "file:///h.json",
            "best": {"mean": mean, "std": 0.01, "hyperparameters": {"C": 1.0}, "fold_scores": [mean] * 5}}


def test_tuning_settings_take_the_params_over_the_pipeline_config():
    assert tuning_settings(CONFIG, {"n_trials": None, "baseline": None}) == {
        "n_trials": TRAINING["n_trials"], "baseline": TRAINING["baseline"], "search_space": TRAINING["search_space"]}
    given = tuning_settings(CONFIG, {"n_trials": 3, "baseline": 0.0})
    assert (given["n_trials"], given["baseline"]) == (3, 0.0)  # a baseline of 0 is a baseline, not "empty"


@pytest.mark.parametrize(("mean", "passed"), [(0.79, False), (0.8, True), (0.81, True)])
def test_the_quality_gate_passes_at_or_above_the_baseline(mean, passed):
    ok, compared = passes_quality_gate(tuning(mean), {"baseline": 0.8})

    assert ok is passed
    assert compared == f"mean CV roc_auc {mean:.4f} vs baseline 0.8"


def test_the_lineage_names_data_validation_hyperparameters_and_evidence():
    prepared = {"dataset_digest": "d" * 64, "validation_id": "v-1", "holdout_uri": "file:///holdout.parquet"}
    evaluation = {"report_uri": "file:///r.html", "golden_uri": "file:///g.parquet"}

    lineage = registration_lineage(prepared, tuning(0.9), evaluation)

    assert {k: v for k, v in lineage.items() if k != "code_version"} == {
        "dataset_digest": "d" * 64, "validation_id": "v-1", "hyperparameters": {"C": 1.0}, "fold_scores": [0.9] * 5,
        "report_uri": "file:///r.html", "golden_uri": "file:///g.parquet", "holdout_uri": "file:///holdout.parquet",
        "baseline_statistics_uri": None, "baseline_constraints_uri": None, "drift_trigger": None}
    assert lineage["code_version"]


def test_the_lineage_keeps_the_baseline_and_the_drift_report_that_triggered_the_run():
    prepared = {"dataset_digest": "d" * 64, "validation_id": "v-1", "holdout_uri": "file:///holdout.parquet",
                "baseline_statistics_uri": "file:///statistics.json", "baseline_constraints_uri": "file:///c.json"}
    evaluation = {"report_uri": "file:///r.html", "golden_uri": "file:///g.parquet"}
    drift = {"kind": "churn_drift", "report_uri": "file:///drift.html", "reason": "Intl Plan drifted"}

    by_drift = registration_lineage(prepared, tuning(0.9), evaluation, drift)
    by_data = registration_lineage(prepared, tuning(0.9), evaluation, {"kind": "raw_partition"})

    assert by_drift["drift_trigger"] == drift and by_data["drift_trigger"] is None
    assert by_drift["baseline_statistics_uri"] == "file:///statistics.json"
    assert by_drift["baseline_constraints_uri"] == "file:///c.json"


def test_prod_evidence_lists_every_check_and_the_latency():
    report = {"passed": False, "latency_ms": {"p50": 3.0, "p95": 9.5},
              "checks": [{"name": "contract", "passed": True, "detail": ""},
                         {"name": "golden", "passed": False, "detail": "2 rows off"}]}

    assert prod_evidence(report) == {"checks_passed": 0.0, "p50_latency_ms": 3.0, "p95_latency_ms": 9.5,
                                     "check_contract": "passed", "check_golden": "FAILED 2 rows off"}


def test_prod_evidence_carries_the_shadow_replay():
    report = {"passed": True, "latency_ms": {"p50": 3.0, "p95": 9.5}, "checks": []}
    shadow = {"evidence": {"shadow_disagreement_rate": 0.02, "shadow_records": 200.0}}

    evidence = prod_evidence(report, shadow)

    assert evidence["shadow_disagreement_rate"] == 0.02 and evidence["checks_passed"] == 1.0


def test_prod_approval_requires_every_check_and_takes_the_latency_param():
    approval = CONFIG.section("approval")

    default = prod_approval_settings(CONFIG, {"approval_mode": None, "max_p95_latency_ms": None})
    given = prod_approval_settings(CONFIG, {"approval_mode": "manual", "max_p95_latency_ms": 250})

    thresholds = {key: value for key, value in approval["prod"].items() if not key.startswith("shadow_")}
    assert default == {"mode": approval["mode"], "thresholds": {"min_checks_passed": 1.0, **thresholds}}
    assert "shadow_records" in approval["prod"]  # a sample size, not a threshold: never in thresholds
    assert given["mode"] == "manual" and given["thresholds"]["max_p95_latency_ms"] == 250


def test_endpoint_settings_name_the_prod_alarms_for_the_endpoint(monkeypatch, tmp_path):
    from mlops.core.settings import get_settings

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    settings = endpoint_settings(CONFIG, get_settings(), "churn-prod")

    assert settings["rollback_alarms"] and all(a["AlarmName"].startswith("churn-prod-")
                                               for a in settings["rollback_alarms"])
    assert settings["data_capture_config"]["DestinationS3Uri"].endswith("/churn-prod")
    assert set(settings["serverless"]) >= {"MemorySizeInMB", "MaxConcurrency"}
