"""The training rows, the fold manifest, the feature columns and the encoded target."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import DATA_FILE_SUFFIXES, TRAIN_ONLY_FOLD, _plain
from .messages import name_list


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
            f"training data lacks column(s) {name_list(missing)}; it has {name_list(frame.columns)}"
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
