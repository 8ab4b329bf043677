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
"""

from __future__ import annotations

import csv
import dataclasses
import functools
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
    compiled: CompiledFeatures | None = None  # the feature step as lookup tables (text/csv requests)
    compile_note: str = "not compiled"  # why ``compiled`` is None, or that it was verified

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


# ---------------------------------------------------------------- the feature step, compiled
@dataclass(frozen=True)
class EncodedRows:
    """Records already through the model's feature step (compiled): its last step's input matrix."""

    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def signature(self) -> tuple[str, int]:
        """Inputs with the same signature can be predicted together (:meth:`concat`)."""
        return ("encoded", self.matrix.shape[1])

    @staticmethod
    def concat(parts: list[EncodedRows]) -> EncodedRows:
        return EncodedRows(np.concatenate([part.matrix for part in parts]))


@dataclass(frozen=True)
class _OneHotColumn:
    position: int  # index of the column in a record
    offset: int  # first output column of its categories
    codes: dict[str, int]  # category (as text) -> its output column after offset


@dataclass(frozen=True)
class _NumericBlock:
    positions: list[int]  # indices of the columns in a record
    names: list[str]
    outputs: slice  # the output columns, in order
    fill: np.ndarray | None  # SimpleImputer's statistics_ (missing values only)
    mean: np.ndarray | None  # StandardScaler's mean_ and scale_
    scale: np.ndarray | None


class UnsupportedPipeline(Exception):
    """The fitted pipeline has a part :func:`compile_features` does not compile."""


@dataclass(frozen=True)
class CompiledFeatures:
    """A fitted ``Pipeline(ColumnTransformer -> model)``'s feature step as lookup tables and arrays.

    :meth:`encode` turns CSV records (lists of text fields in ``feature_columns`` order) into the
    matrix the pipeline's ``ColumnTransformer`` gives for the frame :func:`parse_request` would
    build from them, without building it: a one-hot column is a dict lookup, numeric columns are
    parsed once and imputed and scaled with the fitted statistics, in the operations scikit-learn
    uses. ``predictor`` is the pipeline's last step. :func:`compile_features` builds one only for
    the parts it knows and checks it against the pipeline before it is used.
    """

    width: int
    one_hot: list[_OneHotColumn]
    numeric: list[_NumericBlock]
    predictor: Any

    def encode(self, rows: list[list[str]]) -> EncodedRows:
        matrix = np.zeros((len(rows), self.width), dtype=np.float64)
        for column in self.one_hot:
            position, offset, codes = column.position, column.offset, column.codes
            for i, row in enumerate(rows):
                code = codes.get(row[position])
                if code is None and "\x00" in row[position]:  # numpy's text drops trailing NULs
                    code = codes.get(row[position].rstrip("\x00"))
                if code is not None:
                    matrix[i, offset + code] = 1.0
        for block in self.numeric:
            values = _csv_number_block(rows, block.positions, block.names)
            if block.fill is not None:
                missing = np.isnan(values)
                if missing.any():
                    values = np.where(missing, block.fill, values)
            if block.mean is not None:
                values -= block.mean
            if block.scale is not None:
                values /= block.scale
            matrix[:, block.outputs] = values
        return EncodedRows(matrix)


def _csv_number_block(rows: list[list[str]], positions: list[int], names: list[str]) -> np.ndarray:
    """The numeric columns at ``positions`` as a float64 matrix, each as :func:`_csv_numbers` reads it."""
    try:
        return np.array([[row[p] for p in positions] for row in rows], dtype=np.float64).reshape(
            len(rows), len(positions))
    except ValueError:  # an empty field or a bad one: column by column, for the missing values or the error
        pass
    block = np.empty((len(rows), len(positions)), dtype=np.float64)
    for k, (position, name) in enumerate(zip(positions, names)):
        block[:, k] = _csv_numbers(name, tuple(row[position] for row in rows))
    return block


def compile_features(model: LoadedModel) -> tuple[CompiledFeatures | None, str]:
    """``(compiled feature step, note)``, or ``(None, why not)``.

    Compiles pipelines as ``include/training/train.py`` builds them (a ``ColumnTransformer`` of
    ``FunctionTransformer(np.asarray, dtype=str) -> OneHotEncoder(handle_unknown="ignore")`` for
    the schema's categorical columns and ``FunctionTransformer(np.asarray, dtype=float64) ->
    [SimpleImputer -> StandardScaler]`` for the others, then the model) and nothing else. The
    result is used only when it gives the pipeline's own output, bit for bit, on probe records
    built from the fitted categories (every one, an unseen one and an empty one) and from numeric
    fields with missing, negative, exponent and space-padded values; otherwise, and for models
    without a schema, requests go through the pipeline.
    """
    if model.categorical is None:
        return None, "no categorical schema in model.json"
    try:
        compiled = _compile(model)
        rows = _probe_records(model, compiled)
        expected = np.asarray(model.estimator[:-1].transform(_typed_frame(rows, model)), dtype=np.float64)
        got = compiled.encode(rows).matrix
    except UnsupportedPipeline as err:
        return None, f"not compiled: {err}"
    except Exception as err:  # anything unexpected: the pipeline serves as it always did
        return None, f"not compiled: {type(err).__name__}: {err}"
    if expected.shape != got.shape or not np.array_equal(expected, got, equal_nan=True):
        return None, "not compiled: the compiled feature step differs from the pipeline's on probe records"
    predictor, trees_note = compile_trees(compiled.predictor)
    compiled = dataclasses.replace(compiled, predictor=predictor)
    return compiled, f"compiled; equal to the pipeline's feature step on {len(rows)} probe records; {trees_note}"


def _compile(model: LoadedModel) -> CompiledFeatures:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    pipeline = model.estimator
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise UnsupportedPipeline("the model is not a Pipeline of a feature step and a model")
    features, predictor = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(features, ColumnTransformer):
        raise UnsupportedPipeline(f"the feature step is a {type(features).__name__}, not a ColumnTransformer")
    if getattr(features, "sparse_output_", True):
        raise UnsupportedPipeline("the feature step's output is sparse")
    if (getattr(features, "_sklearn_output_config", None) or {}).get("transform") not in (None, "default"):
        raise UnsupportedPipeline("the feature step outputs DataFrames")
    if hasattr(predictor, "feature_names_in_"):
        raise UnsupportedPipeline("the model step was fitted on named columns")
    position = {name: i for i, name in enumerate(model.feature_columns)}
    categorical = set(model.categorical or ())
    one_hot: list[_OneHotColumn] = []
    numeric: list[_NumericBlock] = []
    width = 0
    for name, transformer, columns in features.transformers_:
        if transformer == "drop":
            continue
        outputs = features.output_indices_[name]
        width = max(width, outputs.stop)
        if outputs.stop == outputs.start:
            continue
        if (not isinstance(columns, (list, tuple)) or not columns
                or any(not isinstance(c, str) or c not in position for c in columns)):
            raise UnsupportedPipeline(f"transformer {name!r} selects columns other than by feature name")
        steps = [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
        as_type = steps[0] if isinstance(steps[0], FunctionTransformer) else None
        if as_type is not None:
            wanted = _as_type(as_type)
            steps = steps[1:]
        if all(c in categorical for c in columns):
            if as_type is not None and wanted is not str:
                raise UnsupportedPipeline(f"transformer {name!r} does not read categorical columns as text")
            if len(steps) != 1 or not isinstance(steps[0], OneHotEncoder):
                raise UnsupportedPipeline(f"transformer {name!r} is not a one-hot encoding of text")
            one_hot += _one_hot_columns(name, steps[0], columns, position, outputs.start)
        elif not any(c in categorical for c in columns):
            if as_type is not None and wanted is not np.float64:
                raise UnsupportedPipeline(f"transformer {name!r} does not read numeric columns as float64")
            numeric.append(_numeric_block(name, steps, columns, position, outputs, SimpleImputer, StandardScaler))
        else:
            raise UnsupportedPipeline(f"transformer {name!r} mixes categorical and numeric columns")
    covered = sum(len(c.codes) for c in one_hot) + sum(b.outputs.stop - b.outputs.start for b in numeric)
    if covered != width:
        raise UnsupportedPipeline("the feature step's outputs are not all one-hot or numeric columns")
    return CompiledFeatures(width, one_hot, numeric, predictor)


class CompiledTrees:
    """A fitted ``HistGradientBoosting{Classifier,Regressor}``'s trees as flat arrays, walked for
    every row and tree at once: the same leaves, summed in the estimator's order (baseline, then
    iteration by iteration), through the estimator's own loss. One call costs a few numpy
    operations per tree level instead of a Python call per tree.

    :func:`compile_trees` builds one only for numeric splits and checks it against the estimator.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        trees = [(k, predictor) for iteration in estimator._predictors for k, predictor in enumerate(iteration)]
        if any(predictor.nodes["is_categorical"].any() for _, predictor in trees):
            raise UnsupportedPipeline("the boosted trees split on categorical features")
        nodes = np.concatenate([predictor.nodes for _, predictor in trees])
        starts = np.cumsum([0] + [len(predictor.nodes) for _, predictor in trees])[:-1]
        offsets = np.repeat(starts, [len(predictor.nodes) for _, predictor in trees])
        own = np.arange(len(nodes))
        leaf = nodes["is_leaf"].astype(bool)
        self.roots = starts.astype(np.intp)
        self.tree_output = np.array([k for k, _ in trees], dtype=np.intp)
        self.feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        # a leaf points at itself, so walking on from it stays there
        self.left = np.where(leaf, own, nodes["left"].astype(np.intp) + offsets)
        self.right = np.where(leaf, own, nodes["right"].astype(np.intp) + offsets)
        self.value = nodes["value"].astype(np.float64)
        # trees deepest first: after level d only the trees deeper than d are still walked
        depth = np.array([int(predictor.nodes["depth"].max()) for _, predictor in trees], dtype=np.intp)
        self.walk_order = np.argsort(-depth, kind="stable")
        self.walk_roots = self.roots[self.walk_order]
        self.walking = [int((depth > level).sum()) for level in range(int(depth.max()) if len(depth) else 0)]
        self.children = np.stack([self.left, self.right], axis=1).ravel()  # node * 2 + went right
        self.outputs = estimator.n_trees_per_iteration_
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(1, -1)
        self.n_features = estimator.n_features_in_
        self.classes_ = getattr(estimator, "classes_", None)

    def raw_predict(self, X: np.ndarray) -> np.ndarray:
        """``estimator._raw_predict(X)``: baseline plus every tree's leaf value, per output."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X has shape {X.shape}; the model takes {self.n_features} features")
        n = len(X)
        flat = np.ascontiguousarray(X).ravel()
        missing = bool(np.isnan(flat).any())
        node = np.repeat(self.walk_roots[None, :], n, axis=0)  # (rows, trees in walk order)
        first = (np.arange(n) * self.n_features)[:, None]  # each row's first value in ``flat``
        for walking in self.walking:
            at = node[:, :walking]
            x = flat[first + self.feature[at]]
            left = x <= self.threshold[at]
            if missing:  # NaN compares False: it goes where the split sends missing values
                left |= np.isnan(x) & self.missing_left[at]
            node[:, :walking] = self.children[2 * at + ~left]
        leaves = np.empty_like(self.value[node])
        leaves[:, self.walk_order] = self.value[node]
        raw = np.empty((n, self.outputs), dtype=np.float64, order="F")
        for k in range(self.outputs):
            # sequential sums in the estimator's order: 0 + baseline, then each iteration's tree
            terms = np.concatenate([np.zeros((n, 1)), np.repeat(self.baseline[:, k:k + 1], n, axis=0),
                                    leaves[:, self.tree_output == k]], axis=1)
            raw[:, k] = np.add.accumulate(terms, axis=1)[:, -1]
        return raw

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator._loss.predict_proba(self.raw_predict(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes_ is None:
            return self.estimator._loss.link.inverse(self.raw_predict(X).ravel())
        raw = self.raw_predict(X)
        encoded = (raw.ravel() > 0).astype(int) if raw.shape[1] == 1 else np.argmax(raw, axis=1)
        return self.classes_[encoded]


def compile_trees(estimator: Any) -> tuple[Any, str]:
    """``(CompiledTrees, note)`` for a fitted HistGradientBoosting model, ``(estimator, why not)`` else.

    The compiled trees are used only when they give the estimator's own probabilities (or
    predictions), bit for bit, on probe rows built from every split threshold (the threshold,
    the next float above it, missing values and extremes).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if not isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return estimator, f"model step {type(estimator).__name__} runs as it is"
    try:
        trees = CompiledTrees(estimator)
        X = _probe_matrix(trees)
        if trees.classes_ is not None:
            same = np.array_equal(trees.predict_proba(X), estimator.predict_proba(X))
        else:
            same = np.array_equal(trees.predict(X), estimator.predict(X))
    except UnsupportedPipeline as err:
        return estimator, f"trees not compiled: {err}"
    except Exception as err:  # anything unexpected: the estimator predicts as it always did
        return estimator, f"trees not compiled: {type(err).__name__}: {err}"
    if not same:
        return estimator, "trees not compiled: the compiled trees differ from the estimator on probe rows"
    return trees, f"trees compiled; equal to the estimator on {len(X)} probe rows"


