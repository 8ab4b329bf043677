"""Expectation suite files (``include/expectations/<name>.json``) and the Great Expectations
runner that turns each expectation's result into the report's flat outcome."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.messages import name_list
from mlops.validation.settings import EXPECTATIONS_DIR, EXTRA_COLUMN_POLICIES
from mlops.validation.values import MAX_OFFENDING_VALUES, distinct, format_values, json_safe

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

# GE reports the first N unexpected values; ask for more than we show so that repeated values
# (duplicate keys, nulls) still leave up to MAX_OFFENDING_VALUES distinct examples.
_PARTIAL_UNEXPECTED_COUNT = 20
_SUITE_KEYS = {"name", "notes", "meta", "expectations"}
COLUMN_SET = "expect_table_columns_to_match_set"
_ROW_COUNT = "expect_table_row_count_to_be_between"
_TYPE_LIST = "expect_column_values_to_be_in_type_list"
_UNIQUE_COUNT = "expect_column_unique_value_count_to_be_between"
_POSITION = "suite_position"


class SuiteError(ValueError):
    """An expectation suite file is missing, unreadable or malformed."""


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR, *, extra_columns: str = "fail") -> dict[str, Any]:
    """Read and check ``<directory>/<name>.json``; return it with the extra-column policy applied.

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
    if "allow_extra_columns" in raw:
        raise SuiteError(
            f"{path}: allow_extra_columns moved to the pipeline config (validation.extra_columns: fail | warn)"
        )
    unknown = set(raw) - _SUITE_KEYS
    if unknown:
        raise SuiteError(f"{path}: unknown suite keys {sorted(unknown)} (allowed: {sorted(_SUITE_KEYS)})")
    if extra_columns not in EXTRA_COLUMN_POLICIES:
        raise SuiteError(f"extra_columns must be one of {', '.join(EXTRA_COLUMN_POLICIES)}, got {extra_columns!r}")

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
        if entry["type"] == COLUMN_SET:
            if "exact_match" in entry["kwargs"]:
                raise SuiteError(
                    f"{path}: set validation.extra_columns in the pipeline config, not exact_match in {COLUMN_SET}"
                )
            entry["kwargs"]["exact_match"] = extra_columns == "fail"
        expectations.append(entry)
    return {"name": raw.get("name", name), "notes": raw.get("notes"), "expectations": expectations}


