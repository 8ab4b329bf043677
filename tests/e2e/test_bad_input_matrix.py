"""The bad-input matrix: every way a batch can be wrong gives a clear error naming the problem,
loses nothing, and registers no model.

Each case runs the real steps in-process, executed directly with a minimal context: a landed
CSV goes through ``LandingToRawOperator`` (as s3_ingest runs it) and, if it becomes a partition,
through ``DataValidationOperator`` (the gate of train_model); a "partition" case is committed the
way keyspaces_ingest commits one, so only the gate stands between it and training. "Loses
nothing" means: a rejected file is still in ``landing/`` byte for byte and no partition was
published; a quarantined batch is still in ``raw/`` unchanged, its copy (manifest and Parquet
parts, same sha256) is in ``quarantine/`` with ``result.json``, ``summary.txt`` and
``report.html``, the landed original is in ``processed/``, and the snapshot is untouched.

"Registers no model" is shown once per failure class (file, suite, leakage, snapshot) by
``bad_input_driver.py``: in a subprocess, a real train_model ``dag.test()`` stops at
resolve_partition or validate, everything downstream is upstream_failed, and the registry is
empty. It starts with this module and runs while the in-process cases do.

Set ``MLOPS_MATRIX_TABLE=<file>`` to get the matrix as a Markdown table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.bad_input_driver import (
    ROWS,
    commit_frame,
    csv_bytes,
    edit_csv_line,
    good_frame,
    land,
    publish,
    registered_versions,
    sha256,
    validate,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DS_ACCEPTED, DS = "2026-05-01", "2026-05-02"
RUN_ID = "matrix__case"
DAY_CALLS = 8  # position of "Day Calls" in the churn header
MATRIX: list[dict[str, str]] = []


@dataclass(frozen=True)
class Case:
    """One bad input.

    :param id: test id and landed file name.
    :param problem: the matrix row.
    :param build: the CSV bytes (``via="landing"``) or the frame (``via="partition"``).
    :param outcome: ``landing`` (rejected by LandingToRawOperator), ``quarantine`` (failed by the
        gate) or ``accepted`` (passes, possibly with warnings).
    :param expect: regular expressions the error (or, when accepted, the warnings) must match.
    :param via: ``landing``: a CSV in landing/; ``partition``: committed like keyspaces_ingest.
    :param snapshot: accept a good batch first, so that the case is compared with a snapshot.
    """

    id: str
    problem: str
    build: Callable[[], object]
    outcome: str
    expect: tuple[str, ...]
    via: str = "landing"
    use_case: str = "churn"
    snapshot: bool = False


def good_csv() -> bytes:
    return csv_bytes(good_frame())


def changed(**columns) -> Callable[[], object]:
    """A good frame with some cells replaced: ``column={row: value, ...}`` or a whole-column callable."""

    def build():
        frame = good_frame()
        for column, change in columns.items():
            if callable(change):
                frame[column] = change(frame)
            else:
                for row, value in change.items():
                    frame.loc[row, column] = value
        return frame

    return build


def as_csv(build: Callable[[], object], **kwargs) -> Callable[[], bytes]:
    return lambda: csv_bytes(build(), **kwargs)


def wrong_type_frame():
    frame = good_frame()
    frame["Day Calls"] = frame["Day Calls"].astype(str)
    frame.loc[5, "Day Calls"] = "12a"
    return frame


def duplicate_phone(frame):
    phones = frame["Phone"].copy()
    phones.iloc[9] = phones.iloc[4]
    return phones


def retail_with_extra_column():
    from include.data import generate

    frame = generate.retail(2000, seed=5).assign(Channel="web")
    for column in ("Invoice", "StockCode", "Description", "Country", "Channel"):
        frame[column] = frame[column].astype("string")
    return frame


def parquet_bytes(frame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def with_columns(frame, count: int):
    import pandas as pd

    extra = pd.DataFrame(0, index=frame.index, columns=[f"extra_{i}" for i in range(count)])
    return pd.concat([frame, extra], axis=1)


CASES = [
    # -- file level: LandingToRawOperator refuses the file; nothing is published or moved
    Case("missing_column", "missing column", as_csv(lambda: good_frame().drop(columns=["Eve Calls"])), "landing",
         (r"columns do not match the schema: missing \['Eve Calls'\]$",)),
    Case("extra_column", "unexpected extra column (churn: extra_columns=fail)",
         as_csv(lambda: good_frame().assign(Notes="vip")), "landing", (r"columns do not match the schema: unexpected \['Notes'\]$",)),
    Case("missing_label", "missing label column", as_csv(lambda: good_frame().drop(columns=["Churn?"])), "landing",
         (r"columns do not match the schema: missing \['Churn\?'\]$",)),
    Case("wrong_type", "wrong type (text in a numeric column)",
         lambda: edit_csv_line(good_csv(), 7, DAY_CALLS, b"12a"), "landing", (r"'Day Calls'", r"'12a'")),
    Case("empty_file", "empty file", lambda: b"", "landing", (r"the file is empty \(0 bytes\)",)),
    Case("header_only", "header-only file", lambda: good_csv().split(b"\n")[0] + b"\n", "landing",
         (r"header only, no data rows",)),
    Case("ragged_rows", "ragged rows",
         lambda: edit_csv_line(good_csv(), 6, DAY_CALLS, b"100,7"), "landing",
         (r"ragged rows: line 6 has 22 fields where the header has 21 \(1 such rows\)",)),
    Case("truncated_file", "truncated file (cut mid-row)", lambda: good_csv()[:-40], "landing",
         (rf"truncated file: the last row \(line {ROWS + 1}\) ends after \d+ of 21 fields",)),
    Case("wrong_delimiter", "wrong delimiter", as_csv(good_frame, sep=";"), "landing",
         (r"wrong delimiter: the header is one column .State;Account Length;.*that contains semicolons",)),
    Case("non_utf8", "non-UTF-8 bytes", lambda: edit_csv_line(good_csv(), 4, 0, b"K\xc9"), "landing",
         (r"not UTF-8: byte 0xc9 at line 4", r"re-export the file as UTF-8")),
    Case("parquet_named_csv", "a Parquet file named .csv", lambda: parquet_bytes(good_frame()), "landing",
         (r"not a CSV file: this is a Parquet file",)),
    Case("thousands_of_columns", "5,000 unexpected columns",
         as_csv(lambda: with_columns(good_frame(), 5_000)), "landing",
         (r"columns do not match the schema: unexpected \['extra_0', .*\] and 4,995 more \(5,000 in all\)$",)),
    # -- accepted
    Case("utf8_bom", "UTF-8 byte-order mark (must be accepted)", lambda: b"\xef\xbb\xbf" + good_csv(), "accepted",
         ()),
    # -- partition level: published, then failed by the gate and quarantined
    Case("nulls_required", "nulls in a required column", as_csv(changed(**{"Day Mins": {3: None, 7: None, 11: None}})),
         "quarantine",
         (r"expect_column_values_to_not_be_null on column 'Day Mins': 3 of 400 values unexpected \(0.75%\), e.g. \[null\]",)),
    Case("out_of_range", "out-of-range numbers",
         as_csv(changed(**{"CustServ Calls": {5: 42}, "Eve Mins": {6: -3.5}})), "quarantine",
         (r"expect_column_values_to_be_between on column 'CustServ Calls': 1 of 400 .*e.g. \[42\] "
          r"\(allowed range \[0, 20\]\)",
          r"expect_column_values_to_be_between on column 'Eve Mins': .*e.g. \[-3.5\]")),
    Case("unknown_category", "unknown category", as_csv(changed(State={2: "ZZ"}, **{"Int'l Plan": {4: "maybe"}})),
         "quarantine",
         (r"expect_column_values_to_be_in_set on column 'State': 1 of 400 .*e.g. \['ZZ'\]",
          r"expect_column_values_to_be_in_set on column \"Int'l Plan\": .*e.g. \['maybe'\]")),
    Case("duplicate_keys", "duplicate keys", as_csv(changed(Phone=duplicate_phone)), "quarantine",
         (r"expect_column_values_to_be_unique on column 'Phone': 2 of 400 values unexpected",)),
    Case("constant_column", "constant column", as_csv(changed(**{"Day Calls": lambda f: 100})), "quarantine",
         (r"expect_column_unique_value_count_to_be_between on column 'Day Calls': constant column: "
          r"all 400 values are 100",)),
    Case("label_leakage", "a feature identical to the label (leakage)",
         as_csv(changed(**{"CustServ Calls": lambda f: (f["Churn?"] == "True.").astype("int64")})), "quarantine",
         (r"check_no_label_leakage on column 'CustServ Calls': target leakage: the feature determines the label "
          r"'Churn\?' one-to-one",)),
    Case("row_count_drop", "row-count drop beyond the threshold vs the previous snapshot",
         lambda: csv_bytes(good_frame(rows=150, seed=12)), "quarantine",
         (r"check_row_count_against_snapshot: 150 rows vs 400 in the last accepted snapshot "
          r"\(churn-ds=2026-05-01-matrix__accepted, 400 rows\): 62.5% fewer; at most 50% fewer allowed",),
         snapshot=True),
    Case("feature_drift", "drift of a feature vs the last accepted snapshot",
         as_csv(changed(**{"Night Mins": lambda f: (f["Night Mins"] * 1.6).round(1)})), "quarantine",
         (r"check_feature_drift_against_snapshot on column 'Night Mins': PSI \d+\.\d+ against the last accepted "
          r"snapshot .* beyond the tolerance 0.25",), snapshot=True),
    # -- partition level without a landing check (keyspaces_ingest): the gate alone catches these
    Case("missing_column_partition", "missing column (Keyspaces partition)",
         lambda: good_frame().drop(columns=["Eve Calls"]), "quarantine",
         (r"expect_table_columns_to_match_set: missing columns \['Eve Calls'\]",
          r"on column 'Eve Calls': column 'Eve Calls' is missing from the batch"), via="partition"),
    Case("extra_column_partition", "unexpected extra column, extra_columns=fail (Keyspaces partition)",
         lambda: good_frame().assign(Notes="vip"), "quarantine",
         (r"expect_table_columns_to_match_set: unexpected columns \['Notes'\]",), via="partition"),
    Case("extra_column_warn", "unexpected extra column, extra_columns=warn (retail partition)",
         retail_with_extra_column, "accepted",
         (r"unexpected columns \['Channel'\] accepted \(validation.extra_columns: warn\)",), via="partition",
         use_case="retail"),
    Case("missing_label_partition", "missing label column (Keyspaces partition)",
         lambda: good_frame().drop(columns=["Churn?"]), "quarantine",
         (r"check_label_column_present on column 'Churn\?': the label column 'Churn\?' \(schema.target\) is "
          r"missing: the batch cannot be trained on",), via="partition"),
    Case("wrong_type_partition", "wrong type (Keyspaces partition)", wrong_type_frame, "quarantine",
         (r"expect_column_values_to_be_in_type_list on column 'Day Calls': the column's type is '\w+', allowed "
          r"types: int64.*1 of 400 values are not numbers, e.g. \['12a'\]",), via="partition"),
    Case("empty_partition", "empty batch (Keyspaces returned no rows)", lambda: good_frame().iloc[0:0], "quarantine",
         (r"expect_table_row_count_to_be_between: row count 0 \(allowed \[100, 10000000\]\)",), via="partition"),
]


# -- the dag.test() subprocess, started with the module ------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def dag_runs(tmp_path_factory):
    """Start bad_input_driver.py now; ``dag_runs()`` waits for it and returns its JSON summary."""
    from testkit.net import free_port

    home = tmp_path_factory.mktemp("bad-input-dag-runs")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))},
        "MLOPS_HOME": str(home),
        "MLOPS_BACKEND": "local",
        "MLOPS_RUNTIME_PORT": str(free_port()),
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / 'plugins', ROOT / 'tests', ROOT)),
    }
    log = (home / "driver.log").open("w")
    process = subprocess.Popen([sys.executable, str(ROOT / "tests/e2e/bad_input_driver.py")], env=env,
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    result: dict = {}

    def wait() -> dict:
        if not result:
            returncode = process.wait(timeout=900)
            log.flush()
            output = (home / "driver.log").read_text()
            assert returncode == 0, f"driver failed ({returncode}), log at {home / 'driver.log'}:\n{output[-4000:]}"
            result.update(json.loads(output.strip().splitlines()[-1]))
        return result

    yield wait
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="module", autouse=True)
def matrix_table():
    yield
    target = os.environ.get("MLOPS_MATRIX_TABLE")
    if target and MATRIX:
        lines = ["| case | caught by | what it reports | where the data is kept |", "|---|---|---|---|"]
        lines += [f"| {r['problem']} | {r['layer']} | {r['reports']} | {r['kept']} |" for r in MATRIX]
        Path(target).write_text("\n".join(lines) + "\n")


# -- the in-process matrix ---------------------------------------------------------------------------------


def accept_a_good_batch() -> bytes:
    from mlops.operators.validation import snapshot_path

    landed = land("churn", "accepted.csv", good_csv())
    partition = publish("churn", [landed], DS_ACCEPTED)["partition_uri"]
    validate("churn", partition, "matrix__accepted")
    return snapshot_path("churn").read_bytes()


def partition_files(partition) -> dict[str, str]:
    from mlops.core import partitions

    manifest = partitions.read_manifest(partition)
    return {name: sha256(partition / name) for name in [partitions.MANIFEST, *(p["file"] for p in manifest["files"])]}


def processed_copy(use_case: str, name: str):
    from mlops.core.storage import data_path

    return [p for p in data_path("processed", use_case).rglob("*") if p.is_file() and p.name.startswith(name)]


def matches(patterns: tuple[str, ...], text: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, text), f"{pattern!r} not found in:\n{text}"


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gives_a_clear_error_and_loses_nothing(case, mlops_home):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.core import partitions
    from mlops.core.naming import path_safe
    from mlops.core.storage import data_path, to_path
    from mlops.operators.validation import snapshot_path

    snapshot_before = accept_a_good_batch() if case.snapshot else None
    content = case.build()
    landed = None
    if case.via == "landing":
        landed = land(case.use_case, f"{case.id}.csv", content)
        if case.outcome == "landing":
            with pytest.raises(ValueError) as caught:
                publish(case.use_case, [landed], DS)
            message = str(caught.value)
            assert message.startswith(str(landed)), message  # names the file
            assert len(message) < len(str(landed)) + 500, message  # bounded, however bad the file
            matches(case.expect, message)
            assert landed.read_bytes() == content  # the file stays where it landed, unchanged
            assert not (partitions.partition_path(case.use_case, DS) / partitions.MANIFEST).exists()
            assert not processed_copy(case.use_case, case.id)
            assert registered_versions() == 0
            MATRIX.append({"problem": case.problem, "layer": "landing (LandingToRawOperator)",
                           "reports": short(message.removeprefix(str(landed) + ": ")),
                           "kept": f"landing/{case.use_case}/{case.id}.csv untouched; nothing published"})
            return
        partition = partitions.partition_path(case.use_case, DS)
        assert publish(case.use_case, [landed], DS)["partition_uri"] == str(partition)
    else:
        partition = to_path(commit_frame(case.use_case, DS, content))
    raw_before = partition_files(partition)
    rows_before = partitions.read_manifest(partition)["rows"]
    validation_id = f"{case.use_case}-ds={DS}-{path_safe(RUN_ID)}"

    if case.outcome == "accepted":
        returned, xcom = validate(case.use_case, str(partition), RUN_ID)
        folder = data_path("validation", case.use_case, validation_id)
        assert returned["validation_id"] == validation_id and returned["success"] is True
        matches(case.expect, "\n".join(returned["warnings"]))
        assert len(returned["warnings"]) == len(case.expect)
        result = json.loads((folder / "result.json").read_text())
        assert result["success"] is True and result["partition"]["uri"] == str(partition)
        assert (folder / "report.html").exists() and xcom["validation_report"]["uri"] == str(folder / "report.html")
        assert json.loads(snapshot_path(case.use_case).read_text())["validation_id"] == validation_id
        assert partition_files(partition) == raw_before
        assert registered_versions() == 0  # validation alone never registers anything
        MATRIX.append({"problem": case.problem, "layer": "accepted",
                       "reports": short("; ".join(returned["warnings"]) or f"passed: {returned['rows']} rows"),
                       "kept": f"raw/{case.use_case}/ds={DS}/; result.json + report.html + profile.json in "
                               f"validation/{case.use_case}/{validation_id}/; snapshot updated"})
        return

    with pytest.raises(AirflowFailException) as caught:
        validate(case.use_case, str(partition), RUN_ID)
    message = str(caught.value)
    quarantine = data_path("quarantine", case.use_case, validation_id)
    matches(case.expect, message)
    assert f"partition quarantined at {quarantine / 'data'}" in message
    # nothing lost: the raw partition is unchanged and its copy in quarantine is identical
    assert partition_files(partition) == raw_before
    assert partitions.read_manifest(partition)["rows"] == rows_before
    assert partition_files(quarantine / "data") == raw_before
    assert len(partitions.read_partition(quarantine / "data")) == rows_before
    if landed is not None:
        (original,) = processed_copy(case.use_case, case.id)
        assert original.read_bytes() == content
    # the result, the summary and the report travel with the quarantined copy
    result = json.loads((quarantine / "result.json").read_text())
    assert result["success"] is False and result["validation_id"] == validation_id
    summary = (quarantine / "summary.txt").read_text()
    matches(case.expect, summary)
    lines = [line for line in summary.splitlines() if line.startswith("  - ")]
    for failure in result["failures"]:  # each failed expectation, with its column, is named
        column = "" if failure["column"] is None else f" on column {failure['column']!r}"
        assert any(failure["expectation"] in line and f"{column}: {failure['message']}" in line for line in lines)
    assert "FAILED" in (quarantine / "report.html").read_text()
    assert caught.value.xcom["validation_report"]["uri"] == str(quarantine / "report.html")
    # a failed batch never becomes the reference, and nothing reaches the registry
    if snapshot_before is None:
        assert not snapshot_path(case.use_case).exists()
    else:
        assert snapshot_path(case.use_case).read_bytes() == snapshot_before
    assert not data_path("validation", case.use_case, validation_id).exists()
    assert registered_versions() == 0
    kept = f"raw/{case.use_case}/ds={DS}/ unchanged; copy + result.json + summary.txt + report.html in " \
           f"quarantine/{case.use_case}/<id>/"
    if landed is not None:
        kept += f"; original CSV in processed/{case.use_case}/"
    MATRIX.append({"problem": case.problem, "layer": "gate (DataValidationOperator)",
                   "reports": short(" ".join(line.strip() for line in summary.splitlines()[1:]
                                             if line.startswith("  - "))),
                   "kept": kept})


def test_good_data_passes_stores_its_result_and_becomes_the_snapshot(mlops_home):
    from mlops.core.storage import data_path
    from mlops.operators.validation import snapshot_path

    landed = land("churn", "good.csv", good_csv())
    partition = publish("churn", [landed], DS)["partition_uri"]

    returned, xcom = validate("churn", partition, RUN_ID)

    folder = data_path("validation", "churn", returned["validation_id"])
    assert returned["rows"] == ROWS and returned["warnings"] == []
    assert {p.name for p in folder.iterdir()} == {"result.json", "report.html", "profile.json"}
    result = json.loads((folder / "result.json").read_text())
    assert result["notes"][0].startswith("no accepted snapshot yet (first run)")
    assert result["settings"]["psi_max"] == 0.25 and result["settings"]["max_row_count_drop"] == 0.5
    snapshot = json.loads(snapshot_path("churn").read_text())
    assert snapshot["validation_id"] == returned["validation_id"] and snapshot["rows"] == ROWS
    # the report opens from the UI: the API server serves the data root's reports (the plugin)
    from mlops.ui.links import report_url

    assert xcom["validation_report"]["url"] == report_url(returned["report_uri"])
    assert "/mlops/reports/validation/churn/" in xcom["validation_report"]["url"]

    # the next batch of the same source is compared with it and passes
    landed = land("churn", "next.csv", csv_bytes(good_frame(seed=12)))
    partition = publish("churn", [landed], "2026-05-03")["partition_uri"]
    second, _ = validate("churn", partition, "matrix__next")
    result = json.loads((data_path("validation", "churn", second["validation_id"]) / "result.json").read_text())
    assert result["compared_with"]["validation_id"] == returned["validation_id"]
    assert json.loads(snapshot_path("churn").read_text())["validation_id"] == second["validation_id"]
    MATRIX.append({"problem": "good data (control)", "layer": "accepted",
                   "reports": "passed; first run notes that there is no snapshot yet; next batch compared with it",
                   "kept": "raw/churn/ds=.../; result.json + report.html + profile.json in validation/churn/<id>/; "
                           "snapshot.json replaced"})


# -- one real train_model run per failure class: stops at the gate, registers nothing ----------------------


@pytest.mark.parametrize("failure_class", ["file", "suite", "leakage", "snapshot"])
def test_train_model_stops_before_training_and_registers_no_model(dag_runs, failure_class):
    run = dag_runs()[failure_class]

    assert "failed" in run["state"]
    assert run["registered"] == 0
    downstream = ("prepare", "tune", "refit", "evaluate", "register", "approve_model", "announce_approved")
    assert all(run["tasks"][task] in ("upstream_failed", "skipped", "none") for task in downstream), run["tasks"]
    if failure_class == "file":
        assert "truncated file" in run["landing_error"] and run["landed_file_kept"]
        assert run["tasks"]["resolve_partition"] == "failed"  # no partition was ever published
        return
    assert run["tasks"]["validate"] == "failed"
    assert {"data/_manifest.json", "result.json", "summary.txt", "report.html"} <= set(run["quarantined"])
    assert run["raw_partition_unchanged"] and run["snapshot_unchanged"]
    # the task's "Validation report" link points at the quarantined report
    assert run["report_link"] == run["report_xcom"]["url"] and run["report_link"].endswith("/report.html")
    expected = {
        "suite": ["expect_column_values_to_not_be_null on column 'Day Mins'",
                  "expect_column_values_to_be_in_set on column 'State'"],
        "leakage": ["check_no_label_leakage on column 'CustServ Calls'"],
        "snapshot": ["check_feature_drift_against_snapshot on column 'Night Mins'"],
    }[failure_class]
    failures = [line.split(":")[0].strip(" -") for line in run["summary"].splitlines() if line.startswith("  - ")]
    assert failures == expected
