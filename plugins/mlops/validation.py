"""Data validation with Great Expectations 1.x core, batch-level checks against the last accepted
snapshot, and a strict reader for landed CSV files.

A suite is a JSON file ``include/expectations/<name>.json``::

    {
      "name": "churn",
      "notes": "why the bounds are what they are",
      "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["State", "..."]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Phone"}},
        ...
      ]
    }

``expectations`` is a plain GE 1.x expectation list (``type`` + ``kwargs``, optional ``notes`` and
``meta``): column set, types, required columns, ranges, value sets, key uniqueness, row-count
bounds and constant-column guards. What depends on the pipeline rather than on the data's shape
comes from the pipeline config's ``validation`` section (:class:`ValidationSettings`):

* ``extra_columns`` (``fail`` | ``warn``) sets ``exact_match`` of ``expect_table_columns_to_match_set``;
* ``min_rows`` overrides the lower bound of ``expect_table_row_count_to_be_between``;
* ``drift``, ``row_count`` and ``leakage`` configure batch-level checks computed here in pandas.
  GE core's nearest expectations do not fit: ``expect_column_kl_divergence_to_be_less_than``
  needs a hand-built partition object and has no allowance for sample size (a 100-row batch of
  an unchanged source would fail), and a row-count bound relative to the previous batch or a
  feature-vs-label leakage test has no GE core expectation. Their outcomes share the report's
  shape, so the summary, quarantine and HTML report treat them like expectations:

  * ``check_label_column_present``: the label (``schema.target``) must be in the batch;
  * ``check_no_label_leakage``: no feature may map one-to-one onto the label, nor a numeric one
    correlate with it beyond ``leakage.max_abs_correlation``;
  * ``check_row_count_against_snapshot``: at most ``row_count.max_drop`` fewer rows than the
    last accepted snapshot;
  * ``check_feature_drift_against_snapshot``: each column's population stability index (PSI)
    against the snapshot stays within ``drift.psi_max`` plus the PSI that sampling noise alone
    gives for the two sample sizes.

The snapshot is the :func:`profile_frame` of the last batch that passed (quantile bins for
numeric columns, frequencies for categorical ones, the row count). The operator stores it; this
module only computes and compares, so the same code runs on ``file://`` and ``s3://``.
Without a snapshot (the first run) the snapshot checks pass with a note.

Operators import this module and DAG files import operators, so nothing heavy is imported at
module level: great_expectations (several seconds), numpy and pandas are imported inside the
functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.settings import INCLUDE_DIR

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = INCLUDE_DIR / "expectations"
MAX_OFFENDING_VALUES = 5
# GE reports the first N unexpected values; ask for more than we show so that repeated values
# (duplicate keys, nulls) still leave up to MAX_OFFENDING_VALUES distinct examples.
_PARTIAL_UNEXPECTED_COUNT = 20
_SUITE_KEYS = {"name", "notes", "meta", "expectations"}
_COLUMN_SET = "expect_table_columns_to_match_set"
_ROW_COUNT = "expect_table_row_count_to_be_between"
_TYPE_LIST = "expect_column_values_to_be_in_type_list"
_UNIQUE_COUNT = "expect_column_unique_value_count_to_be_between"
_POSITION = "suite_position"

CHECK_LABEL = "check_label_column_present"
CHECK_LEAKAGE = "check_no_label_leakage"
CHECK_ROW_COUNT = "check_row_count_against_snapshot"
CHECK_DRIFT = "check_feature_drift_against_snapshot"
EXTRA_COLUMN_POLICIES = ("fail", "warn")
# PSI floor for an empty bin: keeps the logarithm finite; one bin going from 0 to 1% adds ~0.05.
_PSI_EPSILON = 1e-4
_TOP_CATEGORIES = 50


class SuiteError(ValueError):
    """An expectation suite file is missing, unreadable or malformed."""


class DataValidationError(ValueError):
    """A batch failed its expectation suite; the message is the report's summary."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class ValidationSettings:
    """Everything validation needs to know about a pipeline; build it with :meth:`from_pipeline`.

    :param suite: Suite file stem in ``include/expectations/``.
    :param min_rows: Overrides the suite's minimum row count.
    :param extra_columns: ``fail``: a column the suite does not name fails the batch; ``warn``:
        it is accepted with a warning (training only reads the configured features).
    :param target: The label column (``schema.target``); None for unsupervised pipelines.
    :param id_column: The row key (``schema.id_column``); never a feature.
    :param positive_label: The positive class of a binary label, used to encode it for correlation.
    :param problem_type: ``binary``, ``multiclass``, ``regression`` or ``clustering``.
    :param categorical: Columns profiled as categories even when their dtype is numeric.
    :param numeric: Numeric feature columns.
    :param drift_columns: Columns compared with the snapshot; None: features and the label.
    :param psi_max: Population stability index a column may reach, on top of sampling noise.
    :param psi_max_per_column: Per-column overrides of ``psi_max``.
    :param bins: Quantile bins of a numeric column's profile.
    :param max_row_count_drop: Fraction of the snapshot's rows a batch may lose (None: no check).
    :param leakage_max_abs_correlation: Largest ``|Pearson r|`` between a numeric feature and the
        encoded label (None: only the one-to-one check runs).
    """

    suite: str
    min_rows: int | None = None
    extra_columns: str = "fail"
    target: str | None = None
    id_column: str | None = None
    positive_label: Any = None
    problem_type: str | None = None
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    drift_columns: tuple[str, ...] | None = None
    psi_max: float = 0.25
    psi_max_per_column: Mapping[str, float] = field(default_factory=dict)
    bins: int = 10
    max_row_count_drop: float | None = 0.5
    leakage_max_abs_correlation: float | None = 0.95

    def __post_init__(self) -> None:
        if self.extra_columns not in EXTRA_COLUMN_POLICIES:
            raise ValueError(
                f"extra_columns must be one of {', '.join(EXTRA_COLUMN_POLICIES)}, got {self.extra_columns!r}"
            )

    @property
    def features(self) -> list[str]:
        return [c for c in (*self.categorical, *self.numeric) if c not in (self.target, self.id_column)]

    @classmethod
    def from_pipeline(cls, config: PipelineConfig) -> ValidationSettings:
        """Read ``validation:`` (and the column roles of ``schema:``) of a pipeline config.

        Errors are :class:`mlops.core.config.ConfigError` naming the file and the bad key.
        """
        from mlops.core.config import ConfigError

        where = f"{config.path}: validation"
        section = config.validation
        if not isinstance(section, dict):
            raise ConfigError(f"{where} must be a mapping")
        _check_keys(section, {"suite", "min_rows", "extra_columns", "drift", "row_count", "leakage"}, where)
        if not isinstance(section.get("suite"), str):
            raise ConfigError(f"{where}.suite must name a file in include/expectations/")
        drift = _subsection(section, "drift", {"psi_max", "psi_max_per_column", "bins", "columns"}, where)
        rows = _subsection(section, "row_count", {"max_drop"}, where)
        leakage = _subsection(section, "leakage", {"max_abs_correlation"}, where)
        schema = config.schema or {}
        per_column = drift.get("psi_max_per_column") or {}
        if not isinstance(per_column, dict):
            raise ConfigError(f"{where}.drift.psi_max_per_column must map column names to numbers")
        columns = drift.get("columns")
        if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
            raise ConfigError(f"{where}.drift.columns must be a list of column names")
        try:
            return cls(
                suite=section["suite"],
                min_rows=_number(section.get("min_rows"), f"{where}.min_rows", int, low=0),
                extra_columns=section.get("extra_columns", "fail"),
                target=schema.get("target"),
                id_column=schema.get("id_column"),
                positive_label=schema.get("positive_label"),
                problem_type=config.problem_type,
                categorical=tuple(schema.get("categorical") or ()),
                numeric=tuple(schema.get("numeric") or ()),
                drift_columns=tuple(columns) if columns is not None else None,
                psi_max=_number(drift.get("psi_max", 0.25), f"{where}.drift.psi_max", float, low=0),
                psi_max_per_column={
                    str(k): _number(v, f"{where}.drift.psi_max_per_column.{k}", float, low=0)
                    for k, v in per_column.items()
                },
                bins=_number(drift.get("bins", 10), f"{where}.drift.bins", int, low=2),
                max_row_count_drop=_number(rows.get("max_drop", 0.5), f"{where}.row_count.max_drop", float,
                                           low=0, high=1),
                leakage_max_abs_correlation=_number(leakage.get("max_abs_correlation", 0.95),
                                                    f"{where}.leakage.max_abs_correlation", float, low=0, high=1),
            )
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{where}: {err}") from None


