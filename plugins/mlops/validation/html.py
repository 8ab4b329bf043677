"""The readable report: a self-contained HTML page of a :class:`ValidationReport`, rendered from
``templates/report.html.j2`` with autoescaping (values from the data are never markup)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.validation.values import format_values

if TYPE_CHECKING:
    import jinja2

    from mlops.validation.report import ValidationReport

TEMPLATES_DIR = Path(__file__).parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def validation_html(report: ValidationReport) -> str:
    """A self-contained HTML page of a report: verdict, warnings and notes, one row per expectation."""
    rows = [_row(outcome) for outcome in report.results or report.failures]
    verdict = "passed" if report.success else "FAILED"
    return _environment().get_template("report.html.j2").render(report=report, verdict=verdict, rows=rows)


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