def _probe_matrix(trees: CompiledTrees, rows: int = 512) -> np.ndarray:
    """Rows whose every feature is drawn from that feature's split thresholds, the float just
    above each, NaN, 0 and +-inf: every side of every split is taken by some row."""
    random = np.random.default_rng(0)
    split = trees.left != np.arange(len(trees.left))
    X = np.empty((rows, trees.n_features), dtype=np.float64)
    for f in range(trees.n_features):
        thresholds = trees.threshold[split & (trees.feature == f)]
        choices = np.concatenate([thresholds, np.nextafter(thresholds, np.inf), [np.nan, 0.0, np.inf, -np.inf]])
        X[:, f] = random.choice(choices, size=rows)
    return X


def _as_type(step: Any) -> Any:
    """The dtype ``FunctionTransformer(np.asarray, kw_args={"dtype": ...})`` converts to."""
    kw_args = step.kw_args or {}
    if step.func is not np.asarray or set(kw_args) != {"dtype"} or step.inverse_func is not None:
        raise UnsupportedPipeline(f"FunctionTransformer({getattr(step.func, '__name__', step.func)!r}, "
                                  f"{kw_args}) is not a type conversion")
    dtype = kw_args["dtype"]
    if dtype in (str, np.str_):
        return str
    if dtype in (float, np.float64, "float64"):
        return np.float64
    raise UnsupportedPipeline(f"FunctionTransformer converts to {dtype!r}")