def run_suite(frame: pd.DataFrame, spec: dict[str, Any], min_rows: int | None) -> list[dict[str, Any]]:
    """Run the GE suite on ``frame``; return one outcome per expectation, in suite order."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GE logs one INFO line per public API it registers on import: hundreds of lines in a task log.
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # GE reports exceptions before other results; the position in meta restores suite order.
    expectations = [
        {**entry, "meta": {**entry.get("meta", {}), _POSITION: position}}
        for position, entry in enumerate(_with_min_rows(spec["expectations"], min_rows))
    ]
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
        .add_dataframe_asset(spec["name"])
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
    return [_outcome(r, frame) for r in ordered]


def _with_min_rows(expectations: list[dict[str, Any]], min_rows: int | None) -> list[dict[str, Any]]:
    if min_rows is None:
        return expectations
    for position, entry in enumerate(expectations):
        if entry["type"] == _ROW_COUNT:
            updated = {**entry, "kwargs": {**entry["kwargs"], "min_value": int(min_rows)}}
            return [*expectations[:position], updated, *expectations[position + 1 :]]
    return [*expectations, {"type": _ROW_COUNT, "kwargs": {"min_value": int(min_rows)}}]


def _outcome(result: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """Turn one GE ``ExpectationValidationResult`` into the report's flat, JSON-safe shape."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = result.result or {}
    column = kwargs.get("column")
    outcome: dict[str, Any] = {
        "expectation": config.type,
        "column": column,
        "success": bool(result.success),
        "unexpected_count": json_safe(details.get("unexpected_count")),
        "offending_values": distinct(details.get("partial_unexpected_list") or []),
        "rule": _rule(kwargs),
        "message": "",
    }
    if "observed_value" in details:
        outcome["observed"] = json_safe(details["observed_value"])

    error = _exception_message(result.exception_info)
    if column is not None and column not in frame.columns:
        outcome["message"] = f"column {column!r} is missing from the batch"
    elif error and column is not None and _is_text(frame[column]) and "min_value" in kwargs:
        outcome["message"] = f"not evaluated: the column holds text, not numbers (see the type check of {column!r})"
    elif error:
        outcome["message"] = f"could not be evaluated: {error}"
    elif config.type == COLUMN_SET:
        mismatched = (details.get("details") or {}).get("mismatched") or {}
        missing, extra = list(mismatched.get("missing") or []), list(mismatched.get("unexpected") or [])
        outcome["offending_values"] = [*missing, *extra][:MAX_OFFENDING_VALUES]
        outcome.pop("observed", None)
        parts = [f"missing columns {name_list(missing)}"] if missing else []
        parts += [f"unexpected columns {name_list(extra)}"] if extra else []
        outcome["message"] = "; ".join(parts) or "columns match"
    elif config.type == _ROW_COUNT:
        outcome["message"] = f"row count {details.get('observed_value')} (allowed {_bounds(kwargs)})"
    elif config.type == _TYPE_LIST and not outcome["success"]:
        outcome["message"] = _type_message(frame[column], kwargs["type_list"], details.get("observed_value"), outcome)
    elif config.type == _UNIQUE_COUNT and not outcome["success"] and frame.empty:
        # An empty batch fails its row count; "constant" would only repeat that once per column.
        outcome.update(success=True, message="not evaluated: the batch has no rows (see the row count)")
    elif config.type == _UNIQUE_COUNT and not outcome["success"] and details.get("observed_value") in (0, 1):
        values = frame[column].dropna()
        if values.empty:
            outcome["message"] = "the column has no values (all null)"
        else:
            constant = json_safe(values.iloc[0])
            outcome["offending_values"] = [constant]
            outcome["message"] = (
                f"constant column: all {len(values)} values are {format_values([constant])[1:-1]}, "
                "so it carries no information (a broken extract or a defaulted field)"
            )
    elif outcome["unexpected_count"] is not None:
        count, total = outcome["unexpected_count"], details.get("element_count", 0)
        percent = details.get("unexpected_percent") or 0.0
        text = f"{count} of {total} values unexpected ({percent:.2f}%)"
        if "mostly" in kwargs:
            text += f", at most {100 * (1 - kwargs['mostly']):.2f}% allowed"
        if count:
            text += f", e.g. {format_values(outcome['offending_values'])}"
        outcome["message"] = text + (f" ({outcome['rule']})" if outcome["rule"] else "")
    elif "observed_value" in details:
        rule = f" ({outcome['rule']})" if outcome["rule"] else ""
        outcome["message"] = f"observed {details['observed_value']!r}{rule}"
    else:
        outcome["message"] = "passed" if outcome["success"] else "failed"
    return outcome


def _is_text(series: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)


def _type_message(series: pd.Series, allowed: Sequence[str], observed: Any, outcome: dict[str, Any]) -> str:
    """Name the column's type and, for a numeric column read as text, the values that are not numbers."""
    import pandas as pd

    text = f"the column's type is {observed!r}, allowed types: {', '.join(allowed)}"
    if not any(t.lower().startswith(("int", "float", "uint")) for t in allowed) or not _is_text(series):
        return text
    present = series.dropna()
    parsed = pd.to_numeric(present, errors="coerce")
    bad = present[parsed.isna()]
    if bad.empty:
        return text + "; every value looks numeric, so the column was written as text"
    outcome["offending_values"] = distinct(bad.tolist())
    outcome["unexpected_count"] = len(bad)
    return f"{text}; {len(bad)} of {len(series)} values are not numbers, e.g. {format_values(outcome['offending_values'])}"


def _rule(kwargs: dict[str, Any]) -> str:
    """What an expectation allows, in a few words (empty when its name says it all)."""
    if "value_set" in kwargs:
        return f"allowed: {format_values(kwargs['value_set'], limit=8)}"
    if "min_value" in kwargs or "max_value" in kwargs:
        return f"allowed range {_bounds(kwargs)}"
    if "regex" in kwargs:
        return f"pattern {kwargs['regex']!r}"
    if "type_list" in kwargs:
        return f"allowed types: {', '.join(kwargs['type_list'])}"
    if "column_set" in kwargs:
        return f"{len(kwargs['column_set'])} columns{'' if kwargs.get('exact_match', True) else ' or more'}"
    return ""


def _bounds(kwargs: dict[str, Any]) -> str:
    """``[min, max]`` as the suite wrote them (GE turns 20 into 20.0)."""

    def show(value: Any, default: str) -> str:
        if value is None:
            return default
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    return f"[{show(kwargs.get('min_value'), '-inf')}, {show(kwargs.get('max_value'), 'inf')}]"


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

