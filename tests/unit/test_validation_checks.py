"""Batch-level validation: pipeline settings, label presence, leakage, and the comparison with the
last accepted snapshot (row-count drop and per-column drift by PSI)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from include.data import generate
from mlops.core.config import ConfigError, load_pipeline
from mlops.validation.checks import (
    CHECK_DRIFT,
    CHECK_LABEL,
    CHECK_LEAKAGE,
    CHECK_ROW_COUNT,
    _psi_noise,
    profile_frame,
)
from mlops.validation.settings import ValidationSettings
from mlops.validation.validate import validate_frame


@pytest.fixture(scope="module")
def churn_settings() -> ValidationSettings:
    return ValidationSettings.from_pipeline(load_pipeline("churn"))


def snapshot_of(frame, settings, validation_id="churn-ds=2026-01-01-accepted"):
    return {**profile_frame(frame, settings), "validation_id": validation_id}


def failures(report, check, column=None):
    return [f for f in report.failures if f["expectation"] == check and f["column"] == column]


def only_failure(report, check, column=None):
    found = failures(report, check, column)
    assert found, report.summary()
    assert len(report.failures) == len(found), f"other failures too:\n{report.summary()}"
    return found[0]


# -- settings ------------------------------------------------------------------------------------


def test_churn_settings_come_from_the_pipeline_config(churn_settings):
    assert churn_settings.suite == "churn"
    assert churn_settings.min_rows == 100
    assert churn_settings.extra_columns == "fail"
    assert churn_settings.target == "Churn?" and churn_settings.positive_label == "True."
    assert churn_settings.psi_max == 0.25 and churn_settings.bins == 10
    assert churn_settings.max_row_count_drop == 0.5
    assert churn_settings.leakage_max_abs_correlation == 0.95
    assert "Phone" not in churn_settings.features and "Churn?" not in churn_settings.features
    assert len(churn_settings.features) == 19


def test_retail_accepts_extra_columns_and_profiles_its_own_drift_columns():
    settings = ValidationSettings.from_pipeline(load_pipeline("retail"))

    assert settings.extra_columns == "warn"
    assert settings.target is None
    assert settings.drift_columns == ("Quantity", "Price", "Country")


@pytest.mark.parametrize(
    ("validation", "message"),
    [
        ({"suite": "churn", "extra_colums": "warn"}, r"validation: unknown keys \['extra_colums'\]"),
        ({"suite": "churn", "extra_columns": "ignore"}, "extra_columns must be one of fail, warn"),
        ({"suite": "churn", "drift": {"psi": 0.2}}, r"validation.drift: unknown keys \['psi'\]"),
        ({"suite": "churn", "row_count": {"max_drop": 1.5}}, r"row_count.max_drop must be in \[0, 1\]"),
        ({"suite": "churn", "drift": {"bins": 2.5}}, "drift.bins must be an integer"),
        ({"min_rows": 10}, "validation.suite must name a file"),
    ],
)
def test_bad_validation_settings_name_the_file_and_the_key(validation, message):
    config = load_pipeline("churn")
    config = replace(config, validation=validation)

    with pytest.raises(ConfigError, match=message) as caught:
        ValidationSettings.from_pipeline(config)

    assert "churn.yaml" in str(caught.value)


# -- extra columns, label --------------------------------------------------------------------------


def test_extra_column_passes_with_a_warning_when_the_policy_is_warn(churn_settings):
    frame = generate.churn(300, seed=1).assign(Notes="vip")

    report = validate_frame(frame, replace(churn_settings, extra_columns="warn"))

    assert report.success, report.summary()
    assert report.warnings == [
        "unexpected columns ['Notes'] accepted (validation.extra_columns: warn); "
        "they are kept in the data but are not features"
    ]
    assert "warning: unexpected columns ['Notes']" in report.summary()


def test_extra_column_fails_when_the_policy_is_fail(churn_settings):
    report = validate_frame(generate.churn(300, seed=1).assign(Notes="vip"), churn_settings)

    found = only_failure(report, "expect_table_columns_to_match_set")
    assert found["message"] == "unexpected columns ['Notes']"


def test_missing_label_column_is_named_as_the_label(churn_settings):
    report = validate_frame(generate.churn(300, seed=1).drop(columns=["Churn?"]), churn_settings)

    (found,) = failures(report, CHECK_LABEL, "Churn?")
    assert found["message"] == (
        "the label column 'Churn?' (schema.target) is missing: the batch cannot be trained on"
    )
    first, second = report.summary().splitlines()[1:3]
    assert first.startswith("  - check_label_column_present on column 'Churn?': the label column")
    assert second == "  - expect_table_columns_to_match_set: missing columns ['Churn?']"


# -- leakage -----------------------------------------------------------------------------------------


def test_good_batch_has_no_leakage_and_reports_the_strongest_correlation(churn_settings):
    report = validate_frame(generate.churn(500, seed=1), churn_settings)

    (leakage,) = [r for r in report.results if r["expectation"] == CHECK_LEAKAGE]
    assert leakage["success"] and leakage["column"] is None
    assert leakage["message"].startswith("no feature determines the label (19 features checked; strongest")


def test_numeric_copy_of_the_label_is_leakage(churn_settings):
    frame = generate.churn(500, seed=1)
    frame["CustServ Calls"] = (frame["Churn?"] == "True.").astype("int64")

    report = validate_frame(frame, churn_settings)

    found = only_failure(report, CHECK_LEAKAGE, "CustServ Calls")
    assert "determines the label 'Churn?' one-to-one" in found["message"]
    assert sorted(found["offending_values"]) == ["0 -> 'False.'", "1 -> 'True.'"]


def test_categorical_renaming_of_the_label_is_leakage(churn_settings):
    frame = generate.churn(500, seed=1)
    frame["VMail Plan"] = frame["Churn?"].map({"True.": "yes", "False.": "no"})
    frame["VMail Message"] = np.where(frame["VMail Plan"] == "yes", 20, 0)  # keep the pair consistent

    report = validate_frame(frame, churn_settings)

    assert failures(report, CHECK_LEAKAGE, "VMail Plan")
    assert "'VMail Plan': target leakage" in report.summary()


def test_near_copy_of_the_label_is_caught_by_correlation(churn_settings):
    frame = generate.churn(500, seed=1)
    rng = np.random.default_rng(0)
    churned = (frame["Churn?"] == "True.").to_numpy()
    frame["Day Mins"] = np.where(churned, 300.0, 100.0) + rng.normal(0, 3, len(frame)).round(1)

    report = validate_frame(frame, churn_settings)

    found = only_failure(report, CHECK_LEAKAGE, "Day Mins")
    assert found["message"].startswith("target leakage: correlation +0.99")
    assert found["observed"] > 0.95


def test_leakage_is_not_checked_without_a_label():
    report = validate_frame(generate.retail(2000, seed=4), ValidationSettings.from_pipeline(load_pipeline("retail")))

    assert report.success, report.summary()
    assert not [r for r in report.results if r["expectation"] in (CHECK_LEAKAGE, CHECK_LABEL)]


# -- snapshot: first run, row count, drift -----------------------------------------------------------


def test_first_run_passes_the_snapshot_checks_with_a_note_and_yields_a_profile(churn_settings):
    frame = generate.churn(500, seed=1)

    report = validate_frame(frame, churn_settings, snapshot=None)

    assert report.success
    assert report.compared_with is None
    assert report.notes[0].startswith("no accepted snapshot yet (first run)")
    (drift,) = [r for r in report.results if r["expectation"] == CHECK_DRIFT]
    assert drift["success"] and drift["message"] == "skipped: no accepted snapshot yet (first run)"
    assert report.profile["rows"] == 500
    assert set(report.profile["columns"]) == {*churn_settings.features, "Churn?"}
    json.dumps(report.profile)  # stored as the next snapshot


def test_profile_has_quantile_bins_for_numbers_and_shares_for_categories(churn_settings):
    frame = generate.churn(1000, seed=1)
    frame.loc[:99, "Day Mins"] = np.nan

    profile = profile_frame(frame, churn_settings)

    day = profile["columns"]["Day Mins"]
    assert day["kind"] == "numeric" and len(day["edges"]) == 9 and len(day["shares"]) == 10
    assert day["null_share"] == pytest.approx(0.1)
    assert sum(day["shares"]) + day["null_share"] == pytest.approx(1.0)
    area = profile["columns"]["Area Code"]  # listed as categorical although its dtype is int
    assert area["kind"] == "categorical" and set(area["shares"]) == {"408", "415", "510"}
    assert profile["columns"]["Churn?"]["kind"] == "categorical"


def test_a_fresh_sample_of_the_same_distribution_passes(churn_settings):
    snapshot = snapshot_of(generate.churn(2000, seed=1), churn_settings)

    report = validate_frame(generate.churn(2000, seed=2), churn_settings, snapshot=snapshot)

    assert report.success, report.summary()
    drift = [r for r in report.results if r["expectation"] == CHECK_DRIFT]
    assert len(drift) == 20 and all(r["observed"] < 0.1 for r in drift)
    assert report.compared_with == {"validation_id": "churn-ds=2026-01-01-accepted", "rows": 2000,
                                    "partition_uri": None}


def test_a_small_batch_is_not_flagged_for_sampling_noise(churn_settings):
    snapshot = snapshot_of(generate.churn(2000, seed=1), churn_settings)

    report = validate_frame(generate.churn(1200, seed=3), churn_settings, snapshot=snapshot)

    assert report.success, report.summary()


def test_shifted_numeric_feature_fails_naming_the_column_psi_and_mean(churn_settings):
    snapshot = snapshot_of(generate.churn(2000, seed=1), churn_settings)
    frame = generate.churn(2000, seed=2)
    frame["Night Mins"] = (frame["Night Mins"] * 1.6).round(1)  # still within the suite's range

    report = validate_frame(frame, churn_settings, snapshot=snapshot)

    found = only_failure(report, CHECK_DRIFT, "Night Mins")
    assert found["message"].startswith("PSI ")
    assert "beyond the tolerance 0.25" in found["message"]
    assert "against the last accepted snapshot (churn-ds=2026-01-01-accepted, 2000 rows)" in found["message"]
    assert "; mean 20" in found["message"] and "-> 32" in found["message"]
    assert found["offending_values"] and found["offending_values"][0].startswith("> ")
    assert found["observed"] > 1.0


def test_shifted_category_shares_fail_the_drift_check(churn_settings):
    snapshot = snapshot_of(generate.churn(2000, seed=1), churn_settings)
    frame = generate.churn(2000, seed=2)
    frame["Int'l Plan"] = np.where(np.arange(len(frame)) % 2 == 0, "yes", "no")  # ~10% -> 50% yes

    report = validate_frame(frame, churn_settings, snapshot=snapshot)

    found = only_failure(report, CHECK_DRIFT, "Int'l Plan")
    assert "'yes': 9." in found["message"] and "-> 50.0%" in found["message"]


def test_per_column_tolerance_lets_a_known_shift_through(churn_settings):
    snapshot = snapshot_of(generate.churn(2000, seed=1), churn_settings)
    frame = generate.churn(2000, seed=2)
    frame["Night Mins"] = (frame["Night Mins"] * 1.6).round(1)
    tolerant = replace(churn_settings, psi_max_per_column={"Night Mins": 50.0})

    assert validate_frame(frame, tolerant, snapshot=snapshot).success


def test_row_count_drop_beyond_the_threshold_fails(churn_settings):
    snapshot = snapshot_of(generate.churn(2000, seed=1), churn_settings)

    report = validate_frame(generate.churn(600, seed=2), churn_settings, snapshot=snapshot)

    found = only_failure(report, CHECK_ROW_COUNT)
    assert found["message"] == (
        "600 rows vs 2000 in the last accepted snapshot (churn-ds=2026-01-01-accepted, 2000 rows): "
        "70.0% fewer; at most 50% fewer allowed (validation.row_count.max_drop)"
    )


def test_row_count_drop_within_the_threshold_and_growth_pass(churn_settings):
    snapshot = snapshot_of(generate.churn(2000, seed=1), churn_settings)

    for rows in (1100, 3000):
        report = validate_frame(generate.churn(rows, seed=2), churn_settings, snapshot=snapshot)
        (check,) = [r for r in report.results if r["expectation"] == CHECK_ROW_COUNT]
        assert check["success"], check["message"]


def test_psi_noise_allowance_shrinks_with_sample_size_and_grows_with_bins():
    assert _psi_noise(10, 5000, 5000) < _psi_noise(10, 500, 5000) < _psi_noise(10, 100, 5000)
    assert _psi_noise(3, 1000, 1000) < _psi_noise(51, 1000, 1000)
    assert _psi_noise(1, 1000, 1000) == 0.0
