"""Great Expectations validation of the churn and retail suites."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.core.config import load_pipeline
from mlops.ingest.csv_files import load_csv_strict
from mlops.validation.html import validation_html
from mlops.validation.report import DataValidationError, ValidationReport
from mlops.validation.settings import ValidationSettings
from mlops.validation.suite import SuiteError, load_suite
from mlops.validation.validate import validate_frame

CHURN_COLUMNS = [
    "State", "Account Length", "Area Code", "Phone", "Int'l Plan", "VMail Plan", "VMail Message",
    "Day Mins", "Day Calls", "Day Charge", "Eve Mins", "Eve Calls", "Eve Charge",
    "Night Mins", "Night Calls", "Night Charge", "Intl Mins", "Intl Calls", "Intl Charge",
    "CustServ Calls", "Churn?",
]  # fmt: skip


def churn_frame(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    """Small synthetic customers in the 21-column churn schema, all within the suite's rules."""
    rng = np.random.default_rng(seed)
    phones = rng.choice(10_000_000, size=rows, replace=False)
    frame = pd.DataFrame(
        {
            "State": rng.choice(["KS", "OH", "NJ", "CA", "TX"], rows),
            "Account Length": rng.integers(1, 240, rows),
            "Area Code": rng.choice([408, 415, 510], rows),
            "Phone": [f"{p // 10_000:03d}-{p % 10_000:04d}" for p in phones],
            "Int'l Plan": rng.choice(["yes", "no"], rows),
            "VMail Plan": rng.choice(["yes", "no"], rows),
            "VMail Message": rng.integers(0, 50, rows),
        }
    )
    for period, rate in (("Day", 0.17), ("Eve", 0.085), ("Night", 0.045), ("Intl", 0.27)):
        minutes = rng.uniform(0, 20 if period == "Intl" else 350, rows).round(1)
        frame[f"{period} Mins"] = minutes
        frame[f"{period} Calls"] = rng.integers(0, 20 if period == "Intl" else 160, rows)
        frame[f"{period} Charge"] = (minutes * rate).round(2)
    frame["CustServ Calls"] = rng.integers(0, 9, rows)
    frame["Churn?"] = rng.choice(["True.", "False."], rows)
    return frame[CHURN_COLUMNS]


def retail_frame() -> pd.DataFrame:
    """A few Online Retail II lines: a cancellation, a guest line, float customer ids."""
    return pd.DataFrame(
        {
            "Invoice": ["489434", "489434", "C489449", "489450", "489451"],
            "StockCode": ["85048", "79323P", "22087", "21232", "84879"],
            "Description": ["CHRISTMAS LIGHTS", "PINK CHERRY LIGHTS", None, "MUG", "BIRD ORNAMENT"],
            "Quantity": [12, 12, -12, 6, 8],
            "InvoiceDate": pd.to_datetime(
                [
                    "2009-12-01 07:45",
                    "2009-12-01 07:45",
                    "2009-12-01 10:33",
                    "2009-12-01 10:35",
                    "2009-12-02 09:00",
                ]
            ),
            "Price": [6.95, 6.75, 2.95, 1.25, 1.69],
            "Customer ID": [13085.0, 13085.0, 13085.0, np.nan, 16329.0],
            "Country": ["United Kingdom"] * 4 + ["France"],
        }
    )


def failure(report: ValidationReport, expectation: str, column: str | None = None) -> dict:
    matches = [f for f in report.failures if f["expectation"] == expectation and f["column"] == column]
    assert matches, f"no failure {expectation} on {column!r} in:\n{report.summary()}"
    return matches[0]


# -- suites --------------------------------------------------------------------------------------


def _column_set(suite: dict) -> dict:
    return next(e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_set")


@pytest.mark.parametrize("use_case", ["churn", "retail"])
def test_each_suite_expects_exactly_the_columns_of_its_pipeline_schema(use_case):
    pipeline = load_pipeline(use_case)

    suite = load_suite(pipeline.validation["suite"])

    assert _column_set(suite)["kwargs"]["column_set"] == pipeline.schema["columns"]


def test_the_extra_column_policy_sets_exact_match_of_the_column_set():
    assert _column_set(load_suite("churn"))["kwargs"]["exact_match"] is True  # extra_columns="fail"
    assert _column_set(load_suite("churn", extra_columns="warn"))["kwargs"]["exact_match"] is False


def test_every_churn_feature_and_the_label_is_guarded_against_being_constant():
    guarded = {
        e["kwargs"]["column"]
        for e in load_suite("churn")["expectations"]
        if e["type"] == "expect_column_unique_value_count_to_be_between" and e["kwargs"]["min_value"] == 2
    }
    assert guarded == set(CHURN_COLUMNS) - {"Phone"}  # the key is guarded by uniqueness instead


def test_a_suite_still_carrying_the_extra_column_policy_points_to_the_pipeline_config(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"allow_extra_columns": True, "expectations": []}))

    with pytest.raises(SuiteError, match="validation.extra_columns"):
        load_suite("old", tmp_path)