def _check_keys(section: Mapping[str, Any], allowed: set[str], where: str) -> None:
    from mlops.core.config import ConfigError

    unknown = set(section) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")


def _subsection(section: Mapping[str, Any], key: str, allowed: set[str], where: str) -> dict[str, Any]:
    from mlops.core.config import ConfigError

    value = section.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key} must be a mapping")
    _check_keys(value, allowed, f"{where}.{key}")
    return value


def _number(value: Any, name: str, kind: type, low: float | None = None, high: float | None = None) -> Any:
    from mlops.core.config import ConfigError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be in [{low}, {high if high is not None else 'inf'}], got {value!r}")
    return kind(value)


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
        if entry["type"] == _COLUMN_SET:
            if "exact_match" in entry["kwargs"]:
                raise SuiteError(
                    f"{path}: set validation.extra_columns in the pipeline config, not exact_match in {_COLUMN_SET}"
                )
            entry["kwargs"]["exact_match"] = extra_columns == "fail"
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
    checks = _batch_checks(frame, settings, snapshot, notes)
    # The label's absence says more than the column set does, so it comes first.
    outcomes = [c for c in checks if c["expectation"] == CHECK_LABEL]
    outcomes += _run_suite(frame, spec, settings.min_rows)
    outcomes += [c for c in checks if c["expectation"] != CHECK_LABEL]
    if settings.extra_columns == "warn":
        expected = next((set(e["kwargs"]["column_set"]) for e in spec["expectations"] if e["type"] == _COLUMN_SET),
                        None)
        extra = [c for c in frame.columns if expected is not None and c not in expected]
        if extra:
            warnings.append(
                f"unexpected columns {extra} accepted (validation.extra_columns: warn); "
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


def _run_suite(frame: pd.DataFrame, spec: dict[str, Any], min_rows: int | None) -> list[dict[str, Any]]:
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
        "unexpected_count": _json_safe(details.get("unexpected_count")),
        "offending_values": _distinct(details.get("partial_unexpected_list") or []),
        "rule": _rule(kwargs),
        "message": "",
    }
    if "observed_value" in details:
        outcome["observed"] = _json_safe(details["observed_value"])

    error = _exception_message(result.exception_info)
    if column is not None and column not in frame.columns:
        outcome["message"] = f"column {column!r} is missing from the batch"
    elif error and column is not None and _is_text(frame[column]) and "min_value" in kwargs:
        outcome["message"] = f"not evaluated: the column holds text, not numbers (see the type check of {column!r})"
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
            constant = _json_safe(values.iloc[0])
            outcome["offending_values"] = [constant]
            outcome["message"] = (
                f"constant column: all {len(values)} values are {_format_values([constant])[1:-1]}, "
                "so it carries no information (a broken extract or a defaulted field)"
            )
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
    outcome["offending_values"] = _distinct(bad.tolist())
    outcome["unexpected_count"] = len(bad)
    return f"{text}; {len(bad)} of {len(series)} values are not numbers, e.g. {_format_values(outcome['offending_values'])}"


