"""Validate one batch: the suite with Great Expectations, then the batch-level checks."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.messages import name_list
from mlops.validation.checks import CHECK_LABEL, batch_checks, profile_frame
from mlops.validation.report import ValidationReport
from mlops.validation.settings import EXPECTATIONS_DIR, ValidationSettings
from mlops.validation.suite import COLUMN_SET, load_suite, run_suite

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd


def validate_frame(
    frame: pd.DataFrame,
    suite: str | ValidationSettings,
    min_rows: int | None = None,
    *,
    run_id: str | None = None,
    directory: Path = EXPECTATIONS_DIR,
    snapshot: Mapping[str, Any] | None = None,
) -> ValidationReport:
    """Validate a DataFrame: the suite with Great Expectations 1.x, then the batch-level checks.

    :param frame: The batch, as loaded (no coercion happens here: types are checked as they are).
    :param suite: The suite name (``churn``, ``retail``: GE only, default policies), or the
        pipeline's :class:`ValidationSettings`.
    :param min_rows: Overrides the minimum row count (of the suite, or of the settings).
    :param run_id: Recorded in the report (pass the Airflow run id); generated when absent.
    :param directory: Where the suite files live.
    :param snapshot: The last accepted batch's :func:`profile_frame` (plus ``validation_id``),
        or None when there is none yet.
    :return: A :class:`ValidationReport`; call :meth:`~ValidationReport.raise_for_failures` to
        turn a failed batch into an exception.
    """
    import time

    started = time.perf_counter()
    settings = suite if isinstance(suite, ValidationSettings) else ValidationSettings(suite=suite)
    if min_rows is not None:
        settings = replace(settings, min_rows=min_rows)
    spec = load_suite(settings.suite, directory, extra_columns=settings.extra_columns)
    run_id = run_id or uuid.uuid4().hex

    warnings: list[str] = []
    notes: list[str] = []
    checks = batch_checks(frame, settings, snapshot, notes)
    # The label's absence says more than the column set does, so it comes first.
    outcomes = [c for c in checks if c["expectation"] == CHECK_LABEL]
    outcomes += run_suite(frame, spec, settings.min_rows)
    outcomes += [c for c in checks if c["expectation"] != CHECK_LABEL]
    if settings.extra_columns == "warn":
        expected = next((set(e["kwargs"]["column_set"]) for e in spec["expectations"] if e["type"] == COLUMN_SET),
                        None)
        extra = [c for c in frame.columns if expected is not None and c not in expected]
        if extra:
            warnings.append(
                f"unexpected columns {name_list(extra)} accepted (validation.extra_columns: warn); "
                "they are kept in the data but are not features"
            )
    failures = [{k: v for k, v in o.items() if k != "success"} for o in outcomes if not o["success"]]
    evaluated = len(outcomes)
    successful = evaluated - len(failures)
    return ValidationReport(
        success=not failures,
        suite=spec["name"],
        failures=failures,
        statistics={
            "evaluated": evaluated,
            "successful": successful,
            "unsuccessful": len(failures),
            "success_percent": round(100.0 * successful / evaluated, 2) if evaluated else 100.0,
        },
        run_id=run_id,
        results=outcomes,
        rows=len(frame),
        duration_s=round(time.perf_counter() - started, 3),
        warnings=warnings,
        notes=notes,
        compared_with=(
            {"validation_id": snapshot.get("validation_id"), "rows": snapshot.get("rows"),
             "partition_uri": snapshot.get("partition_uri")}
            if snapshot else None
        ),
        profile=profile_frame(frame, settings) if not failures else None,
    )
