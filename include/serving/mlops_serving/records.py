"""The loaded model, the refusals of a request and the row-by-row parsing of its records.

Shared by the handlers (``inference.py``), the compiled path (:mod:`mlops_serving.compiled`) and
the columnar path (:mod:`mlops_serving.columnar`); see ``inference.py`` for the column types.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_serving.messages import name_list

if TYPE_CHECKING:
    from mlops_serving.compiled import CompiledFeatures

CSV = "text/csv"
JSON = "application/json"
RESPONSE_KEYS = ("predicted_label", "probability", "labels", "probabilities")
MAX_ROWS_PER_REQUEST = 100_000


class RequestError(ValueError):
    """A request the handlers refuse; ``status`` is the HTTP status the endpoint answers with."""

    status = 400


class UnsupportedContentType(RequestError):
    """The request's content type is not text/csv or application/json."""

    status = 415


class NotAcceptable(RequestError):
    """No type the Accept header allows is text/csv or application/json."""

    status = 406


@dataclass
class LoadedModel:
    estimator: Any
    feature_columns: list[str]
    problem_type: str
    classes: list[Any]
    target: str
    categorical: list[str] | None = None  # None: no schema, column types inferred per request
    compiled: CompiledFeatures | None = None  # the feature step as lookup tables (text/csv requests)
    compile_note: str = "not compiled"  # why ``compiled`` is None, or that it was verified

    @property
    def is_classifier(self) -> bool:
        return self.problem_type in ("binary", "multiclass")


def _text(request_body: bytes | str) -> str:
    if not isinstance(request_body, bytes):
        return request_body
    try:
        return request_body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(f"the payload is not UTF-8 text: {err}") from None


def _csv_records(text: str, columns: list[str]) -> list[list[str]]:
    """The records of one ``text/csv`` request: one per non-empty line, each with every column."""
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as err:
        raise RequestError(f"text/csv payload cannot be parsed: {err}") from None
    if not rows:
        raise RequestError("empty text/csv payload: expected one record per line")
    bad = next((i for i, row in enumerate(rows) if len(row) != len(columns)), None)
    if bad is not None:
        raise RequestError(
            f"text/csv record {bad + 1} has {len(rows[bad])} fields; expected {len(columns)} "
            f"({name_list(columns)})"
        )
    if len(rows) > MAX_ROWS_PER_REQUEST:
        raise RequestError(f"{len(rows)} records in one request; the limit is {MAX_ROWS_PER_REQUEST}")
    return rows


def _numeric_columns(model: LoadedModel) -> list[str]:
    categorical = set(model.categorical or ())
    return [column for column in model.feature_columns if column not in categorical]


def _typed_frame(rows: list[list[str]], model: LoadedModel) -> pd.DataFrame:
    """CSV records typed by the model's schema: numeric columns float64, categorical ones text."""
    categorical = set(model.categorical or ())
    data = {}
    for name, values in zip(model.feature_columns, zip(*rows)):
        if name in categorical:
            data[name] = pd.array(np.array(values, dtype=object), dtype="str")
        else:
            data[name] = _csv_numbers(name, values)
    return pd.DataFrame(data, columns=model.feature_columns)


def _csv_numbers(column: str, fields: tuple[str, ...]) -> np.ndarray:
    """A numeric column's CSV fields as float64; an empty field is a missing value (NaN)."""
    try:
        return np.array(fields, dtype=np.float64)
    except ValueError:
        pass
    numbers = np.empty(len(fields), dtype=np.float64)
    for i, field in enumerate(fields):
        if not field.strip():
            numbers[i] = np.nan
            continue
        try:
            numbers[i] = float(field)
        except ValueError:
            raise RequestError(f"text/csv record {i + 1}, column {column!r}: {field!r} is not a number") from None
    return numbers


def _json_numbers(column: str, values: pd.Series) -> pd.Series:
    """A numeric column's JSON values as float64; null is a missing value (NaN)."""
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = numbers.isna() & values.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise RequestError(f"JSON instance {i + 1}, column {column!r}: {values.iloc[i]!r} is not a number")
    return numbers


def _csv_frame(rows: list[list[str]], columns: list[str]) -> pd.DataFrame:
    """The frame ``coerce_numeric(pd.DataFrame(rows, columns=columns))`` gives, built column by
    column from numpy arrays: CSV fields are all text, so each column is converted once."""
    data = {}
    for name, values in zip(columns, zip(*rows)):
        text = np.array(values, dtype=object)
        converted = pd.to_numeric(text, errors="coerce")
        # as coerce_numeric: numbers only when every field parsed (CSV fields are never missing)
        parsed = converted.dtype.kind in "iu" or (converted.dtype.kind == "f" and not np.isnan(converted).any())
        data[name] = converted if parsed else pd.array(text, dtype="str")
    return pd.DataFrame(data, columns=columns)


def coerce_numeric(frame: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """Turn text fields that parse fully as numbers into numbers; leave the rest as text.

    The fitted pipelines encode categorical columns as text themselves, so a numeric-looking
    category (e.g. an area code) is still handled correctly.
    """
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            converted = pd.to_numeric(frame[column], errors="coerce")
            if converted.notna().sum() == frame[column].notna().sum():
                frame[column] = converted
    return frame

def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_cell(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value]
    return value
