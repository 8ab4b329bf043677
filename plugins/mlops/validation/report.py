"""The outcome of validating one batch, and the exception a failed batch raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class DataValidationError(ValueError):
    """A batch failed its expectation suite; the message is the report's summary."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class ValidationReport:
    """The outcome of validating one batch.

    :param success: True when every expectation and check passed (warnings do not fail a batch).
    :param suite: Name of the suite.
    :param failures: One dict per failed expectation or check: ``expectation``, ``column`` (None
        for table-level ones), ``unexpected_count``, ``offending_values`` (up to five distinct
        examples), ``rule`` (what is allowed), ``message`` (one readable sentence) and, where
        known, ``observed``.
    :param statistics: ``evaluated``, ``successful``, ``unsuccessful`` counts and ``success_percent``.
    :param run_id: The caller's run id (e.g. the Airflow run id), or a generated one.
    :param results: Every outcome in the same shape as ``failures`` plus ``success``: the GE
        expectations in suite order, then the batch-level checks; used by :func:`validation_html`.
    :param rows: Number of rows validated.
    :param duration_s: Seconds spent validating (GE import and context set-up included).
    :param warnings: Things a person should look at that did not fail the batch.
    :param notes: Context, e.g. "no snapshot yet".
    :param compared_with: The snapshot the batch was compared with (validation id, rows), or None.
    :param profile: This batch's :func:`profile_frame`, to become the next snapshot if it passed
        (not part of :meth:`to_dict`; the operator stores it on its own).
    """

    success: bool
    suite: str
    failures: list[dict[str, Any]]
    statistics: dict[str, Any]
    run_id: str
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)
    rows: int = 0
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared_with: dict[str, Any] | None = None
    profile: dict[str, Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole report (without the profile)."""
        data = asdict(self)
        data.pop("profile")
        return data

    def summary(self) -> str:
        """Readable multi-line text: the verdict, one line per failure, then warnings and notes."""
        stats = self.statistics
        head = (
            f"Validation of suite {self.suite!r} "
            f"{'passed' if self.success else 'FAILED'}: "
            f"{stats.get('successful', 0)} of {stats.get('evaluated', 0)} expectations passed "
            f"on {self.rows} rows (run {self.run_id})."
        )
        lines = [head]
        # Every expectation on a missing column fails the same way: one line per column names them all.
        grouped: dict[tuple[Any, str], list[str]] = {}
        for failure in self.failures:
            grouped.setdefault((failure.get("column"), failure["message"]), []).append(failure["expectation"])
        for (column, message), expectations in grouped.items():
            where = f" on column {column!r}" if column is not None else ""
            lines.append(f"  - {', '.join(expectations)}{where}: {message}")
        lines += [f"  warning: {text}" for text in self.warnings]
        lines += [f"  note: {text}" for text in self.notes]
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise :class:`DataValidationError` (message: :meth:`summary`) unless the batch passed."""
        if not self.success:
            raise DataValidationError(self)
