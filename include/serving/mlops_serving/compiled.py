"""The compiled path: a fitted pipeline's feature step as lookup tables, its trees as arrays.

At ``model_fn`` time a pipeline as ``include/training/train.py`` builds it is compiled
(:func:`compile_features`): one-hot codes become dicts, imputer fills and scaler statistics numpy
arrays, and HistGradientBoosting trees flat arrays walked for all rows and trees at once
(:class:`CompiledTrees`). Each compiled part is used only after it reproduced the fitted
pipeline's own output bit for bit on probe records; see ``inference.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_serving.records import _csv_numbers, _typed_frame

if TYPE_CHECKING:
    from mlops_serving.records import LoadedModel


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

    def transform(self, values: np.ndarray) -> np.ndarray:
        """The parsed numbers imputed and scaled with the fitted statistics, as scikit-learn does."""
        if self.fill is not None:
            missing = np.isnan(values)
            if missing.any():
                values = np.where(missing, self.fill, values)
        if self.mean is not None:
            values -= self.mean
        if self.scale is not None:
            values /= self.scale
        return values


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
        matrix = np.zeros((len(rows), self.width), dtype=np.float64, order="F")  # see encode_columns
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
            matrix[:, block.outputs] = block.transform(values)
        return EncodedRows(matrix)

    def encode_columns(self, columns: list[Any], numbers: Callable[[Any], np.ndarray | None]) -> EncodedRows | None:
        """:meth:`encode` of the records whose fields are ``columns`` (pyarrow text columns, in
        ``feature_columns`` order), column by column: a one-hot column is one ``index_in`` of its
        categories, a numeric one ``numbers(column)`` (float64, NaN where missing); the matrix is
        column-major. None when
        ``numbers`` gives None for a column (a field the row-by-row reading must decide)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = len(columns[0]) if columns else 0
        # Column-major: the estimator walks one tree over every row at a time, reading a feature's
        # values down a column (scikit-learn's HistGradientBoosting predicts a 5,000-row batch of the
        # churn model about 25% faster from it; the numbers are the same).
        matrix = np.zeros((rows, self.width), dtype=np.float64, order="F")
        for column in self.one_hot:
            categories = pa.array(sorted(column.codes, key=column.codes.__getitem__), pa.string())
            codes = pc.fill_null(pc.index_in(columns[column.position], value_set=categories), -1)
            codes = codes.to_numpy(zero_copy_only=False)
            known = np.flatnonzero(codes >= 0)
            matrix[known, column.offset + codes[known]] = 1.0
        for block in self.numeric:
            values = np.empty((rows, len(block.positions)), dtype=np.float64)
            for k, position in enumerate(block.positions):
                if (parsed := numbers(columns[position])) is None:
                    return None
                values[:, k] = parsed
            matrix[:, block.outputs] = block.transform(values)
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
    Inputs of more than :attr:`MAX_ROWS` rows go to the estimator itself: walking every row and
    tree at once costs memory and time in proportion to rows x trees, and past about 200 rows the
    estimator's own compiled loops are faster (measured on the churn model: 1.2 ms against 1.3 ms
    at 128 rows, 5.3 against 3.0 at 512). Both give the same numbers, bit for bit.
    """

    MAX_ROWS = 128

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
        return self.estimator.predict_proba(X) if len(X) > self.MAX_ROWS else self.walked_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X) if len(X) > self.MAX_ROWS else self.walked_predict(X)

    def walked_proba(self, X: np.ndarray) -> np.ndarray:
        """The estimator's ``predict_proba(X)`` from the compiled trees, whatever the rows."""
        return self.estimator._loss.predict_proba(self.raw_predict(X))

    def walked_predict(self, X: np.ndarray) -> np.ndarray:
        """The estimator's ``predict(X)`` from the compiled trees, whatever the rows."""
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
            same = np.array_equal(trees.walked_proba(X), estimator.predict_proba(X))
        else:
            same = np.array_equal(trees.walked_predict(X), estimator.predict(X))
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