def _rule(kwargs: dict[str, Any]) -> str:
    """What an expectation allows, in a few words (empty when its name says it all)."""
    if "value_set" in kwargs:
        return f"allowed: {_format_values(kwargs['value_set'], limit=8)}"
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
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
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


# -- batch-level checks: label, leakage, snapshot row count and drift ---------------------------


def _check(name: str, column: str | None, success: bool, message: str, rule: str, *,
           offending: Sequence[Any] = (), observed: Any = None, count: int | None = None) -> dict[str, Any]:
    outcome = {
        "expectation": name,
        "column": column,
        "success": bool(success),
        "unexpected_count": count,
        "offending_values": _distinct(list(offending)),
        "rule": rule,
        "message": message,
    }
    if observed is not None:
        outcome["observed"] = _json_safe(observed)
    return outcome


def _batch_checks(frame: pd.DataFrame, settings: ValidationSettings, snapshot: Mapping[str, Any] | None,
                  notes: list[str]) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    if settings.target is not None:
        present = settings.target in frame.columns
        outcomes.append(_check(
            CHECK_LABEL, settings.target, present,
            "present" if present else
            f"the label column {settings.target!r} (schema.target) is missing: the batch cannot be trained on",
            "the label column is in the batch",
        ))
        if present and len(frame):
            outcomes += _leakage(frame, settings)
    if snapshot is None:
        notes.append(
            "no accepted snapshot yet (first run): the row-count and drift checks passed without a "
            "comparison; if this batch passes it becomes the snapshot"
        )
        outcomes.append(_check(CHECK_DRIFT, None, True, "skipped: no accepted snapshot yet (first run)",
                               "PSI per column within tolerance"))
        return outcomes
    reference = f"the last accepted snapshot ({snapshot.get('validation_id') or 'unnamed'}, {snapshot['rows']} rows)"
    if settings.max_row_count_drop is not None:
        outcomes.append(_row_count(len(frame), int(snapshot["rows"]), settings.max_row_count_drop, reference))
    if len(frame):
        outcomes += _drift(frame, settings, snapshot, reference)
    return outcomes


