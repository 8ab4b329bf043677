"""Data validation with Great Expectations 1.x core, and a strict reader for landed CSV files.

A suite is a JSON file ``include/expectations/<name>.json``::

    {
      "name": "churn",
      "notes": "why the bounds are what they are",
      "allow_extra_columns": false,
      "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["State", "..."]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Phone"}},
        ...
      ]
    }

``expectations`` is a plain GE 1.x expectation list (``type`` + ``kwargs``, optional ``notes`` and
``meta``). The suite-level settings are applied before GE sees the list: ``allow_extra_columns``
sets ``exact_match`` on ``expect_table_columns_to_match_set``, and the ``min_rows`` argument of
:func:`validate_frame` (the pipeline config's ``validation.min_rows``) overrides the lower bound of
``expect_table_row_count_to_be_between``.

Validation does the same work on both backends, so there is no port: operators call
:func:`validate_frame`, quarantine the batch when the report fails, attach :func:`validation_html`
to the run's report and fail with :meth:`ValidationReport.summary`.

Operators import this module and DAG files import operators, so nothing heavy is imported at
module level: great_expectations (several seconds) and pandas are imported inside the functions.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.settings import INCLUDE_DIR

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Mapping, Sequence

    import pandas as pd

EXPECTATIONS_DIR = INCLUDE_DIR / "expectations"
MAX_OFFENDING_VALUES = 5
# GE reports the first N unexpected values; ask for more than we show so that repeated values
# (duplicate keys, nulls) still leave up to MAX_OFFENDING_VALUES distinct examples.
_PARTIAL_UNEXPECTED_COUNT = 20
_SUITE_KEYS = {"name", "notes", "meta", "allow_extra_columns", "expectations"}
_COLUMN_SET = "expect_table_columns_to_match_set"
_ROW_COUNT = "expect_table_row_count_to_be_between"
_POSITION = "suite_position"


class SuiteError(ValueError):
    """An expectation suite file is missing, unreadable or malformed."""


class DataValidationError(ValueError):
    """A batch failed its expectation suite; the message is the report's summary."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class ValidationReport:
    """The outcome of validating one batch against one suite.

    :param success: True when every expectation passed.
    :param suite: Name of the suite.
    :param failures: One dict per failed expectation: ``expectation``, ``column`` (None for table
        expectations), ``unexpected_count``, ``offending_values`` (up to five distinct examples),
        ``rule`` (what the expectation allows), ``message`` (one readable sentence) and, where GE
        reports one, ``observed``.
    :param statistics: ``evaluated``, ``successful``, ``unsuccessful`` expectation counts and
        ``success_percent``.
    :param run_id: The caller's run id (e.g. the Airflow run id), or a generated one.
    :param results: Every expectation's outcome, in suite order, in the same shape as
        ``failures`` plus ``success``; used by :func:`validation_html`.
    :param rows: Number of rows validated.
    :param duration_s: Seconds spent validating (GE import and context set-up included).
    """

    success: bool
    suite: str
    failures: list[dict[str, Any]]
    statistics: dict[str, Any]
    run_id: str
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)
    rows: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole report."""
        return asdict(self)

    def summary(self) -> str:
        """Readable multi-line text: the verdict, then one line per failed expectation."""
        stats = self.statistics
        head = (
            f"Validation of suite {self.suite!r} "
            f"{'passed' if self.success else 'FAILED'}: "
            f"{stats.get('successful', 0)} of {stats.get('evaluated', 0)} expectations passed "
            f"on {self.rows} rows (run {self.run_id})."
        )
        lines = [head]
        for failure in self.failures:
            where = f" on column {failure['column']!r}" if failure.get("column") is not None else ""
            lines.append(f"  - {failure['expectation']}{where}: {failure['message']}")
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise :class:`DataValidationError` (message: :meth:`summary`) unless the batch passed."""
        if not self.success:
            raise DataValidationError(self)


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR) -> dict[str, Any]:
    """Read and check ``<directory>/<name>.json``; return it with the suite settings applied.

    The returned dict has ``name``, ``notes`` and ``expectations`` (GE 1.x dicts, ready for
    ``ExpectationSuite``). Errors name the file and the bad entry.
    """
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in Path(directory).glob("*.json"))) or "none"
        raise SuiteError(f"no expectation suite {name!r}: expected {path} (available: {available})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SuiteError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise SuiteError(f"{path}: top level must be an object with an 'expectations' list")
    unknown = set(raw) - _SUITE_KEYS
    if unknown:
        raise SuiteError(f"{path}: unknown suite keys {sorted(unknown)} (allowed: {sorted(_SUITE_KEYS)})")
    allow_extra = raw.get("allow_extra_columns", False)
    if not isinstance(allow_extra, bool):
        raise SuiteError(f"{path}: allow_extra_columns must be true or false")

    expectations = []
    for position, entry in enumerate(raw["expectations"]):
        if (
            not isinstance(entry, dict)
            or not str(entry.get("type", "")).startswith("expect_")
            or not isinstance(entry.get("kwargs"), dict)
        ):
            raise SuiteError(
                f"{path}: expectation #{position} must be "
                '{"type": "expect_...", "kwargs": {...}}, got ' + json.dumps(entry)[:200]
            )
        entry = {**entry, "kwargs": dict(entry["kwargs"])}
        if entry["type"] == _COLUMN_SET:
            if "exact_match" in entry["kwargs"]:
                raise SuiteError(
                    f"{path}: set allow_extra_columns at suite level, not exact_match in {_COLUMN_SET}"
                )
            entry["kwargs"]["exact_match"] = not allow_extra
        expectations.append(entry)
    return {"name": raw.get("name", name), "notes": raw.get("notes"), "expectations": expectations}


def suite_columns(name: str, directory: Path = EXPECTATIONS_DIR) -> list[str]:
    """The column set a suite expects (from its ``expect_table_columns_to_match_set``)."""
    for entry in load_suite(name, directory)["expectations"]:
        if entry["type"] == _COLUMN_SET:
            return list(entry["kwargs"]["column_set"])
    raise SuiteError(f"suite {name!r} has no {_COLUMN_SET} expectation")


def validate_frame(
    frame: pd.DataFrame,
    suite_name: str,
    min_rows: int | None = None,
    *,
    run_id: str | None = None,
    directory: Path = EXPECTATIONS_DIR,
) -> ValidationReport:
    """Validate a DataFrame against a suite with Great Expectations 1.x.

    :param frame: The batch, as loaded (no coercion happens here: types are checked as they are).
    :param suite_name: Suite file stem in ``directory`` (``churn``, ``retail``).
    :param min_rows: Overrides the suite's minimum row count (the pipeline's ``min_rows``).
    :param run_id: Recorded in the report (pass the Airflow run id); generated when absent.
    :param directory: Where the suite files live.
    :return: A :class:`ValidationReport`; call :meth:`~ValidationReport.raise_for_failures` to
        turn a failed batch into an exception.
    """
    import time

    started = time.perf_counter()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    spec = load_suite(suite_name, directory)
    # GE reports exceptions before other results; the position in meta restores suite order.
    expectations = [
        {**entry, "meta": {**entry.get("meta", {}), _POSITION: position}}
        for position, entry in enumerate(_with_min_rows(spec["expectations"], min_rows))
    ]
    run_id = run_id or uuid.uuid4().hex

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        ),
    )
    batch = (
        context.data_sources.add_pandas("frames")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("whole_frame")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    # Batch.validate is GE's lightest path: a ValidationDefinition would also store the suite and
    # serialise the result into the context's stores, which an ephemeral context throws away.
    result = batch.validate(
        gx.ExpectationSuite(name=spec["name"], expectations=expectations, notes=spec["notes"]),
        result_format={
            "result_format": "BASIC",
            "partial_unexpected_count": _PARTIAL_UNEXPECTED_COUNT,
        },
    )

    ordered = sorted(result.results, key=lambda r: r.expectation_config.meta.get(_POSITION, 0))
    outcomes = [_outcome(r, set(frame.columns)) for r in ordered]
    stats = result.statistics
    return ValidationReport(
        success=bool(result.success),
        suite=suite_name,
        failures=[{k: v for k, v in o.items() if k != "success"} for o in outcomes if not o["success"]],
        statistics={
            "evaluated": int(stats["evaluated_expectations"]),
            "successful": int(stats["successful_expectations"]),
            "unsuccessful": int(stats["unsuccessful_expectations"]),
            "success_percent": float(stats["success_percent"] or 0.0),
        },
        run_id=run_id,
        results=outcomes,
        rows=len(frame),
        duration_s=round(time.perf_counter() - started, 3),
    )


def _with_min_rows(expectations: list[dict[str, Any]], min_rows: int | None) -> list[dict[str, Any]]:
    if min_rows is None:
        return expectations
    for position, entry in enumerate(expectations):
        if entry["type"] == _ROW_COUNT:
            updated = {**entry, "kwargs": {**entry["kwargs"], "min_value": int(min_rows)}}
            return [*expectations[:position], updated, *expectations[position + 1 :]]
    return [*expectations, {"type": _ROW_COUNT, "kwargs": {"min_value": int(min_rows)}}]


def _outcome(result: Any, columns: set[str]) -> dict[str, Any]:
    """Turn one GE ``ExpectationValidationResult`` into the report's flat, JSON-safe shape."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = result.result or {}
    column = kwargs.get("column")
    outcome: dict[str, Any] = {
        "expectation": config.type,
        "column": column,
        "success": bool(result.success),
        "unexpected_count": _json_safe(details.get("unexpected_count")),
        "offending_values": _distinct(details.get("partial_unexpected_list") or []),
        "rule": _rule(kwargs),
        "message": "",
    }
    if "observed_value" in details:
        outcome["observed"] = _json_safe(details["observed_value"])

    error = _exception_message(result.exception_info)
    if column is not None and column not in columns:
        outcome["message"] = f"column {column!r} is missing from the batch"
    elif error:
        outcome["message"] = f"could not be evaluated: {error}"
    elif config.type == _COLUMN_SET:
        mismatched = (details.get("details") or {}).get("mismatched") or {}
        missing, extra = list(mismatched.get("missing") or []), list(mismatched.get("unexpected") or [])
        outcome["offending_values"] = [*missing, *extra][:MAX_OFFENDING_VALUES]
        outcome.pop("observed", None)
        parts = [f"missing columns {missing}"] if missing else []
        parts += [f"unexpected columns {extra}"] if extra else []
        outcome["message"] = "; ".join(parts) or "columns match"
    elif config.type == _ROW_COUNT:
        bounds = f"[{kwargs.get('min_value', '-inf')}, {kwargs.get('max_value', 'inf')}]"
        outcome["message"] = f"row count {details.get('observed_value')} (allowed {bounds})"
    elif outcome["unexpected_count"] is not None:
        count, total = outcome["unexpected_count"], details.get("element_count", 0)
        percent = details.get("unexpected_percent") or 0.0
        text = f"{count} of {total} values unexpected ({percent:.2f}%)"
        if "mostly" in kwargs:
            text += f", at most {100 * (1 - kwargs['mostly']):.2f}% allowed"
        if count:
            text += f", e.g. {_format_values(outcome['offending_values'])}"
        outcome["message"] = text + (f" ({outcome['rule']})" if outcome["rule"] else "")
    elif "observed_value" in details:
        rule = f" ({outcome['rule']})" if outcome["rule"] else ""
        outcome["message"] = f"observed {details['observed_value']!r}{rule}"
    else:
        outcome["message"] = "passed" if outcome["success"] else "failed"
    return outcome


def _rule(kwargs: dict[str, Any]) -> str:
    """What an expectation allows, in a few words (empty when its name says it all)."""
    if "value_set" in kwargs:
        return f"allowed: {_format_values(kwargs['value_set'], limit=8)}"
    if "min_value" in kwargs or "max_value" in kwargs:
        return f"allowed range [{kwargs.get('min_value', '-inf')}, {kwargs.get('max_value', 'inf')}]"
    if "regex" in kwargs:
        return f"pattern {kwargs['regex']!r}"
    if "type_list" in kwargs:
        return f"allowed types: {', '.join(kwargs['type_list'])}"
    if "column_set" in kwargs:
        return f"{len(kwargs['column_set'])} columns{'' if kwargs.get('exact_match', True) else ' or more'}"
    return ""


def _exception_message(info: Any) -> str | None:
    """GE puts either one flat dict or a dict of per-metric ``ExceptionInfo`` in ``exception_info``."""
    if not isinstance(info, dict):
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        raised = entry.get("raised_exception") if isinstance(entry, dict) else entry.raised_exception
        message = entry.get("exception_message") if isinstance(entry, dict) else entry.exception_message
        if raised and message:
            return str(message).removeprefix("Error: ").strip()
    return None


def _json_safe(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        try:  # numpy and pandas scalars
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def _distinct(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in map(_json_safe, values):
        if value not in seen:
            seen.append(value)
        if len(seen) == MAX_OFFENDING_VALUES:
            break
    return seen


def _format_values(values: Sequence[Any], limit: int = MAX_OFFENDING_VALUES) -> str:
    shown = ", ".join("null" if v is None else repr(v) for v in list(values)[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def validation_html(report: ValidationReport) -> str:
    """A small self-contained HTML page of a report: verdict, counts, one table row per expectation."""
    from html import escape

    verdict = "passed" if report.success else "FAILED"
    stats = report.statistics
    rows = []
    for number, outcome in enumerate(report.results or report.failures, start=1):
        passed = outcome.get("success", False)
        values = outcome.get("offending_values") or []
        rows.append(
            f'<tr class="{"pass" if passed else "fail"}"><td>{number}</td>'
            f"<td><code>{escape(outcome['expectation'])}</code></td>"
            f"<td>{escape(str(outcome['column'])) if outcome.get('column') is not None else '&mdash;'}</td>"
            f"<td>{escape(outcome.get('rule', ''))}</td>"
            f"<td>{'pass' if passed else 'FAIL'}</td>"
            f"<td>{'' if outcome.get('unexpected_count') is None else outcome['unexpected_count']}</td>"
            f"<td>{escape(_format_values(values)) if values else ''}</td>"
            f"<td>{'' if passed else escape(outcome.get('message', ''))}</td></tr>"
        )
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
</style></head><body>
<h1>Data validation: suite <code>{escape(report.suite)}</code></h1>
<p>Result: <span class="verdict">{verdict}</span> &middot;
{stats.get("successful", 0)} of {stats.get("evaluated", 0)} expectations passed &middot;
{report.rows} rows &middot; run <code>{escape(report.run_id)}</code></p>
<table>
<thead><tr><th>#</th><th>expectation</th><th>column</th><th>rule</th><th>result</th><th>unexpected</th>
<th>offending values</th><th>details</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""


def load_csv_strict(
    path_or_buffer: Any,
    expected_columns: Sequence[str] | None,
    *,
    dtype: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Read a landed CSV file, refusing anything that is not a clean comma-separated UTF-8 table.

    :param path_or_buffer: A path (``str``, ``Path``, ``ObjectStoragePath``), bytes, or a binary or
        text file object.
    :param expected_columns: The header's column set (order free); ``None`` skips the check.
    :param dtype: Passed to ``pandas.read_csv``, e.g. ``{"Invoice": "str", "StockCode": "str"}``
        for retail so that invoice numbers keep their ``C`` prefix semantics in every file.
    :raises ValueError: naming the file and the problem: empty file, header only, wrong
        delimiter, ragged rows, bytes that are not UTF-8, duplicate or mismatched columns.
        A UTF-8 byte order mark is accepted.
    """
    import codecs
    import csv
    import io
    from collections import Counter

    import pandas as pd

    data, name = _read_bytes(path_or_buffer)
    if not data.strip():
        raise ValueError(f"{name}: the file is empty ({len(data)} bytes)")
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{name}: not UTF-8: byte 0x{data[err.start]:02x} at line {line} (offset {err.start}); "
            "re-export the file as UTF-8"
        ) from None

    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((row for row in reader if row), None)
    if header is None:
        raise ValueError(f"{name}: the file is empty (only blank lines)")
    if len(header) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab")):
            if delimiter in header[0]:
                raise ValueError(
                    f"{name}: wrong delimiter: the header is one column {header[0][:80]!r} that contains "
                    f"{label}s; expected a comma-separated file"
                )
    duplicates = sorted(c for c, n in Counter(header).items() if n > 1)
    if duplicates:
        raise ValueError(f"{name}: duplicate column names in the header: {duplicates}")
    widths = Counter(map(len, reader))
    widths.pop(0, None)  # blank lines, skipped by pandas too
    if not widths:
        raise ValueError(f"{name}: header only, no data rows (columns: {header})")
    if set(widths) != {len(header)}:
        raise ValueError(_ragged_message(name, text, len(header), widths))
    if expected_columns is not None:
        missing = [c for c in expected_columns if c not in header]
        extra = [c for c in header if c not in set(expected_columns)]
        if missing or extra:
            raise ValueError(
                f"{name}: columns do not match: missing {missing}, unexpected {extra} (header: {header})"
            )
    return pd.read_csv(io.StringIO(text), dtype=dtype)


def _read_bytes(source: Any) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "<bytes>"
    if isinstance(source, str):
        source = Path(source)
    if hasattr(source, "read_bytes"):  # pathlib.Path, ObjectStoragePath
        return source.read_bytes(), str(source)
    if hasattr(source, "read"):
        content = source.read()
        name = str(getattr(source, "name", "<buffer>"))
        return (content.encode("utf-8") if isinstance(content, str) else bytes(content)), name
    raise TypeError(f"cannot read a CSV from {type(source).__name__}: pass a path, bytes or a file object")


def _ragged_message(name: str, text: str, width: int, widths: Counter[int]) -> str:
    """Find the first ragged row (error path only, so a Python loop is fine)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""))
    next(row for row in reader if row)  # the header
    bad_rows = sum(n for w, n in widths.items() if w != width)
    for row in reader:
        if row and len(row) != width:
            return (
                f"{name}: ragged rows: line {reader.line_num} has {len(row)} fields where the header "
                f"has {width} ({bad_rows} such rows)"
            )
    return f"{name}: ragged rows ({bad_rows} rows do not have {width} fields)"
