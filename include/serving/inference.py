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

The compiled path: at ``model_fn`` time a pipeline as ``include/training/train.py`` builds it
(``ColumnTransformer`` of one-hot encoded text and float64 numbers, imputed and scaled for
linear models, then the model) is compiled (:func:`compile_features`): one-hot codes become
dicts, imputer fills and scaler statistics numpy arrays, and HistGradientBoosting trees flat
arrays walked for all rows and trees at once (:class:`CompiledTrees`). A ``text/csv`` request
then goes from its parsed fields to the model's input matrix (:class:`EncodedRows`) without a
DataFrame, and to probabilities without a Python call per tree: well under a millisecond for
one record, against 3-4 ms through the pipeline. Each compiled part is used only after it reproduced the fitted pipeline's
own output bit for bit on probe records at load time (``LoadedModel.compile_note`` says what
was compiled or why not); anything else (JSON requests, Autopilot candidates, other
pipelines) goes through the fitted pipeline as before.

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

Layout: this file holds the handlers; their parts sit next to it in ``mlops_serving/`` (shipped
with it in the source archive): :mod:`mlops_serving.records` (the loaded model, refusals, the
row-by-row record parsing), :mod:`mlops_serving.compiled` (the compiled path) and
:mod:`mlops_serving.columnar` (the columnar path). Every name they define that the handlers'
callers use is imported here, so callers use this module alone.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import sys
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The parts sit next to this file (``mlops_serving/``, in the source directory the container
# unpacks): imported by the container its folder is on ``sys.path`` already; loaded by file path
# (the local runtime and batch transform) it is not, so it is added here.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from mlops_serving.columnar import (  # noqa: E402
    ARROW_FLOAT_TEXTS_MIN,
    COLUMNAR_MIN_BYTES,
    columnar_frame,
    columnar_input,
    csv_field,
    csv_lines,
    csv_response_fields,
    parse_csv_columnar,
    plain_csv_columns,
)
from mlops_serving.compiled import (  # noqa: E402
    CompiledFeatures,
    CompiledTrees,
    EncodedRows,
    UnsupportedPipeline,
    compile_features,
    compile_trees,
)
from mlops_serving.messages import name_list  # noqa: E402
from mlops_serving.records import (  # noqa: E402
    CSV,
    JSON,
    MAX_ROWS_PER_REQUEST,
    RESPONSE_KEYS,
    LoadedModel,
    NotAcceptable,
    RequestError,
    UnsupportedContentType,
    _cell,
    _csv_frame,
    _csv_numbers,
    _csv_records,
    _json_numbers,
    _numeric_columns,
    _text,
    _typed_frame,
    coerce_numeric,
)

__all__ = [
    "ARROW_FLOAT_TEXTS_MIN", "COLUMNAR_MIN_BYTES", "CSV", "JSON", "MAX_ROWS_PER_REQUEST", "RESPONSE_KEYS", "CompiledFeatures",
    "CompiledTrees", "EncodedRows", "ErrorResponse", "LoadedModel", "NotAcceptable", "RequestError",
    "UnsupportedContentType", "UnsupportedPipeline", "batch_input_fn", "coerce_numeric", "columnar_frame",
    "columnar_input", "compile_features", "compile_trees", "csv_field", "csv_lines", "csv_response_fields",
    "input_fn",
    "model_fn", "output_fn", "parse_csv_columnar", "parse_request", "plain_csv_columns", "predict_fn",
    "prediction_rows", "response_keys", "response_type", "write_response", "_csv_frame", "_csv_numbers",
    "_json_numbers", "_typed_frame",
]



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
    model = LoadedModel(
        estimator=joblib.load(directory / "model.joblib"),
        feature_columns=list(meta["feature_columns"]),
        problem_type=meta["problem_type"],
        classes=list(meta.get("classes") or []),
        target=meta.get("target", ""),
        categorical=list(meta["categorical"]) if meta.get("categorical") is not None else None,
    )
    model.compiled, model.compile_note = compile_features(model)
    _SERVED = model
    return _SERVED


def _base_type(content_type: str | None) -> str:
    return (content_type or CSV).split(";")[0].strip().lower()


def parse_request(request_body: bytes | str, content_type: str, model: LoadedModel | None = None) -> pd.DataFrame:
    """Parse a request into the model's input: a DataFrame of its feature columns, or
    :class:`EncodedRows` for ``text/csv`` to a model whose feature step compiled (:func:`compile_features`).

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
        if model.compiled is not None:
            return model.compiled.encode(rows)
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
                raise RequestError(f"JSON instances lack feature columns: {name_list(missing)}")
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


def input_fn(
    request_body: bytes | str, content_type: str, context: Any = None
) -> pd.DataFrame | EncodedRows | RequestError:
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
) -> tuple[pd.DataFrame | EncodedRows, list[int]] | None:
    """Parse several ``text/csv`` requests into one input; return it with each request's record count.

    The input's rows are exactly those :func:`parse_request` gives each request, in request order:
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
    if model.compiled is not None:
        return model.compiled.encode(rows), sizes
    return _typed_frame(rows, model), sizes

def predict_fn(
    frame: pd.DataFrame | EncodedRows | RequestError, model: LoadedModel
) -> dict[str, Any] | RequestError:
    """Predict every row; return arrays for every response key the model can give.

    A refusal from :func:`input_fn` is passed on to :func:`output_fn` as it is. Encoded rows
    go straight to the pipeline's last step (the feature step already ran, compiled).
    """
    if isinstance(frame, RequestError):
        return frame
    estimator = model.estimator
    if isinstance(frame, EncodedRows):
        if model.compiled is None:
            raise ValueError("encoded rows for a model whose feature step is not compiled")
        predictor, frame = model.compiled.predictor, frame.matrix
    else:
        predictor = estimator
    if not model.is_classifier:
        return {"predicted_label": np.asarray(predictor.predict(frame))}
    proba = np.asarray(predictor.predict_proba(frame))
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


@functools.lru_cache(maxsize=64)
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
