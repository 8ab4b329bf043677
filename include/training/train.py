"""Training entry point in the SageMaker scikit-learn container's contract.

The one implementation of the training logic. SageMaker runs this file unchanged as the
``entry_point`` of its scikit-learn container (and of every training job of an HPO job); the
local backend (``mlops.backends.local.training``) loads this same file and calls its functions.
It imports only scikit-learn, pandas, numpy and joblib (pyarrow for Parquet).

Command line (SageMaker passes every hyperparameter as ``--name value``)::

    python train.py --estimator gradient_boosting --learning_rate 0.1 --max_iter 200 \\
        --target 'Churn?' --problem_type binary --objective roc_auc --positive_label True. \\
        --feature_columns '["State", "Day Mins"]' --categorical '["State"]' --seed 42

Values are JSON (as the SageMaker Python SDK encodes them), Python literals (as SageMaker's
training toolkit re-renders decoded values: ``['a', 'b']``, ``False``) or plain text
(:func:`decode_value`); lists are lists of column names. The names in
:data:`CONFIG_KEYS` describe the data; every other name is a hyperparameter of the estimator
(``sagemaker_*`` and ``_*`` names, added by SageMaker itself, are ignored).

Environment (SageMaker's defaults apply when a variable is unset):

``SM_CHANNEL_TRAIN``     folder with the training rows: every ``.parquet``/``.csv`` file (CSV with
                         a header row), read in sorted path order and concatenated.
``SM_CHANNEL_FOLDS``     optional folder (or file) with one fold manifest JSON
                         (``mlops.ml.folds``): when present, k-fold CV runs before the final fit.
``SM_MODEL_DIR``         receives ``model.joblib`` and ``model.json`` (``include/serving/inference.py``).
``SM_OUTPUT_DATA_DIR``   receives ``metrics.json``.
``SM_NUM_CPUS``          folds are scored in parallel over this many processes (default 1).
``/opt/ml/checkpoints``  when it exists (managed spot training with a ``CheckpointConfig``), each
                         finished fold's score is kept there and a restarted job skips it
                         (``MLOPS_CHECKPOINT_DIR`` names another folder).

Metric lines on stdout, for SageMaker metric definitions (:func:`metric_definitions`): after
each fold its score and the running mean over the folds so far, then the spread::

    fold=0 roc_auc=0.912345;
    cv_mean roc_auc=0.912345;
    fold=1 roc_auc=0.907655;
    cv_mean roc_auc=0.910000;
    cv_std roc_auc=0.002345;

The last ``cv_mean`` is the mean over all k folds: the value SageMaker records as the final
metric of the job (``FinalMetricDataList`` keeps a metric's last value) and the objective an
HPO job maximises; the earlier ones let its early stopping act after each fold.

``--final_fit false`` (an HPO trial) scores the folds and skips the final fit on every row.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pickle
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

PROBLEM_TYPES = ("binary", "multiclass", "regression")
CLASSIFICATION = ("binary", "multiclass")
DEFAULT_OBJECTIVES = {
    "binary": "roc_auc",
    "multiclass": "accuracy",
    "regression": "neg_root_mean_squared_error",
}
CONFIG_KEYS = (
    "estimator",
    "target",
    "feature_columns",
    "categorical",
    "problem_type",
    "objective",
    "positive_label",
    "seed",
    "final_fit",
)
DATA_FILE_SUFFIXES = (".parquet", ".csv")
TRAIN_ONLY_FOLD = -1  # rows a time-ordered manifest never tests on
NUMBER_PATTERN = r"(-?[0-9]+(?:\.[0-9]+)?)"


@dataclass(frozen=True)
class EstimatorSpec:
    """An estimator family: its classifier and regressor, and how numeric inputs are prepared.

    ``scale_numeric`` models (linear ones) get median imputation and standardisation; tree
    models take the numbers as they are (missing values included).
    """

    classifier: type | None
    regressor: type | None
    scale_numeric: bool = False


ESTIMATORS: dict[str, EstimatorSpec] = {
    "gradient_boosting": EstimatorSpec(HistGradientBoostingClassifier, HistGradientBoostingRegressor),
    "random_forest": EstimatorSpec(RandomForestClassifier, RandomForestRegressor),
    "logistic_regression": EstimatorSpec(LogisticRegression, None, scale_numeric=True),
    "ridge": EstimatorSpec(None, Ridge, scale_numeric=True),
}


# ---------------------------------------------------------------- hyperparameters and config
def decode_value(raw: str) -> Any:
    """A hyperparameter value as it arrives on the command line.

    JSON when it parses (``0.1``, ``["a", "b"]``, ``"True."``); else a Python literal, because
    SageMaker's training toolkit JSON-decodes ``HyperParameters`` and passes ``str()`` of the
    result (``['a', 'b']``, ``False``); else the text itself (``True.``, ``gradient_boosting``).
    """
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw


def encode_hyperparameters(values: Mapping[str, Any]) -> dict[str, str]:
    """``{name: JSON text}`` for a training job's ``HyperParameters`` (what the SageMaker Python
    SDK sends); :func:`decode_value` reads every value back, directly or through the toolkit.
    ``None`` values are left out."""
    return {name: json.dumps(_plain(value)) for name, value in values.items() if value is not None}


def parse_hyperparameters(argv: Sequence[str]) -> dict[str, Any]:
    """Parse ``--name value`` (or ``--name=value``) pairs into ``{name: decoded value}``."""
    values: dict[str, Any] = {}
    position = 0
    while position < len(argv):
        token = argv[position]
        if not token.startswith("--") or len(token) == 2:
            raise ValueError(f"expected --name value pairs; got {token!r} at position {position}")
        name, separator, raw = token[2:].partition("=")
        if separator:
            position += 1
        elif position + 1 < len(argv):
            raw = argv[position + 1]
            position += 2
        else:
            raise ValueError(f"hyperparameter --{name} has no value")
        values[name.replace("-", "_")] = decode_value(raw)
    return values


def split_hyperparameters(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the data config (:data:`CONFIG_KEYS`) from the estimator's hyperparameters."""
    config = {key: values[key] for key in CONFIG_KEYS if key in values}
    hyperparameters = {
        name: value
        for name, value in values.items()
        if name not in CONFIG_KEYS and not name.startswith(("sagemaker_", "_"))
    }
    return config, hyperparameters


