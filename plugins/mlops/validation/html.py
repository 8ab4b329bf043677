"""The readable report: a self-contained HTML page of a :class:`ValidationReport`, rendered from
``templates/report.html.j2`` with autoescaping (values from the data are never markup)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.templates import render
from mlops.validation.values import format_values

if TYPE_CHECKING:
    from mlops.validation.report import ValidationReport

TEMPLATES_DIR = Path(__file__).parent / "templates"


def validation_html(report: ValidationReport) -> str:
    """A self-contained HTML page of a report: verdict, warnings and notes, one row per expectation."""
    rows = [_row(outcome) for outcome in report.results or report.failures]
    verdict = "passed" if report.success else "FAILED"
    return render(TEMPLATES_DIR, "report.html.j2", report=report, verdict=verdict, rows=rows)


def _row(outcome: dict[str, Any]) -> dict[str, Any]:
    """One table row; the message only where it says something (failures and batch-level checks)."""
    passed = bool(outcome.get("success", False))
    values = outcome.get("offending_values") or []
    informative = not passed or outcome["expectation"].startswith("check_")
    return {
        "passed": passed,
        "expectation": outcome["expectation"],
        "column": outcome.get("column"),
        "rule": outcome.get("rule", ""),
        "unexpected": "" if outcome.get("unexpected_count") is None else outcome["unexpected_count"],
        "offending": format_values(values) if values else "",
        "details": outcome.get("message", "") if informative else "",
    }