def _leakage(frame: pd.DataFrame, settings: ValidationSettings) -> list[dict[str, Any]]:
    """A feature that maps one-to-one onto the label, or correlates with it almost perfectly, is the
    label under another name: a model trained on it looks perfect and predicts nothing."""
    import pandas as pd

    target = settings.target
    features = settings.features or [c for c in frame.columns if c not in (target, settings.id_column)]
    features = [c for c in features if c in frame.columns and c != target]
    label = frame[target]
    regression = settings.problem_type == "regression"
    encoded = None
    if regression:
        encoded = pd.to_numeric(label, errors="coerce")
    elif settings.positive_label is not None and label.nunique(dropna=True) == 2:
        encoded = (label == settings.positive_label).astype("float64").where(label.notna())
    threshold = settings.leakage_max_abs_correlation
    rule = "no feature maps one-to-one onto the label" + (
        f"; |correlation| with the label < {threshold}" if threshold is not None else "")
    outcomes, strongest = [], (0.0, None)
    for column in features:
        pairs = frame[[column, target]].dropna()
        if len(pairs) < 2:
            continue
        if not regression:
            n_labels = pairs[target].nunique()
            distinct = pairs.drop_duplicates()
            if n_labels >= 2 and pairs[column].nunique() == n_labels == len(distinct):
                mapping = [f"{_json_safe(a)!r} -> {_json_safe(b)!r}" for a, b in distinct.itertuples(index=False)]
                outcomes.append(_check(
                    CHECK_LEAKAGE, column, False,
                    f"target leakage: the feature determines the label {target!r} one-to-one "
                    f"({', '.join(mapping[:MAX_OFFENDING_VALUES])}); it is the label under another name",
                    rule, offending=mapping, count=len(pairs),
                ))
                continue
        if encoded is None or not pd.api.types.is_numeric_dtype(frame[column]) or frame[column].nunique() < 2:
            continue
        correlation = frame[column].astype("float64").corr(encoded)
        if correlation is None or math.isnan(correlation):
            continue
        if abs(correlation) > abs(strongest[0]):
            strongest = (correlation, column)
        if threshold is not None and abs(correlation) >= threshold:
            outcomes.append(_check(
                CHECK_LEAKAGE, column, False,
                f"target leakage: correlation {correlation:+.3f} with the label {target!r} "
                f"(|r| must stay below {threshold})",
                rule, observed=round(correlation, 4),
            ))
    if not outcomes:
        detail = (f"; strongest |correlation| {abs(strongest[0]):.3f} ({strongest[1]!r})"
                  if strongest[1] is not None else "")
        outcomes.append(_check(CHECK_LEAKAGE, None, True,
                               f"no feature determines the label ({len(features)} features checked{detail})", rule))
    return outcomes