def training_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check the data config and fill its defaults; raise ``ValueError`` naming a bad key.

    Keys not in :data:`CONFIG_KEYS` are ignored, so a ``TrainingData`` dict can be passed.
    """
    missing = [key for key in ("target", "feature_columns", "problem_type") if not values.get(key)]
    if missing:
        raise ValueError(f"training config lacks {', '.join(missing)}")
    problem_type = values["problem_type"]
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type {problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
    features = _string_list(values["feature_columns"], "feature_columns")
    categorical = _string_list(values.get("categorical") or [], "categorical")
    outside = [column for column in categorical if column not in features]
    if outside:
        raise ValueError(f"categorical columns {outside} are not in feature_columns")
    if values["target"] in features:
        raise ValueError(f"target {values['target']!r} is also a feature column")
    estimator = values.get("estimator") or "gradient_boosting"
    estimator_class(estimator, problem_type)
    objective = values.get("objective") or DEFAULT_OBJECTIVES[problem_type]
    if objective not in get_scorer_names():
        raise ValueError(f"objective {objective!r} is not a scikit-learn scorer name")
    seed = values.get("seed")
    return {
        "estimator": estimator,
        "target": values["target"],
        "feature_columns": features,
        "categorical": categorical,
        "problem_type": problem_type,
        "objective": objective,
        "positive_label": values.get("positive_label"),
        "seed": 0 if seed is None else int(seed),
    }


def _string_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        value = decode_value(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be a JSON list of column names; got {value!r}")
    return list(value)


def estimator_class(estimator: str, problem_type: str) -> type:
    """The scikit-learn class that ``estimator`` uses for ``problem_type``."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose from {', '.join(ESTIMATORS)}")
    spec = ESTIMATORS[estimator]
    cls = spec.classifier if problem_type in CLASSIFICATION else spec.regressor
    if cls is None:
        raise ValueError(f"estimator {estimator!r} cannot learn a {problem_type} problem")
    return cls