def _one_hot_columns(name: str, encoder: Any, columns: list[str], position: dict[str, int],
                     offset: int) -> list[_OneHotColumn]:
    if encoder.handle_unknown != "ignore" or getattr(encoder, "drop_idx_", None) is not None:
        raise UnsupportedPipeline(f"{name!r}: only OneHotEncoder(handle_unknown='ignore', drop=None) compiles")
    if encoder.sparse_output or np.dtype(encoder.dtype) != np.float64:
        raise UnsupportedPipeline(f"{name!r}: the encoder's output is not dense float64")
    if getattr(encoder, "_infrequent_enabled", False):
        raise UnsupportedPipeline(f"{name!r}: the encoder groups infrequent categories")
    if len(encoder.categories_) != len(columns):
        raise UnsupportedPipeline(f"{name!r}: the encoder's categories do not match its columns")
    result = []
    for column, categories in zip(columns, encoder.categories_):
        if categories.dtype.kind != "U":
            raise UnsupportedPipeline(f"{name!r}: the categories of {column!r} are not text")
        result.append(_OneHotColumn(position[column], offset, {str(c): k for k, c in enumerate(categories)}))
        offset += len(categories)
    return result


def _numeric_block(name: str, steps: list[Any], columns: list[str], position: dict[str, int],
                   outputs: slice, imputer_class: type, scaler_class: type) -> _NumericBlock:
    fill = mean = scale = None
    for step in steps:
        if isinstance(step, imputer_class) and fill is None and mean is None and scale is None:
            if not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)) or step.add_indicator:
                raise UnsupportedPipeline(f"{name!r}: only SimpleImputer(missing_values=nan) without indicator")
            fill = np.asarray(step.statistics_, dtype=np.float64)
            if np.isnan(fill).any():
                raise UnsupportedPipeline(f"{name!r}: the imputer has no value for a column")
        elif isinstance(step, scaler_class) and mean is None and scale is None:
            mean = None if step.mean_ is None or not step.with_mean else np.asarray(step.mean_, dtype=np.float64)
            scale = None if step.scale_ is None or not step.with_std else np.asarray(step.scale_, dtype=np.float64)
            if mean is None and scale is None:
                mean = np.zeros(len(columns))  # a no-op scaler still runs: nothing to do
        else:
            raise UnsupportedPipeline(f"{name!r}: {type(step).__name__} does not compile")
    if outputs.stop - outputs.start != len(columns):
        raise UnsupportedPipeline(f"{name!r}: {outputs.stop - outputs.start} outputs for {len(columns)} columns")
    return _NumericBlock([position[c] for c in columns], list(columns), outputs, fill, mean, scale)


def _probe_records(model: LoadedModel, compiled: CompiledFeatures) -> list[list[str]]:
    """CSV records that exercise every fitted category, unseen and empty text, and numeric fields
    that are missing, negative, fractional, exponent and space-padded."""
    numbers = ["", "0", "1.5", "-2.25", "1e3", " 7 ", "nan", "12", "-0", "3.141592653589793"]
    values: dict[int, list[str]] = {}
    for column in compiled.one_hot:
        values[column.position] = list(column.codes) + ["", "\u2603 unseen", " " + next(iter(column.codes), "")]
    for block in compiled.numeric:
        for position in block.positions:
            values[position] = numbers
    count = max(len(v) for v in values.values()) if values else 1
    return [[values.get(p, [""])[(i + p) % len(values.get(p, [""]))] for p in range(len(model.feature_columns))]
            for i in range(count)]


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
