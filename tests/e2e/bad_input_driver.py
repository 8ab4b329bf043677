"""Bad inputs for the validation gate, the in-process steps that meet them, and (run as a script)
one train_model ``dag.test()`` per failure class that must stop at the gate and register nothing.

test_bad_input_matrix.py imports the builders and helpers; it also runs this file in a
subprocess (``python bad_input_driver.py``) with its own MLOPS_HOME and AIRFLOW_HOME, which
prints one JSON summary as its last line.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (str(ROOT / "plugins"), str(ROOT / "tests"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

ROWS = 400
GROUP = "churn-classifier"


# -- data --------------------------------------------------------------------------------------------


def good_frame(rows: int = ROWS, seed: int = 11):
    from include.data import generate

    return generate.churn(rows, seed=seed)


def csv_bytes(frame, **kwargs: Any) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, **kwargs)
    return buffer.getvalue().encode("utf-8")


def edit_csv_line(content: bytes, line: int, column: int, value: bytes) -> bytes:
    """Replace one field of one line (1-based line numbers, the header is line 1)."""
    lines = content.split(b"\n")
    fields = lines[line - 1].split(b",")
    fields[column] = value
    lines[line - 1] = b",".join(fields)
    return b"\n".join(lines)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the steps, executed directly ---------------------------------------------------------------------


class FakeTaskInstance:
    """What the two operators use of ``context["ti"]``."""

    try_number = 1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "ti": FakeTaskInstance()}


def land(use_case: str, name: str, content: bytes):
    from mlops.core.storage import data_path

    path = data_path("landing", use_case, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def publish(use_case: str, files: list, ds: str, run_id: str = "matrix__landing") -> dict[str, Any]:
    from mlops.operators.s3 import LandingToRawOperator

    operator = LandingToRawOperator(task_id="publish_raw_partition", use_case=use_case,
                                    files=[str(f) for f in files], ds=ds)
    return operator.execute(context(run_id))


def commit_frame(use_case: str, ds: str, frame) -> str:
    """Commit ``frame`` as a raw partition the way keyspaces_ingest does (Parquet + manifest),
    without the landing check: the gate alone must catch what is wrong."""
    import pyarrow as pa

    from mlops.core import partitions

    directory = partitions.partition_path(use_case, ds)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    parts = partitions.write_parts(directory, [table], token="matrix")
    partitions.commit(directory, parts, {f.name: str(f.type) for f in table.schema}, {"kind": "matrix"})
    return str(directory)


def validate(use_case: str, partition_uri: str, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute the gate; return (its return value, the XComs it pushed). Raises as the task would."""
    from mlops.operators.validation import DataValidationOperator

    ctx = context(run_id)
    operator = DataValidationOperator(task_id="validate", use_case=use_case, partition_uri=partition_uri)
    try:
        return operator.execute(ctx), ctx["ti"].xcom
    except Exception as err:
        err.xcom = ctx["ti"].xcom  # type: ignore[attr-defined]
        raise


def registered_versions() -> int:
    from mlops.backends.local.registry import SQLiteRegistry
    from mlops.core.settings import get_settings

    db = get_settings().registry_db
    return len(SQLiteRegistry(db).list_versions(GROUP)) if db.exists() else 0


# -- one dag.test() of train_model per failure class ------------------------------------------------


def _bad_partitions() -> dict[str, Any]:
    """Failure class -> (description, frame)."""
    suite = good_frame(seed=21)
    suite.loc[[4, 9], "Day Mins"] = None
    suite.loc[7, "State"] = "ZZ"
    leakage = good_frame(seed=22)
    leakage["CustServ Calls"] = (leakage["Churn?"] == "True.").astype("int64")
    drift = good_frame(seed=23)
    drift["Night Mins"] = (drift["Night Mins"] * 1.6).round(1)
    return {
        "suite": ("nulls in a required column and an unknown category", suite),
        "leakage": ("a feature identical to the label", leakage),
        "snapshot": ("drift against the last accepted snapshot", drift),
    }


def _run_train_model(dag, partition_uri: str):
    from tools.airflow_env import task_states, xcom

    run = dag.test(run_conf={"partition_uri": partition_uri})
    return {
        "state": str(run.state),
        "tasks": {k: v.split(".")[-1].lower() for k, v in task_states(run).items()},
        "report_link": xcom(run, "validate", key="_link_ValidationReportLink"),
        "report_xcom": xcom(run, "validate", key="validation_report"),
    }


def main() -> None:
    from tools.airflow_env import configure

    configure()
    import os

    from airflow.dag_processing.dagbag import DagBag

    from mlops.core import partitions
    from mlops.core.storage import data_path
    from mlops.operators.validation import snapshot_path
    from tools.airflow_env import migrate_db

    migrate_db()
    dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("train_model")
    # A failure must end the run at once, not wait out the one-minute retry delay in dag.test().
    for task in dag.tasks:
        task.retries = 0
    out: dict[str, Any] = {}

    # File level: a truncated landed file never becomes a partition, so train_model has nothing.
    landed = land("churn", "customers-truncated.csv", csv_bytes(good_frame())[:-40])
    try:
        publish("churn", [landed], "2026-06-01")
        landing_error = None
    except ValueError as err:
        landing_error = str(err)
    run = _run_train_model(dag, "")
    out["file"] = {"landing_error": landing_error, "landed_file_kept": landed.exists(), **run,
                   "registered": registered_versions()}

    snapshot_before = None
    for number, (failure_class, (description, frame)) in enumerate(_bad_partitions().items(), start=3):
        ds = f"2026-06-{number:02d}"
        if failure_class == "snapshot":
            # This class needs an accepted batch first: the gate itself accepts one.
            validate("churn", commit_frame("churn", "2026-06-02", good_frame(seed=20)), "matrix__accepted")
            snapshot_before = snapshot_path("churn").read_bytes()
        uri = commit_frame("churn", ds, frame)
        manifest = partitions.partition_path("churn", ds) / partitions.MANIFEST
        manifest_before = manifest.read_bytes()
        run = _run_train_model(dag, uri)
        folders = [f for f in data_path("quarantine", "churn").iterdir() if f.name.startswith(f"churn-ds={ds}-")]
        out[failure_class] = {
            "description": description, **run,
            "quarantined": sorted(str(p.relative_to(f)) for f in folders for p in f.rglob("*") if p.is_file()),
            "summary": (folders[0] / "summary.txt").read_text() if folders else None,
            "raw_partition_unchanged": manifest.read_bytes() == manifest_before,
            "snapshot_unchanged": (snapshot_path("churn").read_bytes() == snapshot_before
                                   if snapshot_before is not None else not snapshot_path("churn").exists()),
            "registered": registered_versions(),
        }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
