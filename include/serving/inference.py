"""Inference handlers in the SageMaker scikit-learn container's contract.

SageMaker's scikit-learn serving container imports this file as the entry point and calls
``model_fn`` once, then ``input_fn`` -> ``predict_fn`` -> ``output_fn`` per request. The local
runtime and the local batch transform call the same four functions, so a model answers the same
way on both backends.

Artifact layout (``model.tar.gz`` extracted into ``model_dir``):
``model.joblib`` (fitted estimator taking a DataFrame of ``feature_columns``) and ``model.json``
(``feature_columns``, ``target``, ``problem_type``, ``classes``, ``framework``, and for models
trained by ``include/training/train.py`` ``categorical``).

Column types: when ``model.json`` lists the ``categorical`` columns, the rest are numbers and
every request is typed from that schema: numeric fields become float64 (an empty field is a
missing value, anything else that is not a number is an error naming the record, column and
value), categorical fields stay text. A record then parses the same whatever records come with
it, which is what lets the local runtime parse requests that queue up together in one call
(:func:`batch_input_fn`). Without the list (e.g. Autopilot candidates), a column becomes numeric
when every field in the request parses as a number.

Refusals: a request the handlers cannot answer raises :class:`RequestError` from
:func:`parse_request` and :func:`write_response`, with the HTTP status the endpoint answers with
(400 a malformed record, 415 an unsupported content type, 406 no acceptable answer type).
SageMaker's scikit-learn container answers *any* exception from a handler with HTTP 500 (its
``Transformer`` wraps them all in its ``ClientError``, which Flask answers as an internal error),
so the container's handlers never raise one: :func:`input_fn` returns the refusal,
:func:`predict_fn` passes it on and :func:`output_fn` answers it as an :class:`ErrorResponse`
(a WSGI response the container's Flask server sends with its status and a JSON body, the shape
of the container's own ``{"error", "error-message"}`` answers). The local runtime and batch
transform call the raising functions and answer a refusal the same way.

Response keys follow SageMaker Autopilot: ``predicted_label``, ``probability`` (binary: of the
second/positive class; multiclass: of the predicted class), ``labels``, ``probabilities``. The
keys returned are those in the ``SAGEMAKER_INFERENCE_OUTPUT`` environment variable
(comma-separated), default ``predicted_label,probability`` for classifiers and
``predicted_label`` for regressors. Only numpy, pandas, joblib and werkzeug (the container's
web server library, for the Accept header) are needed here.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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


@dataclass(frozen=True)
class ErrorResponse:
    """A refusal as the container sends it: ``status`` and a JSON body naming the error.

    It is a WSGI application: the container's Flask server sends it as it is (a handler's
    ``(body, content type)`` tuple is always sent with status 200).
    """

    status: int
    body: str
    content_type: str = JSON

    @classmethod
    def of(cls, error: RequestError) -> ErrorResponse:
        return cls(error.status, json.dumps({"error": type(error).__name__, "error-message": str(error)}))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        data = self.body.encode("utf-8")
        start_response(f"{self.status} {HTTPStatus(self.status).phrase}",
                       [("Content-Type", self.content_type), ("Content-Length", str(len(data)))])
        return [data]


@dataclass
class LoadedModel:
    estimator: Any
    feature_columns: list[str]
    problem_type: str
    classes: list[Any]
    target: str
    categorical: list[str] | None = None  # None: no schema, column types inferred per request

    @property
    def is_classifier(self) -> bool:
        return self.problem_type in ("binary", "multiclass")


_SERVED: LoadedModel | None = None  # the model of this process, for the container's 2-argument calls


def _model(model: Any) -> LoadedModel:
    """``model`` when the caller passed one (the local runtime does); else this process's model.

    SageMaker's scikit-learn container calls ``input_fn(body, content_type)`` and
    ``output_fn(prediction, accept)``, and its newer toolkit passes a request context as a third
    argument to handlers that take one: anything but a LoadedModel means "the served model".
    """
    if isinstance(model, LoadedModel):
        return model
    if _SERVED is None:
        raise RuntimeError("no model loaded: model_fn was not called in this process")
    return _SERVED


def model_fn(model_dir: str) -> LoadedModel:
    """Load ``model.joblib`` and ``model.json`` from ``model_dir``."""
    global _SERVED
    import joblib

    directory = Path(model_dir)
    meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    _SERVED = LoadedModel(
        estimator=joblib.load(directory / "model.joblib"),
        feature_columns=list(meta["feature_columns"]),
        problem_type=meta["problem_type"],
        classes=list(meta.get("classes") or []),
        target=meta.get("target", ""),
        categorical=list(meta["categorical"]) if meta.get("categorical") is not None else None,
    )
    return _SERVED


def _base_type(content_type: str | None) -> str:
    return (content_type or CSV).split(";")[0].strip().lower()


def parse_request(request_body: bytes | str, content_type: str, model: LoadedModel | None = None) -> pd.DataFrame:
    """Parse a request into a DataFrame of the model's feature columns.

    ``text/csv``: one record per line, no header, fields in ``feature_columns`` order.
    ``application/json``: ``{"instances": [[...], ...]}`` or ``{"instances": [{col: v}, ...]}``
    (a bare list is accepted too). Raises :class:`RequestError` naming what is wrong
    (:class:`UnsupportedContentType` for another content type).
    """
    model = _model(model)
    kind = _base_type(content_type)
    text = _text(request_body)
    columns = model.feature_columns
    if kind == CSV:
        if len(text) >= COLUMNAR_MIN_BYTES and (frame := parse_csv_columnar(request_body, model)) is not None:
            return frame
        rows = _csv_records(text, columns)
        return _typed_frame(rows, model) if model.categorical is not None else _csv_frame(rows, columns)
    elif kind == JSON:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as err:
            raise RequestError(f"application/json payload is not valid JSON: {err}") from None
        instances = payload.get("instances") if isinstance(payload, dict) else payload
        if not isinstance(instances, list) or not instances:
            raise RequestError('application/json payload must be {"instances": [...]} with records')
        if all(isinstance(item, dict) for item in instances):
            missing = sorted(set(columns) - set().union(*(item.keys() for item in instances)))
            if missing:
                raise RequestError(f"JSON instances lack feature columns: {', '.join(missing)}")
            frame = pd.DataFrame([[item.get(c) for c in columns] for item in instances], columns=columns)
        elif all(isinstance(item, list) and len(item) == len(columns) for item in instances):
            frame = pd.DataFrame(instances, columns=columns)
        else:
            raise RequestError(
                f"each JSON instance must be an object of features or a list of {len(columns)} values"
            )
    else:
        raise UnsupportedContentType(f"content type {content_type!r} is not {CSV} or {JSON}")
    if len(frame) > MAX_ROWS_PER_REQUEST:
        raise RequestError(f"{len(frame)} records in one request; the limit is {MAX_ROWS_PER_REQUEST}")
    if model.categorical is None:
        return coerce_numeric(frame, model)
    for column in _numeric_columns(model):
        frame[column] = _json_numbers(column, frame[column])
    return frame


def input_fn(request_body: bytes | str, content_type: str, context: Any = None) -> pd.DataFrame | RequestError:
    """The container's ``input_fn``: :func:`parse_request` for the served model.

    A refused request is returned, not raised: the container would answer any exception with
    HTTP 500. :func:`predict_fn` passes it on and :func:`output_fn` answers it with its status.
    ``context`` (the newer toolkit's request context) is not used; a LoadedModel there is used.
    """
    try:
        return parse_request(request_body, content_type, _model(context))
    except RequestError as err:
        return err


def batch_input_fn(
    request_bodies: list[bytes | str], content_type: str, model: LoadedModel | None = None
) -> tuple[pd.DataFrame, list[int]] | None:
    """Parse several ``text/csv`` requests into one frame; return it with each request's record count.

    The frame's rows are exactly those :func:`parse_request` gives each request, in request order:
    with a schema, a record's types never depend on the records around it. Returns None when the
    requests must be parsed one by one (not ``text/csv``, or a model without a schema); raises
    :class:`RequestError` as :func:`parse_request` does for the first bad request. The local runtime calls
    this for requests that queued up together; SageMaker's container never does.
    """
    model = _model(model)
    if _base_type(content_type) != CSV or model.categorical is None:
        return None
    rows: list[list[str]] = []
    sizes = []
    for body in request_bodies:
        records = _csv_records(_text(body), model.feature_columns)
        rows.extend(records)
        sizes.append(len(records))
    return _typed_frame(rows, model), sizes


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
            f"({', '.join(columns)})"
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


def predict_fn(frame: pd.DataFrame | RequestError, model: LoadedModel) -> dict[str, Any] | RequestError:
    """Predict every row; return arrays for every response key the model can give.

    A refusal from :func:`input_fn` is passed on to :func:`output_fn` as it is.
    """
    if isinstance(frame, RequestError):
        return frame
    estimator = model.estimator
    if not model.is_classifier:
        return {"predicted_label": np.asarray(estimator.predict(frame))}
    proba = np.asarray(estimator.predict_proba(frame))
    classes = list(model.classes) or list(getattr(estimator, "classes_", []))
    winner = proba.argmax(axis=1)
    labels = np.asarray(classes, dtype=object)
    probability = proba[:, 1] if len(classes) == 2 else proba[np.arange(len(proba)), winner]
    return {
        "predicted_label": labels[winner],
        "probability": probability,
        "labels": classes,
        "probabilities": proba,
    }


def response_keys(model: LoadedModel, env: dict[str, str] | None = None) -> list[str]:
    """Keys to return, from ``SAGEMAKER_INFERENCE_OUTPUT`` or the default for the model."""
    env = os.environ if env is None else env
    raw = env.get("SAGEMAKER_INFERENCE_OUTPUT", "")
    if not raw.strip():
        return ["predicted_label", "probability"] if model.is_classifier else ["predicted_label"]
    keys = [k.strip().lower() for k in raw.split(",") if k.strip()]
    unknown = [k for k in keys if k not in RESPONSE_KEYS]
    if unknown:
        raise ValueError(f"unknown inference response keys {unknown}; choose from {RESPONSE_KEYS}")
    if not model.is_classifier and keys != ["predicted_label"]:
        raise ValueError("a regression model only answers with predicted_label")
    return keys


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_cell(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value]
    return value


def prediction_rows(prediction: dict[str, Any], keys: list[str]) -> list[list[Any]]:
    """One list of values per record, in ``keys`` order."""
    n = len(prediction["predicted_label"])
    columns = []
    for key in keys:
        value = prediction[key]
        if key == "labels":
            columns.append([list(value)] * n)
        else:
            columns.append(value)
    return [[_cell(col[i]) for col in columns] for i in range(n)]


def response_type(accept: str | None) -> str:
    """The type to answer in: the first of text/csv and application/json that ``accept`` allows.

    ``accept`` is the Accept header as the container hands it over: media ranges with optional
    parameters and quality values (``application/json;q=0.9, text/csv;q=0.5``), parsed by
    werkzeug. Ranges are tried by quality, then specificity, then the client's order; a
    wildcard allows text/csv first. An empty header is text/csv, though the container itself
    replaces a missing or bare ``*/*`` header by its default first (application/json unless
    ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` says otherwise). Raises :class:`NotAcceptable`
    when neither type is allowed.
    """
    from werkzeug.datastructures import MIMEAccept
    from werkzeug.http import parse_accept_header

    if not (accept or "").strip():
        return CSV
    for value, quality in parse_accept_header(accept, MIMEAccept):
        allowed = value.split(";")[0].strip().lower()
        for kind in (CSV, JSON):
            if quality > 0 and allowed in (kind, "*/*", kind.split("/")[0] + "/*"):
                return kind
    raise NotAcceptable(f"accept type {accept!r} allows neither {CSV} nor {JSON}")


def write_response(prediction: dict[str, Any], accept: str | None, keys: list[str]) -> tuple[str, str]:
    """Serialise predictions: CSV lines (list fields as JSON arrays) or JSON ``predictions``.

    Returns ``(body, content type)``; the type is :func:`response_type` of ``accept``.
    """
    if response_type(accept) == JSON:
        rows = prediction_rows(prediction, keys)
        return json.dumps({"predictions": [dict(zip(keys, row)) for row in rows]}), JSON
    if (fields := csv_response_fields(prediction, keys)) is not None:  # column by column, the same bytes
        return csv_lines(fields), CSV
    rows = prediction_rows(prediction, keys)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([json.dumps(v) if isinstance(v, list) else v for v in row])
    return out.getvalue(), CSV


def output_fn(
    prediction: dict[str, Any] | RequestError, accept: str, keys: list[str] | None = None
) -> tuple[str, str] | ErrorResponse:
    """The container's ``output_fn``: :func:`write_response`, or the refusal as an :class:`ErrorResponse`.

    Without ``keys`` (the container's 2-argument call), the served model's :func:`response_keys`.
    """
    if isinstance(prediction, RequestError):
        return ErrorResponse.of(prediction)
    keys = list(keys) if isinstance(keys, (list, tuple)) else response_keys(_model(None))
    try:
        return write_response(prediction, accept, keys)
    except RequestError as err:
        return ErrorResponse.of(err)


# ---------------------------------------------------------------- the columnar path (many records at once)
# A batch transform's mini-batch, or any request of many records, is read and written column by
# column: pyarrow splits the text into columns and converts the numeric ones, numpy/pandas build
# the frame, and each response key becomes one list of CSV fields. The records, their types and
# the bytes written are exactly those of the row-by-row functions above; whenever a payload is not
# plain (see plain_csv_columns) these functions return None and the row-by-row ones decide.
COLUMNAR_MIN_BYTES = 16 * 1024  # below this, a request is parsed row by row (one record: the csv module is faster)


def plain_csv_columns(payload: bytes, n_fields: int, wanted: list[int]) -> list[Any] | None:
    """The fields at ``wanted`` (positions among ``n_fields``) of every record of ``payload``, as
    pyarrow text columns, or None when the payload is not plain CSV.

    Plain: UTF-8, no quote character, no NUL, every CR followed by LF, at least two fields in every
    non-empty line and the same number in each. There, a record is its line split at the commas
    whatever the parser, and a blank line is no record. Anything else (quoted fields, a record of
    another width, a line of spaces, bytes that are not UTF-8) is left to :func:`parse_request`,
    which accepts or refuses it as it always has.
    """
    if n_fields < 2 or b'"' in payload or b"\x00" in payload or payload.count(b"\r") != payload.count(b"\r\n"):
        return None
    if not payload.isascii():
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    names = [f"f{i}" for i in range(n_fields)]
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(payload),
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False,
                                             block_size=max(len(payload) + 1, 1 << 20)),
            parse_options=pa_csv.ParseOptions(quote_char=False, double_quote=False, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names}, include_columns=[names[i] for i in set(wanted)],
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return [table.column(names[i]) for i in wanted]


_STR_DTYPE = pd.array(np.array(["a"], dtype=object), dtype="str").dtype


def columnar_frame(columns: list[Any], model: LoadedModel) -> pd.DataFrame | None:
    """The frame :func:`parse_request` gives for records whose feature fields are ``columns``
    (pyarrow text columns, in ``feature_columns`` order); None when a field needs the row-by-row
    conversion (a text pyarrow and Python read differently: ``nan``, ``1_0``, `` 1``...) or the records
    are none or too many for one request."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not columns or not 0 < len(columns[0]) <= MAX_ROWS_PER_REQUEST:  # none or too many: the row path says so
        return None
    if model.categorical is None:  # types inferred per request: the row-by-row rule, on these records
        return _csv_frame(list(zip(*(column.to_pylist() for column in columns))), model.feature_columns)
    categorical = set(model.categorical)
    data = {}
    for name, column in zip(model.feature_columns, columns):
        if name in categorical:
            values = pd.array(column, dtype="str")
            if values.dtype != _STR_DTYPE:  # pandas before 3: the row-by-row path's object strings
                values = pd.array(np.asarray(column.to_numpy(zero_copy_only=False), dtype=object), dtype="str")
            data[name] = values
            continue
        try:  # an empty field is a missing value; pyarrow's and Python's float parsing agree on the rest
            numbers = pc.cast(pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if pc.any(pc.is_nan(numbers)).as_py():  # "nan", "nan(1)", ...: Python's float() decides
            return None
        data[name] = numbers.to_numpy(zero_copy_only=False)
    return pd.DataFrame(data, columns=model.feature_columns)


def parse_csv_columnar(body: bytes | str, model: LoadedModel) -> pd.DataFrame | None:
    """:func:`parse_request` of a ``text/csv`` body read column by column; None when it is not plain."""
    payload = body.encode("utf-8") if isinstance(body, str) else body
    n_fields = len(model.feature_columns)
    columns = plain_csv_columns(payload, n_fields, list(range(n_fields)))
    return None if columns is None else columnar_frame(columns, model)


def csv_field(value: Any) -> str:
    """``value`` as the csv module writes it in a row of several fields (quoted when it must be)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([value, ""])
    return out.getvalue()[:-2]


def _float_texts(values: np.ndarray) -> list[str] | None:
    """``repr`` of each float (what csv and json write), via one list repr; None if any is not finite."""
    if values.dtype.kind != "f" or not np.isfinite(values).all():
        return None
    return repr(values.tolist())[1:-1].split(", ")


def csv_response_fields(prediction: dict[str, Any], keys: list[str]) -> list[list[str]] | None:
    """Per response key, the CSV field :func:`write_response` writes for each record (list keys as
    JSON, quoted), computed a column at a time; None when a value needs the row-by-row writer
    (a probability that is not a finite float, a label that is not hashable)."""
    n = len(prediction["predicted_label"])
    if not n:
        return [[] for _ in keys]
    table = np.asarray(prediction["probabilities"]) if "probabilities" in prediction else None
    by_class: dict[int, list[str] | None] = {}  # repr of each class's probabilities, written once

    def class_texts(j: int) -> list[str] | None:
        if j not in by_class:
            by_class[j] = _float_texts(table[:, j])
        return by_class[j]

    fields = []
    for key in keys:
        value = prediction[key]
        if key == "labels":
            fields.append([csv_field(json.dumps(_cell(list(value))))] * n)
        elif key == "probabilities":
            if table.dtype.kind != "f" or table.ndim != 2:
                return None
            texts = [class_texts(j) for j in range(table.shape[1])]
            if any(t is None for t in texts):
                return None
            if len(texts) > 1:  # "[a, b]" holds the delimiter: quoted
                inner = map(", ".join, zip(*texts))
                fields.append(('"[' + ']"\x00"['.join(inner) + ']"').split("\x00"))
            else:
                fields.append(("[" + "]\x00[".join(texts[0]) + "]").split("\x00"))
        else:
            array = np.asarray(value)
            if array.dtype.kind == "f":
                same = [j for j in range(table.shape[1]) if np.array_equal(array, table[:, j])] \
                    if table is not None and table.ndim == 2 and key == "probability" else []
                texts = class_texts(same[0]) if same else _float_texts(array)
                if texts is None:
                    return None
            else:
                values = array.tolist()
                try:
                    rendered = {v: csv_field(_cell(v)) for v in set(values)}
                except TypeError:
                    return None
                texts = list(map(rendered.__getitem__, values))
            fields.append(texts)
    return fields


def csv_lines(fields: list[list[str]]) -> str:
    """Records of CSV fields (one list per column) as newline-terminated lines."""
    if not fields or not fields[0]:
        return ""
    if len(fields) == 1:  # a record of one empty field is written "" (else it would read as no record)
        return "\n".join('""' if text == "" else text for text in fields[0]) + "\n"
    return "\n".join(map(",".join, zip(*fields))) + "\n"
