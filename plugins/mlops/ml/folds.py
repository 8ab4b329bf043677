"""Fold manifests: which rows each cross-validation fold tests on, fixed before any training.

A manifest is small JSON written next to the training data, so every trial of a tuning job,
every backend and every retry scores the same folds::

    {"k": 5, "seed": 42, "strategy": "stratified", "dataset_digest": "<sha256>",
     "n_rows": 4000, "folds": [3, 0, 4, ...]}

``folds[i]`` is the fold that tests row ``i`` of the training data, in file order. For the
``stratified``, ``kfold`` and ``group`` strategies every row is tested exactly once and trains
in the other k - 1 folds (scikit-learn's ``PredefinedSplit(folds)``). For ``time`` the rows
are cut into k + 1 blocks in time order as ``TimeSeriesSplit`` does: the earliest block has
fold ``-1`` (never tested) and fold ``i`` trains only on rows of folds ``< i``, so no fold
learns from its future. ``include/training/train.py`` reads manifests with these rules.

Assignments come from scikit-learn's own splitters, so the project's CV is scikit-learn's CV.
This module imports pandas, numpy and scikit-learn: import it inside tasks only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.messages import name_list

STRATEGIES = ("stratified", "kfold", "group", "time")
TRAIN_ONLY = -1  # fold id of the rows a ``time`` manifest never tests on


def dataset_digest(frame: pd.DataFrame) -> str:
    """sha256 of a canonical serialisation of ``frame``'s rows and columns.

    Stable across file formats and pandas versions for the same values: columns are taken in
    name order with the index ignored; integers are hashed as int64, other numbers as float64
    (all NaNs alike), booleans as bytes, everything else as UTF-8 text with missing values
    marked. Row order matters, because fold manifests refer to rows by position.
    """
    digest = hashlib.sha256()
    digest.update(f"rows={len(frame)};columns={frame.shape[1]};".encode())
    for name in sorted(frame.columns, key=str):
        column = frame[name]
        kind, payload = _canonical_bytes(column)
        digest.update(f"{len(str(name))}:{name}:{kind}:".encode())
        digest.update(hashlib.sha256(payload).digest())
    return digest.hexdigest()


def _canonical_bytes(column: pd.Series) -> tuple[str, bytes]:
    missing = column.isna().to_numpy()
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        values = np.where(missing, 2, column.fillna(False).astype(bool).to_numpy(dtype=np.uint8))
        return "b", values.astype(np.uint8).tobytes()
    if pd.api.types.is_integer_dtype(dtype) and not missing.any():
        return "i", column.to_numpy(dtype="<i8").tobytes()
    if pd.api.types.is_numeric_dtype(dtype):
        values = column.to_numpy(dtype="<f8", na_value=np.nan)
        values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
        return "f", values.astype("<f8").tobytes()
    texts = ["\x00" if gap else str(value) for value, gap in zip(column.tolist(), missing)]
    return "s", "\x1e".join(texts).encode("utf-8", errors="surrogatepass")


def holdout_split(
    frame: pd.DataFrame, target: str, fraction: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off ``fraction`` of the rows as a holdout set, deterministically for ``seed``.

    Both parts keep the rows' original order and get a fresh 0..n-1 index.
    ``stratify=True`` keeps the class ratios of ``target`` in both parts.
    """
    from sklearn.model_selection import train_test_split

    _require_columns(frame, [target], "holdout_split")
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be between 0 and 1 (exclusive); got {fraction}")
    n_holdout = int(np.ceil(fraction * len(frame)))
    if n_holdout < 1 or n_holdout >= len(frame):
        raise ValueError(
            f"holdout fraction {fraction} of {len(frame)} rows leaves an empty train or holdout set"
        )
    labels = None
    if stratify:
        labels = _labels(frame, target)
        counts = labels.value_counts()
        rare = counts[counts < 2]
        if len(rare):
            raise ValueError(
                f"cannot stratify the holdout on {target!r}: classes with fewer than 2 rows: "
                + _describe_counts(rare)
            )
        if n_holdout < len(counts) or len(frame) - n_holdout < len(counts):
            raise ValueError(
                f"holdout fraction {fraction} of {len(frame)} rows cannot hold each of the "
                f"{len(counts)} classes of {target!r} in both parts"
            )
    positions = np.arange(len(frame))
    train_pos, holdout_pos = train_test_split(
        positions, test_size=n_holdout, random_state=seed, shuffle=True,
        stratify=None if labels is None else labels.to_numpy(),
    )
    train = frame.iloc[np.sort(train_pos)].reset_index(drop=True)
    holdout = frame.iloc[np.sort(holdout_pos)].reset_index(drop=True)
    return train, holdout


