"""Hyperparameters as SageMaker passes them, the data config, and the estimator families."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import get_scorer_names

from .messages import name_list

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
            f"{estimator} ({cls.__name__}) has no hyperparameter(s) {name_list(unknown)}; "
            f"valid: {', '.join(sorted(valid))}"
        )



def _plain(value: Any) -> Any:
    """numpy scalars -> Python values, so labels compare, hash and serialise as JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value



def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{name} must be true or false; got {value!r}")
