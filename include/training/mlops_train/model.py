"""The model: the pipeline (features -> estimator), the fit on every row, the model files."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from .config import ESTIMATORS, _plain, check_hyperparameters, estimator_class, training_config
from .data import encode_target, feature_frame


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