def fold_manifest(
    frame: pd.DataFrame,
    target: str,
    k: int,
    seed: int,
    strategy: str = "stratified",
    group_column: str | None = None,
    time_column: str | None = None,
) -> dict[str, Any]:
    """Assign every row of ``frame`` to one of ``k`` cross-validation folds.

    :param strategy: ``stratified`` (``StratifiedKFold``, shuffled with ``seed``: class ratios
        kept in every fold), ``kfold`` (``KFold``, shuffled), ``group`` (``GroupKFold``: all
        rows of a ``group_column`` value in one fold, folds balanced by size) or ``time``
        (``TimeSeriesSplit`` over the rows sorted by ``time_column``; see the module doc).
    :return: ``{k, seed, strategy, dataset_digest, n_rows, folds}``.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

    if strategy not in STRATEGIES:
        raise ValueError(f"fold strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer of at least 2 folds; got {k!r}")
    n_rows = len(frame)
    _require_columns(frame, [target], "fold_manifest")
    if k > n_rows:
        raise ValueError(f"k={k} folds need at least {k} rows; the frame has {n_rows}")

    positions = np.arange(n_rows)
    folds = np.full(n_rows, TRAIN_ONLY, dtype=int)
    if strategy == "stratified":
        labels = _labels(frame, target)
        counts = labels.value_counts()
        rare = counts[counts < k]
        if len(rare):
            hint = "; a continuous target needs strategy='kfold'" if labels.dtype.kind == "f" else ""
            raise ValueError(
                f"stratified k={k} folds need at least {k} rows of every class of {target!r}; "
                f"too few rows for: {_describe_counts(rare)}{hint}"
            )
        splits = StratifiedKFold(k, shuffle=True, random_state=seed).split(positions, labels.to_numpy())
    elif strategy == "kfold":
        splits = KFold(k, shuffle=True, random_state=seed).split(positions)
    elif strategy == "group":
        if group_column is None:
            raise ValueError("the group fold strategy needs group_column")
        _require_columns(frame, [group_column], "fold_manifest (group_column)")
        groups = frame[group_column]
        if groups.isna().any():
            raise ValueError(f"group column {group_column!r} has missing values")
        n_groups = groups.nunique()
        if n_groups < k:
            raise ValueError(
                f"group k={k} folds need at least {k} distinct values of {group_column!r}; "
                f"found {n_groups}"
            )
        splits = GroupKFold(k).split(positions, groups=groups.astype(str).to_numpy())
    else:
        if time_column is None:
            raise ValueError("the time fold strategy needs time_column")
        _require_columns(frame, [time_column], "fold_manifest (time_column)")
        if frame[time_column].isna().any():
            raise ValueError(f"time column {time_column!r} has missing values")
        if n_rows < k + 1:
            raise ValueError(f"time k={k} folds need at least {k + 1} rows; the frame has {n_rows}")
        order = np.argsort(frame[time_column].to_numpy(), kind="stable")
        splits = ((order[train], order[test]) for train, test in TimeSeriesSplit(k).split(order))

    for fold, (_, test) in enumerate(splits):
        folds[test] = fold
    return {
        "k": int(k),
        "seed": int(seed),
        "strategy": strategy,
        "dataset_digest": dataset_digest(frame),
        "n_rows": int(n_rows),
        "folds": folds.tolist(),
    }


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON: names the exact folds a score was computed on, so
    tuning trials, the refit's lineage and later comparisons can show they used the same ones."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _describe_counts(counts: pd.Series, shown: int = 5) -> str:
    text = ", ".join(f"{label!r} ({count})" for label, count in counts.head(shown).items())
    return text if len(counts) <= shown else f"{text} and {len(counts) - shown} more"


def _labels(frame: pd.DataFrame, target: str) -> pd.Series:
    labels = frame[target]
    if labels.isna().any():
        raise ValueError(f"target {target!r} has {int(labels.isna().sum())} missing values")
    return labels


def _require_columns(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: column(s) {name_list(missing)} not in the frame (columns: {name_list(frame.columns)})"
        )