def test_module_import_stays_light_for_dag_parsing():
    code = (
        "import sys, mlops.validation.validate, mlops.validation.html, mlops.ingest.csv_files; "
        "heavy = [m for m in ('great_expectations', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "plugins")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)


# -- validate_frame ------------------------------------------------------------------------------


def test_good_churn_frame_passes_every_expectation():
    report = validate_frame(churn_frame(), "churn", run_id="manual__1")

    assert report.success, report.summary()
    assert report.failures == []
    assert report.statistics["evaluated"] == report.statistics["successful"] > 40
    assert report.run_id == "manual__1"
    assert report.summary().startswith("Validation of suite 'churn' passed")


def test_good_retail_frame_with_cancellations_and_guests_passes():
    report = validate_frame(retail_frame(), "retail")
    assert report.success, report.summary()


def test_null_in_required_column_fails_naming_column():
    frame = churn_frame()
    frame.loc[[3, 7], "Day Mins"] = np.nan

    report = validate_frame(frame, "churn")

    assert not report.success
    found = failure(report, "expect_column_values_to_not_be_null", "Day Mins")
    assert found["unexpected_count"] == 2
    assert found["offending_values"] == [None]
    line = next(s for s in report.summary().splitlines() if "not_be_null" in s)
    assert "'Day Mins'" in line and "2 of 40" in line and "null" in line


def test_out_of_range_number_fails_showing_the_value():
    frame = churn_frame()
    frame.loc[5, "CustServ Calls"] = 42
    frame.loc[6, "Eve Mins"] = -3.5

    report = validate_frame(frame, "churn")

    assert failure(report, "expect_column_values_to_be_between", "CustServ Calls")["offending_values"] == [42]
    assert failure(report, "expect_column_values_to_be_between", "Eve Mins")["offending_values"] == [-3.5]
    summary = report.summary()
    assert "expect_column_values_to_be_between on column 'CustServ Calls'" in summary
    assert "42" in summary and "-3.5" in summary


def test_unknown_category_fails_showing_the_value():
    frame = churn_frame()
    frame.loc[0, "Int'l Plan"] = "maybe"
    frame.loc[1, "Churn?"] = "True"  # no trailing dot
    frame.loc[2, "Area Code"] = 999

    report = validate_frame(frame, "churn")

    assert failure(report, "expect_column_values_to_be_in_set", "Int'l Plan")["offending_values"] == ["maybe"]
    assert failure(report, "expect_column_values_to_be_in_set", "Churn?")["offending_values"] == ["True"]
    assert failure(report, "expect_column_values_to_be_in_set", "Area Code")["offending_values"] == [999]
    assert "'maybe'" in report.summary()


def test_duplicate_phone_fails_uniqueness_showing_the_key():
    frame = churn_frame()
    frame.loc[9, "Phone"] = frame.loc[4, "Phone"]

    report = validate_frame(frame, "churn")

    found = failure(report, "expect_column_values_to_be_unique", "Phone")
    assert found["unexpected_count"] == 2
    assert found["offending_values"] == [frame.loc[4, "Phone"]]
    assert frame.loc[4, "Phone"] in report.summary()


def test_missing_column_fails_the_column_set_and_says_which():
    report = validate_frame(churn_frame().drop(columns=["Eve Calls"]), "churn")

    found = failure(report, "expect_table_columns_to_match_set")
    assert found["offending_values"] == ["Eve Calls"]
    assert "missing columns ['Eve Calls']" in report.summary()
    # the column's own expectations fail with a plain message, not a GE traceback, in one summary line
    assert failure(report, "expect_column_values_to_not_be_null", "Eve Calls")["message"] == (
        "column 'Eve Calls' is missing from the batch"
    )
    assert (
        "  - expect_column_values_to_not_be_null, expect_column_values_to_be_in_type_list, "
        "expect_column_values_to_be_between, expect_column_unique_value_count_to_be_between on column "
        "'Eve Calls': column 'Eve Calls' is missing from the batch"
    ) in report.summary().splitlines()


def test_extra_column_fails_the_column_set_and_says_which():
    frame = churn_frame().assign(Notes="vip")

    report = validate_frame(frame, "churn")

    assert failure(report, "expect_table_columns_to_match_set")["offending_values"] == ["Notes"]
    assert "unexpected columns ['Notes']" in report.summary()
    assert report.statistics["unsuccessful"] == 1


def test_thousands_of_unexpected_columns_give_a_bounded_summary_with_their_count():
    frame = churn_frame()
    extra = pd.DataFrame(0, index=frame.index, columns=[f"extra_column_{i}" for i in range(5_000)])
    frame = pd.concat([frame, extra], axis=1)

    failed = validate_frame(frame, "churn")
    warned = validate_frame(frame, ValidationSettings(suite="churn", extra_columns="warn"))

    message = failure(failed, "expect_table_columns_to_match_set")["message"]
    assert len(message) < 500 and "4,995 more (5,000 in all)" in message
    assert len(failed.summary()) < 1_000
    assert warned.success
    assert len(warned.warnings) == 1 and len(warned.warnings[0]) < 500 and "5,000 in all" in warned.warnings[0]


def test_numbers_written_as_text_fail_the_type_check():
    frame = churn_frame()
    frame["Day Calls"] = frame["Day Calls"].astype(str)

    report = validate_frame(frame, "churn")

    found = failure(report, "expect_column_values_to_be_in_type_list", "Day Calls")
    assert "the column's type is 'str'" in found["message"]
    assert "every value looks numeric, so the column was written as text" in found["message"]


def test_a_value_that_is_not_a_number_is_named_by_the_type_check():
    frame = churn_frame()
    frame["Day Calls"] = frame["Day Calls"].astype(str)
    frame.loc[[3, 8], "Day Calls"] = ["12a", "n/a"]

    report = validate_frame(frame, "churn")

    found = failure(report, "expect_column_values_to_be_in_type_list", "Day Calls")
    assert found["offending_values"] == ["12a", "n/a"]
    assert found["unexpected_count"] == 2
    assert "2 of 40 values are not numbers, e.g. ['12a', 'n/a']" in found["message"]
    # the range check cannot run on text and says why instead of showing GE's exception
    between = failure(report, "expect_column_values_to_be_between", "Day Calls")
    assert between["message"] == "not evaluated: the column holds text, not numbers (see the type check of 'Day Calls')"


def test_constant_feature_fails_naming_the_value():
    frame = churn_frame().assign(**{"Day Calls": 100})

    report = validate_frame(frame, "churn")

    found = failure(report, "expect_column_unique_value_count_to_be_between", "Day Calls")
    assert found["offending_values"] == [100]
    assert "constant column: all 40 values are 100" in found["message"]
    assert report.statistics["unsuccessful"] == 1


def test_min_rows_overrides_the_suite_row_count():
    assert validate_frame(churn_frame(40), "churn").success

    report = validate_frame(churn_frame(40), "churn", min_rows=100)

    assert "row count 40 (allowed [100," in failure(report, "expect_table_row_count_to_be_between")["message"]


def test_offending_values_are_capped_at_five_distinct():
    frame = churn_frame()
    frame.loc[:9, "State"] = [f"Z{i}" for i in range(10)]

    found = failure(validate_frame(frame, "churn"), "expect_column_values_to_be_in_set", "State")

    assert found["unexpected_count"] == 10
    assert found["offending_values"] == ["Z0", "Z1", "Z2", "Z3", "Z4"]


def test_report_is_json_serialisable_and_raises_with_its_summary():
    frame = churn_frame()
    frame.loc[0, "Phone"] = "not a phone"
    report = validate_frame(frame, "churn")

    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["success"] is False and as_dict["suite"] == "churn"
    assert {"expectation", "column", "offending_values", "unexpected_count"} <= set(as_dict["failures"][0])
    with pytest.raises(DataValidationError, match="match_regex on column 'Phone'"):
        report.raise_for_failures()


def test_validation_html_is_a_page_with_a_row_per_expectation():
    frame = churn_frame()
    frame.loc[0, "Int'l Plan"] = "<b>maybe</b>"
    report = validate_frame(frame, "churn")

    page = validation_html(report)

    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<tr class=") == report.statistics["evaluated"]
    assert page.count('<tr class="fail">') == 1
    assert "&lt;b&gt;maybe&lt;/b&gt;" in page and "<b>maybe" not in page


def test_load_csv_strict_round_trips_a_churn_frame():
    text = churn_frame().to_csv(index=False)
    frame = load_csv_strict(io.StringIO(text), CHURN_COLUMNS)
    assert validate_frame(frame, "churn").success