def _row_count(rows: int, reference_rows: int, max_drop: float, reference: str) -> dict[str, Any]:
    drop = 1.0 - rows / reference_rows if reference_rows else 0.0
    change = f"{drop:.1%} fewer" if drop >= 0 else f"{-drop:.1%} more"
    success = drop <= max_drop + 1e-12
    message = f"{rows} rows vs {reference_rows} in {reference}: {change}"
    if not success:
        message += f"; at most {max_drop:.0%} fewer allowed (validation.row_count.max_drop)"
    return _check(CHECK_ROW_COUNT, None, success, message, f"at most {max_drop:.0%} fewer rows than the snapshot",
                  observed=rows)


def profile_frame(frame: pd.DataFrame, settings: ValidationSettings) -> dict[str, Any]:
    """The distribution of each drift column: what the next batch is compared with.

    Numeric columns: quantile bin edges (``settings.bins`` bins), the share of rows per bin,
    the share of nulls, mean, std, min and max. Categorical columns: the share of each of the
    50 most frequent values, of all others, and of nulls. Plus the row count.
    """
    columns = {}
    for column in _drift_columns(frame, settings):
        series = frame[column]
        if _kind(series, column, settings) == "numeric":
            columns[column] = _numeric_profile(series, settings.bins)
        else:
            columns[column] = _categorical_profile(series)
    return {"suite": settings.suite, "rows": len(frame), "bins": settings.bins, "columns": columns}


def _drift_columns(frame: pd.DataFrame, settings: ValidationSettings) -> list[str]:
    if settings.drift_columns is not None:
        wanted = list(settings.drift_columns)
    else:
        wanted = settings.features + ([settings.target] if settings.target else [])
    return [c for c in wanted if c in frame.columns]


def _kind(series: pd.Series, column: str, settings: ValidationSettings) -> str:
    import pandas as pd

    if column in settings.categorical or (column == settings.target and settings.problem_type != "regression"):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "numeric"
    return "categorical"


def _as_float(series: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype("float64")


def _numeric_profile(series: pd.Series, bins: int) -> dict[str, Any]:
    import numpy as np

    values = _as_float(series)
    valid = values.dropna().to_numpy()
    rows = len(values)
    edges = np.unique(np.quantile(valid, np.linspace(0, 1, bins + 1)[1:-1])) if len(valid) else np.array([])
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "shares": _bin_shares(valid, edges, rows),
        "null_share": 1.0 - len(valid) / rows if rows else 0.0,
        "mean": float(valid.mean()) if len(valid) else None,
        "std": float(valid.std()) if len(valid) else None,
        "min": float(valid.min()) if len(valid) else None,
        "max": float(valid.max()) if len(valid) else None,
    }


