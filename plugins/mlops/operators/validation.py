"""Validation gate: Great Expectations on an ingested partition; quarantine on failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class DataValidationOperator(BaseOperator):
    """Validate a committed partition against the use case's expectation suite.

    On success the result (JSON) and a readable HTML report are stored beside the data under
    ``validation/<use_case>/`` and the task returns the validation id. On failure the partition,
    the result and a text summary are copied to ``quarantine/<use_case>/``, the raw input stays
    where it was, and the task fails with a message naming each failed expectation, its column
    and offending values, so nothing downstream (training) runs.

    :param use_case: pipeline name; the suite is ``include/expectations/<suite>.json``.
    :param partition_uri: the committed partition to validate (templated).
    """

    template_fields: Sequence[str] = ("use_case", "partition_uri")

    def __init__(self, *, use_case: str, partition_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.partition_uri = partition_uri

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops import partitions
        from mlops.config import load_pipeline
        from mlops.naming import path_safe
        from mlops.storage import data_path, to_path, write_json
        from mlops.validation import validate_frame, validation_html

        config = load_pipeline(self.use_case)
        source = to_path(self.partition_uri)
        frame = partitions.read_partition(source)
        report = validate_frame(frame, config.validation["suite"], min_rows=config.validation.get("min_rows"))
        validation_id = f"{self.use_case}-{source.name}-{path_safe(context['run_id'])}"
        folder = data_path("validation", self.use_case, validation_id)
        if not report.success:
            folder = data_path("quarantine", self.use_case, validation_id)
            (folder / "data").mkdir(parents=True, exist_ok=True)
            for item in source.iterdir():
                item.copy(folder / "data" / item.name)
            (folder / "summary.txt").write_text(report.summary())
        folder.mkdir(parents=True, exist_ok=True)
        result_uri = write_json(str(folder / "result.json"), report.to_dict())
        (folder / "report.html").write_text(validation_html(report))
        if not report.success:
            raise AirflowFailException(
                f"validation of {source} failed; partition quarantined at {folder}\n{report.summary()}"
            )
        self.log.info("validation %s passed: %d rows", validation_id, len(frame))
        return {
            "validation_id": validation_id,
            "result_uri": result_uri,
            "report_uri": str(folder / "report.html"),
            "rows": len(frame),
            "success": True,
        }
