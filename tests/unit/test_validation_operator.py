"""DataValidationOperator: where results go, the snapshot it keeps, and the task's report link."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from include.data import generate
from mlops.core import partitions
from mlops.core.storage import to_path
from mlops.operators.validation import (
    DataValidationOperator,
    ValidationReportLink,
    read_snapshot,
    report_url,
    snapshot_path,
)


class FakeTaskInstance:
    try_number = 1

    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def commit(ds: str, frame) -> str:
    directory = partitions.partition_path("churn", ds)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    parts = partitions.write_parts(directory, [table], token="unit")
    partitions.commit(directory, parts, {f.name: str(f.type) for f in table.schema}, {"kind": "unit"})
    return str(directory)


def run(partition_uri: str, run_id: str):
    ti = FakeTaskInstance()
    operator = DataValidationOperator(task_id="validate", use_case="churn", partition_uri=partition_uri)
    return operator.execute({"run_id": run_id, "ti": ti}), ti.xcom


def test_rerunning_an_accepted_partition_gives_the_same_id_and_passes_against_its_own_snapshot(mlops_home):
    uri = commit("2026-03-01", generate.churn(300, seed=1))

    first, _ = run(uri, "scheduled__2026-03-01T00:00:00+00:00")
    snapshot = json.loads(snapshot_path("churn").read_text())
    again, _ = run(uri, "scheduled__2026-03-01T00:00:00+00:00")

    assert again["validation_id"] == first["validation_id"] == "churn-ds=2026-03-01-scheduled__2026-03-01T00_00_00_00_00"
    assert snapshot["validation_id"] == first["validation_id"] and snapshot["partition_uri"] == uri
    result = json.loads(to_path(again["result_uri"]).read_text())
    assert result["compared_with"]["validation_id"] == first["validation_id"]
    drift = [r for r in result["results"] if r["expectation"] == "check_feature_drift_against_snapshot"]
    assert drift and all(r["observed"] == 0.0 for r in drift)


def test_the_report_link_is_pushed_for_the_ui(mlops_home):
    returned, xcom = run(commit("2026-03-01", generate.churn(300, seed=1)), "manual__1")

    assert returned["report_uri"].startswith("file://") and returned["report_uri"].endswith("/report.html")
    from urllib.parse import quote

    relative = returned["report_uri"].split("/data/", 1)[1]
    assert xcom[ValidationReportLink.key]["uri"] == returned["report_uri"]
    # served by the API server (the plugin's /mlops/reports), not a file:// string a browser will not open
    assert xcom[ValidationReportLink.key]["url"].endswith(f"/mlops/reports/{quote(relative)}")
    assert xcom[ValidationReportLink.key]["url"].startswith("http")


def test_report_link_reads_the_url_the_task_pushed(monkeypatch):
    from airflow.sdk.execution_time import xcom

    seen = {}

    def get_value(*, ti_key, key):
        seen.update(ti_key=ti_key, key=key)
        return {"uri": "s3://bucket/validation/churn/x/report.html", "url": "https://example/report"}

    monkeypatch.setattr(xcom.XCom, "get_value", get_value)
    operator = DataValidationOperator(task_id="validate", use_case="churn", partition_uri="")

    assert ValidationReportLink().get_link(operator, ti_key="key") == "https://example/report"
    assert seen == {"ti_key": "key", "key": "validation_report"}
    assert [link.name for link in operator.operator_extra_links] == ["Validation report"]


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("file:///data/validation/churn/x/report.html", "file:///data/validation/churn/x/report.html"),
        ("s3://bucket/mlops/quarantine/churn/churn-ds=2026-03-01-x/report.html",
         "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=mlops/quarantine/churn/churn-ds%3D2026-03-01-x/report.html"),
    ],
)
def test_report_url_opens_s3_reports_in_the_console(uri, url):
    assert report_url(uri) == url


def test_an_unreadable_snapshot_fails_with_how_to_recover(mlops_home):
    assert read_snapshot("churn") is None
    snapshot_path("churn").parent.mkdir(parents=True)
    snapshot_path("churn").write_text('{"rows": 30')

    with pytest.raises(ValueError, match=r"snapshot.json: the last accepted snapshot is unreadable: not valid JSON.*"
                                         r"profile.json of the last passed validation"):
        read_snapshot("churn")