def _bin_shares(valid: Any, edges: Any, rows: int) -> list[float]:
    """Share of ``rows`` in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    import numpy as np

    if not rows:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype="float64"), valid, side="left"),
                         minlength=len(edges) + 1)
    return [float(c) / rows for c in counts]


def _category_keys(series: pd.Series) -> pd.Series:
    """Values as strings, integral floats without ``.0`` (so 408 and 408.0 are one category)."""
    import pandas as pd

    present = series.dropna()
    if pd.api.types.is_float_dtype(present) and len(present) and (present % 1 == 0).all():
        present = present.astype("int64")
    return present.astype(str)


def _categorical_profile(series: pd.Series) -> dict[str, Any]:
    rows = len(series)
    counts = _category_keys(series).value_counts()
    top = counts.iloc[:_TOP_CATEGORIES]
    return {
        "kind": "categorical",
        "shares": {str(k): int(v) / rows for k, v in top.items()} if rows else {},
        "other_share": (int(counts.sum()) - int(top.sum())) / rows if rows else 0.0,
        "null_share": 1.0 - int(counts.sum()) / rows if rows else 0.0,
    }


def _drift(frame: pd.DataFrame, settings: ValidationSettings, snapshot: Mapping[str, Any],
           reference: str) -> list[dict[str, Any]]:
    import numpy as np

    outcomes = []
    rows, reference_rows = len(frame), int(snapshot["rows"])
    for column in _drift_columns(frame, settings):
        expected = (snapshot.get("columns") or {}).get(column)
        if expected is None:
            outcomes.append(_check(CHECK_DRIFT, column, True, f"skipped: {reference} has no profile of this column",
                                   "PSI within tolerance"))
            continue
        series = frame[column]
        if expected["kind"] == "numeric":
            edges = expected["edges"]
            values = _as_float(series)
            valid = values.dropna().to_numpy()
            e = [*expected["shares"], expected["null_share"]]
            a = [*_bin_shares(valid, edges, rows), 1.0 - len(valid) / rows]
            labels = [_bin_label(edges, i) for i in range(len(edges) + 1)] + ["null"]
            shift = (f"; mean {expected['mean']:.4g} -> {valid.mean():.4g}"
                     if expected.get("mean") is not None and len(valid) else "")
        else:
            keys = _category_keys(series).value_counts()
            known = list(expected["shares"])
            e = [*expected["shares"].values(), expected["other_share"], expected["null_share"]]
            a = [*(int(keys.get(k, 0)) / rows for k in known),
                 (int(keys.sum()) - int(sum(keys.get(k, 0) for k in known))) / rows,
                 1.0 - int(keys.sum()) / rows]
            labels = [repr(k) for k in known] + ["other values", "null"]
            shift = ""
        e_arr, a_arr = np.clip(np.asarray(e, dtype="float64"), _PSI_EPSILON, None), \
            np.clip(np.asarray(a, dtype="float64"), _PSI_EPSILON, None)
        contributions = (a_arr - e_arr) * np.log(a_arr / e_arr)
        psi = float(contributions.sum())
        occupied = int(np.count_nonzero((np.asarray(e) > 0) | (np.asarray(a) > 0)))
        allowance = _psi_noise(occupied, rows, reference_rows)
        tolerance = float(settings.psi_max_per_column.get(column, settings.psi_max))
        success = psi <= tolerance + allowance
        order = np.argsort(-contributions)
        moved = [f"{labels[i]}: {e[i]:.1%} -> {a[i]:.1%}" for i in order[:3] if contributions[i] > 1e-3]
        message = (f"PSI {psi:.3f} against {reference}, "
                   f"{'within' if success else 'beyond'} the tolerance {tolerance:g} "
                   f"(+{allowance:.3f} for sampling noise at {rows} vs {reference_rows} rows){shift}")
        if not success and moved:
            message += f"; largest shifts: {'; '.join(moved)}"
        outcomes.append(_check(CHECK_DRIFT, column, success, message,
                               f"PSI <= {tolerance:g} + sampling noise", offending=[] if success else moved,
                               observed=round(psi, 4)))
    return outcomes


def _psi_noise(bins: int, rows: int, reference_rows: int) -> float:
    """PSI that sampling alone gives two samples of one distribution: its mean plus three standard
    deviations. PSI is close to a chi-square statistic with ``bins - 1`` degrees of freedom scaled
    by ``1/n + 1/m``, so small batches and many categories get a wider allowance."""
    if bins < 2 or not rows or not reference_rows:
        return 0.0
    dof = bins - 1
    return (dof + 3 * math.sqrt(2 * dof)) * (1 / rows + 1 / reference_rows)


def _bin_label(edges: Sequence[float], index: int) -> str:
    if not edges:
        return "all values"
    if index == 0:
        return f"<= {edges[0]:g}"
    if index == len(edges):
        return f"> {edges[-1]:g}"
    return f"({edges[index - 1]:g}, {edges[index]:g}]"


# -- the readable report ------------------------------------------------------------------------


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
            f"<td>{escape(_format_values(values)) if values else ''}</td>"
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


# -- landed files -------------------------------------------------------------------------------


def load_csv_strict(
    path_or_buffer: Any,
    expected_columns: Sequence[str] | None,
    *,
    dtype: Mapping[str, Any] | None = None,
    extra_columns: str = "fail",
) -> pd.DataFrame:
    """Read a landed CSV file, refusing anything that is not a clean comma-separated UTF-8 table.

    :param path_or_buffer: A path (``str``, ``Path``, ``ObjectStoragePath``), bytes, or a binary or
        text file object.
    :param expected_columns: The header's column set (order free); ``None`` skips the check.
    :param dtype: Passed to ``pandas.read_csv``, e.g. ``{"Invoice": "str", "StockCode": "str"}``
        for retail so that invoice numbers keep their ``C`` prefix semantics in every file.
    :param extra_columns: ``fail`` (default): a column not in ``expected_columns`` is an error;
        ``warn``: it is logged as a warning and returned with the others (the caller selects).
    :raises ValueError: naming the file and the problem: empty file, header only, wrong
        delimiter, ragged or truncated rows, bytes that are not UTF-8, duplicate or mismatched
        columns. A UTF-8 byte order mark is accepted.
    """
    import codecs
    import csv
    import io
    from collections import Counter

    import pandas as pd

    if extra_columns not in EXTRA_COLUMN_POLICIES:
        raise ValueError(f"extra_columns must be one of {', '.join(EXTRA_COLUMN_POLICIES)}, got {extra_columns!r}")
    data, source_name = _read_bytes(path_or_buffer)
    name = source_name or "the file"
    if not data.strip():
        raise ValueError(f"{_prefix(source_name)}the file is empty ({len(data)} bytes)")
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{_prefix(source_name)}not UTF-8: byte 0x{data[err.start]:02x} at line {line} (offset {err.start}); "
            "re-export the file as UTF-8"
        ) from None

    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((row for row in reader if row), None)
    if header is None:
        raise ValueError(f"{_prefix(source_name)}the file is empty (only blank lines)")
    if len(header) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delimiter in header[0]:
                raise ValueError(
                    f"{_prefix(source_name)}wrong delimiter: the header is one column {header[0][:80]!r} that contains "
                    f"{label}s; expected a comma-separated file"
                )
    duplicates = sorted(c for c, n in Counter(header).items() if n > 1)
    if duplicates:
        raise ValueError(f"{_prefix(source_name)}duplicate column names in the header: {duplicates}")
    widths = Counter(map(len, reader))
    widths.pop(0, None)  # blank lines, skipped by pandas too
    if not widths:
        raise ValueError(f"{_prefix(source_name)}header only, no data rows (columns: {header})")
    if set(widths) != {len(header)}:
        raise ValueError(_ragged_message(_prefix(source_name), text, len(header), widths))
    if expected_columns is not None:
        missing = [c for c in expected_columns if c not in header]
        extra = [c for c in header if c not in set(expected_columns)]
        if missing or (extra and extra_columns == "fail"):
            problems = [f"missing {missing}"] if missing else []
            problems += [f"unexpected {extra}"] if extra and extra_columns == "fail" else []
            raise ValueError(f"{_prefix(source_name)}columns do not match the schema: {'; '.join(problems)}")
        if extra:
            log.warning("%s: unexpected columns %s accepted (extra_columns=warn)", name, extra)
    return pd.read_csv(io.StringIO(text), dtype=dtype)


def _prefix(name: str | None) -> str:
    """``"<name>: "`` for messages; nothing for bytes or a nameless buffer, whose caller names them."""
    return f"{name}: " if name else ""


def _read_bytes(source: Any) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), None
    if isinstance(source, str):
        source = Path(source)
    if hasattr(source, "read_bytes"):  # pathlib.Path, ObjectStoragePath
        return source.read_bytes(), str(source)
    if hasattr(source, "read"):
        content = source.read()
        name = getattr(source, "name", None)
        return (content.encode("utf-8") if isinstance(content, str) else bytes(content)), \
            (str(name) if name else None)
    raise TypeError(f"cannot read a CSV from {type(source).__name__}: pass a path, bytes or a file object")


def _ragged_message(prefix: str, text: str, width: int, widths: Counter[int]) -> str:
    """Find the first ragged row (error path only, so a Python loop is fine)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""))
    next(row for row in reader if row)  # the header
    bad_rows = sum(n for w, n in widths.items() if w != width)
    rows = [(reader.line_num, row) for row in reader if row]
    last_line, last_row = rows[-1]
    if bad_rows == 1 and len(last_row) < width:
        quote = " inside an unclosed quote" if text.count('"') % 2 else ""
        return (
            f"{prefix}truncated file: the last row (line {last_line}) ends{quote} after {len(last_row)} of "
            f"{width} fields; the file was cut off while it was written or copied"
        )
    for line, row in rows:
        if len(row) != width:
            return (
                f"{prefix}ragged rows: line {line} has {len(row)} fields where the header "
                f"has {width} ({bad_rows} such rows)"
            )
    return f"{prefix}ragged rows ({bad_rows} rows do not have {width} fields)"
