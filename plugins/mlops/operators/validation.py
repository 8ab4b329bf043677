"""Validation gate: Great Expectations on an ingested partition; quarantine on failure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink

from mlops.ui.links import report_url

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.types import TaskInstanceKey

SNAPSHOT = "snapshot.json"


def snapshot_path(use_case: str) -> ObjectStoragePath:
    """``validation/<use_case>/snapshot.json``: the profile of the last batch that passed."""
    from mlops.core.storage import data_path

    return data_path("validation", use_case, SNAPSHOT)


def read_snapshot(use_case: str) -> dict[str, Any] | None:
    """The last accepted snapshot of ``use_case``, or None before the first accepted batch."""
    path = snapshot_path(use_case)
    if not path.exists():
        return None
    try:
        snapshot = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        snapshot = None
        problem = f"not valid JSON ({err})"
    else:
        problem = "" if isinstance(snapshot, dict) and isinstance(snapshot.get("rows"), int) else "no row count"
    if problem:
        raise ValueError(
            f"{path}: the last accepted snapshot is unreadable: {problem}. Restore it from the profile.json of "
            f"the last passed validation under validation/{use_case}/, or delete it to start a new baseline."
        )
    return snapshot


class ValidationReportLink(BaseOperatorLink):
    """The task's "Validation report" button: the HTML report of this run, passed or failed."""

    name = "Validation report"
    key = "validation_report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(key=self.key, ti_key=ti_key)
        return value.get("url", "") if isinstance(value, dict) else ""


class DataValidationOperator(BaseOperator):
    """Validate a committed partition against the use case's suite and batch-level checks.

    The suite is ``include/expectations/<validation.suite>.json`` (Great Expectations 1.x); the
    extra-column policy, drift tolerances, row-count drop threshold and leakage settings come from
    the ``validation:`` section of ``include/pipelines/<use_case>.yaml``. The batch is compared with
    the last accepted snapshot ``validation/<use_case>/snapshot.json`` (none on the first run).

    On success the result (``result.json``), a readable HTML report (``report.html``) and this
    batch's profile (``profile.json``) are stored under ``validation/<use_case>/<validation_id>/``,
    the profile becomes the new snapshot, and the task returns the validation id for the registry's
    lineage. On failure the partition (manifest and the files it lists), the result, a text summary
    and the HTML report are copied to ``quarantine/<use_case>/<validation_id>/``; the raw partition
    stays where it was, the snapshot is left alone, and the task fails without retrying, with a
    message naming each failed expectation, its column and a few offending values, so nothing
    downstream (training) runs. Either way the report is the task's "Validation report" link.

    :param use_case: pipeline name (``include/pipelines/<use_case>.yaml``).
    :param partition_uri: the committed partition to validate (templated).
    """

    template_fields: Sequence[str] = ("use_case", "partition_uri")
    operator_extra_links = (ValidationReportLink(),)

    def __init__(self, *, use_case: str, partition_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.partition_uri = partition_uri

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops.core import partitions
        from mlops.core.config import load_pipeline
        from mlops.core.naming import path_safe
        from mlops.core.storage import data_path, to_path, write_json
        from mlops.validation.html import validation_html
        from mlops.validation.settings import ValidationSettings
        from mlops.validation.validate import validate_frame

        settings = ValidationSettings.from_pipeline(load_pipeline(self.use_case))
        source = to_path(self.partition_uri)
        manifest = partitions.read_manifest(source)
        frame = partitions.read_partition(source)
        snapshot = read_snapshot(self.use_case)
        validation_id = f"{self.use_case}-{source.name}-{path_safe(context['run_id'])}"
        report = validate_frame(frame, settings, run_id=context["run_id"], snapshot=snapshot)

        zone = "validation" if report.success else "quarantine"
        folder = data_path(zone, self.use_case, validation_id)
        if not report.success:
            # Data first: a result without its data would be a quarantine that lost the batch.
            (folder / "data").mkdir(parents=True, exist_ok=True)
            for name in [partitions.MANIFEST, *(part["file"] for part in manifest["files"])]:
                (source / name).copy(folder / "data" / name)
            (folder / "summary.txt").write_text(report.summary() + "\n")
        folder.mkdir(parents=True, exist_ok=True)
        result = {
            **report.to_dict(),
            "validation_id": validation_id,
            "partition": {"uri": str(source), "rows": manifest["rows"], "committed_at": manifest.get("committed_at")},
            "settings": _settings_dict(settings),
        }
        result_uri = write_json(str(folder / "result.json"), result)
        report_uri = str(folder / "report.html")
        (folder / "report.html").write_text(validation_html(report))
        if self.do_xcom_push:
            context["ti"].xcom_push(key=ValidationReportLink.key,
                                    value={"uri": report_uri, "url": report_url(report_uri)})
        for warning in report.warnings:
            self.log.warning("validation %s: %s", validation_id, warning)
        for note in report.notes:
            self.log.info("validation %s: %s", validation_id, note)

        if not report.success:
            raise AirflowFailException(
                f"validation of {source} failed; partition quarantined at {folder / 'data'} "
                f"(the raw partition is unchanged)\n{report.summary()}\nreport: {report_uri}"
            )
        write_json(str(folder / "profile.json"), report.profile)
        # Last: only a batch whose result and report are stored becomes the reference for the next.
        write_json(str(snapshot_path(self.use_case)),
                   {**report.profile, "validation_id": validation_id, "partition_uri": str(source),
                    "run_id": context["run_id"]})
        self.log.info("validation %s passed: %d rows; report %s", validation_id, len(frame), report_uri)
        return {
            "validation_id": validation_id,
            "result_uri": result_uri,
            "report_uri": report_uri,
            "rows": len(frame),
            "success": True,
            "warnings": report.warnings,
        }


def _settings_dict(settings) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