def check_hyperparameters(estimator: str, problem_type: str, names: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the hyperparameters ``estimator`` does not have."""
    cls = estimator_class(estimator, problem_type)
    valid = cls().get_params()
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise ValueError(
            f"{estimator} ({cls.__name__}) has no hyperparameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(valid))}"
        )


# ---------------------------------------------------------------- data
def read_training_frame(path: str | Path) -> pd.DataFrame:
    """Rows of a Parquet/CSV file, or of every such file under a folder in sorted path order."""
    path = Path(path)
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            (
                file
                for file in path.rglob("*")
                if file.is_file()
                and file.suffix.lower() in DATA_FILE_SUFFIXES
                and not any(part.startswith((".", "_")) for part in file.relative_to(path).parts)
            ),
            key=lambda file: file.relative_to(path).as_posix(),
        )
    if not files:
        raise FileNotFoundError(f"no {' or '.join(DATA_FILE_SUFFIXES)} files in {path}")
    frames = [pd.read_parquet(f) if f.suffix.lower() == ".parquet" else pd.read_csv(f) for f in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_fold_manifest(path: str | Path) -> dict[str, Any]:
    """The fold manifest in ``path``: a JSON file, or a folder holding exactly one."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.rglob("*.json"))
        if len(candidates) != 1:
            raise ValueError(f"expected one fold manifest .json in {path}; found {len(candidates)}")
        path = candidates[0]
    return json.loads(path.read_text(encoding="utf-8"))


def feature_frame(frame: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """The feature columns of ``frame``, in ``feature_columns`` order."""
    required = [*config["feature_columns"], config["target"]]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(
            f"training data lacks column(s) {', '.join(map(repr, missing))}; "
            f"it has {', '.join(map(str, frame.columns))}"
        )
    return frame[list(config["feature_columns"])]


def encode_target(labels: pd.Series, config: Mapping[str, Any]) -> tuple[np.ndarray, list[Any]]:
    """``y`` to fit on and the class labels in ``predict_proba`` column order.

    Classes become 0..n-1. Binary: the positive label is class 1, so ``roc_auc`` and friends
    score the positive class. Multiclass: labels in sorted order. Regression: numbers, no classes.
    """
    name = config["target"]
    if labels.isna().any():
        raise ValueError(f"target {name!r} has {int(labels.isna().sum())} missing values")
    if config["problem_type"] == "regression":
        return pd.to_numeric(labels, errors="raise").to_numpy(dtype=np.float64), []
    values = labels.to_numpy(dtype=object)
    classes = [_plain(label) for label in np.unique(values)]
    if config["problem_type"] == "binary":
        if len(classes) != 2:
            raise ValueError(f"binary target {name!r} has {len(classes)} classes: {classes}")
        positive = _positive_label(classes, config.get("positive_label"), name)
        classes = [next(label for label in classes if label != positive), positive]
    elif len(classes) < 2:
        raise ValueError(f"multiclass target {name!r} has only the class(es) {classes}")
    codes = pd.Categorical(values, categories=classes).codes.astype(np.int64)
    return codes, classes


def _positive_label(classes: list[Any], wanted: Any, name: str) -> Any:
    if wanted is None:
        return classes[1]  # scikit-learn's convention: the greater label is positive
    for label in classes:
        if label == wanted:
            return label
    for label in classes:  # "True." from the command line, or 1 for "1"
        if str(label) == str(wanted):
            return label
    raise ValueError(f"positive_label {wanted!r} is not a class of {name!r} (classes: {classes})")


def _plain(value: Any) -> Any:
    """numpy scalars -> Python values, so labels compare, hash and serialise as JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


# ---------------------------------------------------------------- model
def build_features(
    estimator: str, feature_columns: Sequence[str], categorical: Sequence[str]
) -> ColumnTransformer:
    """The unfitted ``features`` step of :func:`build_pipeline`.

    It depends on the data config only, never on the estimator's hyperparameters: that is why
    :class:`FoldScorer` can fit it once per fold and reuse it for every hyperparameter set.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose from {', '.join(ESTIMATORS)}")
    categorical = [column for column in feature_columns if column in set(categorical)]
    numeric = [column for column in feature_columns if column not in set(categorical)]
    transformers = []
    if categorical:
        as_text = FunctionTransformer(np.asarray, kw_args={"dtype": str}, feature_names_out="one-to-one")
        one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(
            ("categorical", Pipeline([("as_text", as_text), ("one_hot", one_hot)]), categorical)
        )
    if numeric:
        as_number = FunctionTransformer(
            np.asarray, kw_args={"dtype": np.float64}, feature_names_out="one-to-one"
        )
        steps = [("as_number", as_number)]
        if ESTIMATORS[estimator].scale_numeric:
            steps += [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        transformers.append(("numeric", Pipeline(steps), numeric))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def build_model(estimator: str, hyperparameters: Mapping[str, Any], problem_type: str, seed: int) -> Any:
    """The unfitted ``model`` step of :func:`build_pipeline`: the estimator with ``hyperparameters``
    (``random_state`` defaults to ``seed``)."""
    cls = estimator_class(estimator, problem_type)
    check_hyperparameters(estimator, problem_type, hyperparameters)
    params = dict(hyperparameters)
    if "random_state" in cls().get_params() and "random_state" not in params:
        params["random_state"] = seed
    return cls(**params)


def build_pipeline(
    estimator: str,
    hyperparameters: Mapping[str, Any],
    feature_columns: Sequence[str],
    categorical: Sequence[str],
    problem_type: str,
    seed: int,
) -> Pipeline:
    """An unfitted ``Pipeline(features -> model)`` taking a DataFrame of ``feature_columns``.

    Categorical columns are read as text and one-hot encoded (unseen values ignored); numeric
    columns are read as float64 (text such as "12.5" from a CSV request included) and, for
    linear models, imputed and standardised. Only scikit-learn and numpy objects are used, so
    the fitted pipeline unpickles wherever scikit-learn is installed.
    """
    model = build_model(estimator, hyperparameters, problem_type, seed)
    features = build_features(estimator, feature_columns, categorical)
    return Pipeline([("features", features), ("model", model)])


def fold_splits(
    folds: Mapping[str, Any] | Sequence[int], n_rows: int
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``(fold, train_rows, test_rows)`` for each fold of a manifest (or a list of fold ids).

    Fold ``f`` tests the rows with id ``f`` and trains on every other row, as scikit-learn's
    ``PredefinedSplit`` (rows with id -1 always train). A ``time`` manifest trains fold ``f``
    only on rows with ids ``< f``: the past of its test rows.
    """
    strategy = None
    if isinstance(folds, Mapping):
        strategy = folds.get("strategy")
        if "n_rows" in folds and folds["n_rows"] != n_rows:
            raise ValueError(
                f"fold manifest is for {folds['n_rows']} rows; the training data has {n_rows}"
            )
        folds = folds["folds"]
    ids = np.asarray(folds, dtype=np.int64)
    if ids.shape != (n_rows,):
        raise ValueError(f"fold manifest has {ids.size} fold ids; the training data has {n_rows} rows")
    tested = sorted(int(fold) for fold in np.unique(ids) if fold != TRAIN_ONLY_FOLD)
    if len(tested) < 2:
        raise ValueError(f"fold manifest has {len(tested)} test fold(s); cross-validation needs 2 or more")
    splits = []
    for fold in tested:
        train = np.flatnonzero(ids < fold) if strategy == "time" else np.flatnonzero(ids != fold)
        splits.append((fold, train, np.flatnonzero(ids == fold)))
    return splits


class FoldScorer:
    """Scores hyperparameter sets on the folds of one manifest, as ``cross_val_score`` would.

    A fold's ``features`` step (:func:`build_features`) does not depend on the hyperparameters,
    so it is fitted on the fold's training rows once, and the transformed training and test
    matrices are kept for every later hyperparameter set: a tuning job pays for feature
    preparation k times, not k times per trial. The ``model`` step is fitted on the kept
    matrices and scored on the fold's test rows with scikit-learn's scorer for the objective,
    which is exactly what a fitted ``Pipeline(features -> model)`` computes.

    Kept matrices cost about ``k * n_rows * n_encoded_columns * 8`` bytes; a scorer lives in
    one process (a tuning worker keeps one for its whole job).

    :param frame: the training rows, in the manifest's row order.
    :param folds: a fold manifest (``mlops.ml.folds``) or a list of fold ids.
    :param config: the data config (:func:`training_config` keys).
    """

    def __init__(
        self, frame: pd.DataFrame, folds: Mapping[str, Any] | Sequence[int], config: Mapping[str, Any]
    ) -> None:
        self.config = training_config(config)
        self.X = feature_frame(frame, self.config)
        self.y, self.classes = encode_target(frame[self.config["target"]], self.config)
        self.splits = fold_splits(folds, len(frame))
        self._prepared: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def folds(self) -> list[int]:
        """Fold ids in scoring order."""
        return [fold for fold, _, _ in self.splits]

    def prepared(self, position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(X_train, y_train, X_test, y_test)`` of the fold at ``position``, features fitted on its train rows."""
        if position not in self._prepared:
            _, train, test = self.splits[position]
            config = self.config
            features = build_features(config["estimator"], config["feature_columns"], config["categorical"])
            X_train = features.fit_transform(self.X.iloc[train], self.y[train])
            X_test = features.transform(self.X.iloc[test])
            self._prepared[position] = (X_train, self.y[train], X_test, self.y[test])
        return self._prepared[position]

    def score(self, position: int, hyperparameters: Mapping[str, Any]) -> float:
        """Fit ``hyperparameters`` on the fold at ``position``; its test score (greater is better)."""
        X_train, y_train, X_test, y_test = self.prepared(position)
        config = self.config
        model = build_model(config["estimator"], hyperparameters, config["problem_type"], config["seed"])
        model.fit(X_train, y_train)
        return float(get_scorer(config["objective"])(model, X_test, y_test))

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to a worker process without the kept matrices: it rebuilds what it needs.
        return {**self.__dict__, "_prepared": {}}


def _score_one(scorer: FoldScorer, position: int, hyperparameters: Mapping[str, Any]) -> float:
    return scorer.score(position, hyperparameters)


def cross_validate(
    frame: pd.DataFrame,
    folds: Mapping[str, Any] | Sequence[int],
    config: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    n_jobs: int = 1,
    on_fold: Callable[[int, float], None] | None = None,
    known: Mapping[int, float] | None = None,
) -> list[float]:
    """Score ``hyperparameters`` on every fold with scikit-learn's scorer for the objective.

    Equals ``cross_val_score(build_pipeline(...), X, y, cv=PredefinedSplit(folds))`` for
    non-time manifests. With ``n_jobs > 1`` folds are fitted in waves of ``n_jobs`` parallel
    worker processes (joblib's loky, whose workers stay up between calls). ``on_fold(fold,
    score)`` is called after each fold in fold order; if it raises (a pruned trial), the folds
    of later waves are never started and the error propagates. ``known`` maps fold ids to
    scores already computed (a checkpoint): those folds are not fitted again.
    """
    scorer = FoldScorer(frame, folds, config)
    check_hyperparameters(scorer.config["estimator"], scorer.config["problem_type"], hyperparameters)
    hyperparameters = dict(hyperparameters)
    known = dict(known or {})
    width = max(1, min(joblib.effective_n_jobs(n_jobs), len(scorer.splits)))
    todo = [position for position, (fold, _, _) in enumerate(scorer.splits) if fold not in known]
    computed: dict[int, float] = {}
    scores: list[float] = []
    for position, (fold, _, _) in enumerate(scorer.splits):
        if fold not in known and position not in computed:
            wave = todo[todo.index(position) : todo.index(position) + width]
            if width == 1:
                results = [scorer.score(position, hyperparameters)]
            else:
                results = joblib.Parallel(n_jobs=width)(
                    joblib.delayed(_score_one)(scorer, step, hyperparameters) for step in wave
                )
            computed.update(zip(wave, results))
        score = known[fold] if fold in known else computed[position]
        scores.append(score)
        if on_fold is not None:
            on_fold(fold, score)
    return scores


def fit_full(
    frame: pd.DataFrame, config: Mapping[str, Any], hyperparameters: Mapping[str, Any]
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on every row; return the fitted pipeline and its ``model.json`` description.

    A classifier's ``classes_`` are the original labels in ``predict_proba`` column order
    (binary: negative, positive), so ``predict`` answers with labels such as ``"True."``.
    """
    config = training_config(config)
    X = feature_frame(frame, config)
    y, classes = encode_target(frame[config["target"]], config)
    model = build_pipeline(
        config["estimator"], hyperparameters, config["feature_columns"], config["categorical"],
        config["problem_type"], config["seed"],
    )
    model.fit(X, y)
    if classes:
        model.steps[-1][1].classes_ = np.asarray(classes, dtype=object)
    meta = {
        "feature_columns": list(config["feature_columns"]),
        "categorical": list(config["categorical"]),
        "target": config["target"],
        "problem_type": config["problem_type"],
        "classes": classes,
        "positive_label": classes[1] if config["problem_type"] == "binary" else None,
        "framework": "sklearn",
        "framework_version": sklearn.__version__,
        "estimator": config["estimator"],
        "estimator_class": type(model.steps[-1][1]).__name__,
        "hyperparameters": _plain(dict(hyperparameters)),
        "objective": config["objective"],
        "seed": config["seed"],
        "n_rows": int(len(frame)),
    }
    return model, meta


def dump_model(estimator: Any, path: str | Path) -> None:
    """Pickle ``estimator`` to ``path`` with the standard library's C pickler; ``joblib.load`` reads it.

    Not ``joblib.dump``: joblib pickles with the pure-Python pickler, whose dispatch table dill
    extends when it is imported (Airflow imports it in every task process), so the slices and
    builtin types in a fitted pipeline were written as ``dill._dill`` calls and the artifact
    loaded only where dill is installed, which the scikit-learn container is not. dill never
    touches the C pickler.
    """
    with open(path, "wb") as handle:
        pickle.dump(estimator, handle, protocol=pickle.HIGHEST_PROTOCOL)


def save_model(estimator: Any, meta: Mapping[str, Any], model_dir: str | Path) -> Path:
    """Write ``model.joblib`` and ``model.json`` into ``model_dir`` (created if missing)."""
    directory = Path(model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    dump_model(estimator, directory / "model.joblib")
    (directory / "model.json").write_text(
        json.dumps(_plain(dict(meta)), indent=2, sort_keys=True), encoding="utf-8"
    )
    return directory


# ---------------------------------------------------------------- metric lines
def fold_metric_line(fold: int, objective: str, score: float) -> str:
    return f"fold={fold} {objective}={score:.6f};"


def running_mean_line(objective: str, mean: float) -> str:
    """The objective's mean over the folds scored so far (SageMaker's HPO objective metric)."""
    return f"cv_mean {objective}={mean:.6f};"


def metric_definitions(objective: str, k: int = 0) -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions`` capturing the lines this script prints.

    ``cv_mean:<objective>`` is the metric an HPO job maximises. The script prints it after
    every fold as the running mean over the folds so far, so SageMaker's early stopping
    (``TrainingJobEarlyStoppingType=Auto``) sees one value per fold, like the local tuner's
    pruner; the final value, which SageMaker reports for the job, is the mean over all k folds.
    ``fold_<i>:<objective>`` captures each fold's score, ``cv_std:<objective>`` the spread.
    """
    name = re.escape(objective)
    definitions = [
        {"Name": f"cv_mean:{objective}", "Regex": rf"cv_mean {name}={NUMBER_PATTERN};"},
        {"Name": f"cv_std:{objective}", "Regex": rf"cv_std {name}={NUMBER_PATTERN};"},
    ]
    definitions += [
        {"Name": f"fold_{fold}:{objective}", "Regex": rf"fold={fold} {name}={NUMBER_PATTERN};"}
        for fold in range(k)
    ]
    return definitions


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{name} must be true or false; got {value!r}")


# ---------------------------------------------------------------- spot checkpoints
def fold_checkpoint(
    directory: Path, manifest: Mapping[str, Any], config: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
) -> Path | None:
    """Where finished fold scores are kept for this request, or ``None`` without a checkpoint folder.

    SageMaker syncs ``/opt/ml/checkpoints`` with the job's ``CheckpointConfig.S3Uri``, so a
    managed spot job that is interrupted and restarted finds the folds it already scored. The
    file name is a digest of the folds, the data config and the hyperparameters: a checkpoint
    of another request is never read.
    """
    if not directory.is_dir():
        return None
    request = {"folds": list(manifest["folds"]), "config": dict(config), "hyperparameters": dict(hyperparameters)}
    digest = hashlib.sha256(json.dumps(_plain(request), sort_keys=True).encode()).hexdigest()[:16]
    return directory / f"cv-{digest}.json"


def read_fold_checkpoint(path: Path | None) -> dict[int, float]:
    if path is None or not path.exists():
        return {}
    return {int(fold): float(score) for fold, score in json.loads(path.read_text())["scores"].items()}


def write_fold_checkpoint(path: Path, scores: Mapping[int, float]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"scores": {str(k): v for k, v in sorted(scores.items())}}))
    partial.replace(path)


# ---------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run a training job as SageMaker does: CV on the fold manifest if given, then the final fit.

    ``--final_fit false`` skips the final fit (an HPO trial only needs its CV score; the refit
    is a training job of its own). Folds run in parallel over ``SM_NUM_CPUS`` processes.
    """
    values = parse_hyperparameters(sys.argv[1:] if argv is None else list(argv))
    config_values, hyperparameters = split_hyperparameters(values)
    config = training_config(config_values)
    final_fit = _flag(config_values.get("final_fit", True), "final_fit")
    check_hyperparameters(config["estimator"], config["problem_type"], hyperparameters)
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    train_dir = Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    folds_dir = os.environ.get("SM_CHANNEL_FOLDS")
    if folds_dir is None and Path("/opt/ml/input/data/folds").exists():
        folds_dir = "/opt/ml/input/data/folds"
    n_jobs = max(1, int(os.environ.get("SM_NUM_CPUS") or 1))
    checkpoint_dir = Path(os.environ.get("MLOPS_CHECKPOINT_DIR", "/opt/ml/checkpoints"))
    if not folds_dir and not final_fit:
        raise ValueError("final_fit=false needs a folds channel: there would be nothing to do")

    frame = read_training_frame(train_dir)
    objective = config["objective"]
    print(
        f"training {config['estimator']} ({config['problem_type']}) on {len(frame)} rows, "
        f"hyperparameters {json.dumps(hyperparameters, sort_keys=True)}",
        flush=True,
    )
    metrics: dict[str, Any] = {
        "objective": objective,
        "estimator": config["estimator"],
        "hyperparameters": hyperparameters,
        "n_rows": int(len(frame)),
    }
    if folds_dir:
        manifest = read_fold_manifest(folds_dir)
        checkpoint = fold_checkpoint(checkpoint_dir, manifest, config, hyperparameters)
        known = read_fold_checkpoint(checkpoint)
        if known:
            print(f"resuming from {checkpoint}: folds {sorted(known)} already scored", flush=True)
        so_far: list[float] = []

        def on_fold(fold: int, score: float) -> None:
            so_far.append(score)
            print(fold_metric_line(fold, objective, score), flush=True)
            print(running_mean_line(objective, float(np.mean(so_far))), flush=True)
            if checkpoint is not None and fold not in known:
                known[fold] = score
                write_fold_checkpoint(checkpoint, known)

        scores = cross_validate(
            frame, manifest, config, hyperparameters, n_jobs=n_jobs, on_fold=on_fold, known=dict(known)
        )
        mean, std = float(np.mean(scores)), float(np.std(scores))
        print(f"cv_std {objective}={std:.6f};", flush=True)
        metrics.update(k=len(scores), fold_scores=scores, cv_mean=mean, cv_std=std,
                       fold_manifest_k=manifest.get("k"), fold_manifest_seed=manifest.get("seed"),
                       dataset_digest=manifest.get("dataset_digest"))

    if final_fit:
        estimator, meta = fit_full(frame, config, hyperparameters)
        save_model(estimator, meta, model_dir)
        print(f"model written to {model_dir}", flush=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(
        json.dumps(_plain(metrics), indent=2, sort_keys=True), encoding="utf-8"
    )
    return metrics


def write_failure(error: BaseException, output_dir: str | Path | None = None) -> None:
    """Write ``error`` to SageMaker's failure file, which the job reports as its ``FailureReason``.

    The container's toolkit runs this script without capturing its stderr, so the failure it
    would write itself only says the script exited 1; it keeps a failure file that exists.
    """
    directory = Path(output_dir or os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    if directory.is_dir():
        (directory / "failure").write_text(f"{type(error).__name__}: {error}"[:1024], encoding="utf-8")


if __name__ == "__main__":
    try:
        main()
    except Exception as err:
        write_failure(err)
        raise
