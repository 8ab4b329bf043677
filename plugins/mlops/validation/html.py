"""The readable report: a self-contained HTML page of a :class:`ValidationReport`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.validation.values import format_values

if TYPE_CHECKING:
    from mlops.validation.report import ValidationReport


def validation_html(report: ValidationReport) -> str:
    """A self-contained HTML page of a report: verdict, warnings and notes, one row per expectation."""
    from html import escape

    verdict = "passed" if report.success else "FAILED"
    stats = report.statistics
    rows = []
    for number, outcome in enumerate(report.results or report.failures, start=1):
        passed = outcome.get("success", False)
        values = outcome.get("offending_values") or []
        informative = not passed or outcome["expectation"].startswith("check_")
        rows.append(
            f'<tr class="{"pass" if passed else "fail"}"><td>{number}</td>'
            f"<td><code>{escape(outcome['expectation'])}</code></td>"
            f"<td>{escape(str(outcome['column'])) if outcome.get('column') is not None else '&mdash;'}</td>"
            f"<td>{escape(outcome.get('rule', ''))}</td>"
            f"<td>{'pass' if passed else 'FAIL'}</td>"
            f"<td>{'' if outcome.get('unexpected_count') is None else outcome['unexpected_count']}</td>"
            f"<td>{escape(format_values(values)) if values else ''}</td>"
            f"<td>{escape(outcome.get('message', '')) if informative else ''}</td></tr>"
        )
    extra = "".join(f'<p class="warning">Warning: {escape(w)}</p>\n' for w in report.warnings)
    extra += "".join(f'<p class="note">Note: {escape(n)}</p>\n' for n in report.notes)
    if report.compared_with:
        extra += (f"<p>Compared with the last accepted snapshot <code>"
                  f"{escape(str(report.compared_with.get('validation_id')))}</code> "
                  f"({report.compared_with.get('rows')} rows).</p>\n")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation {escape(report.suite)}: {verdict}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
tr.pass td:nth-child(5) {{ color: #1a7f37; }}
tr.fail {{ background: #fff0f0; }} tr.fail td:nth-child(5) {{ color: #b00020; font-weight: bold; }}
.verdict {{ font-weight: bold; color: {"#1a7f37" if report.success else "#b00020"}; }}
.warning {{ color: #8a5a00; }} .note {{ color: #555; }}
</style></head><body>
<h1>Data validation: suite <code>{escape(report.suite)}</code></h1>
<p>Result: <span class="verdict">{verdict}</span> &middot;
{stats.get("successful", 0)} of {stats.get("evaluated", 0)} expectations passed &middot;
{report.rows} rows &middot; run <code>{escape(report.run_id)}</code></p>
{extra}<table>
<thead><tr><th>#</th><th>expectation</th><th>column</th><th>rule</th><th>result</th><th>unexpected</th>
<th>offending values</th><th>details</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
