"""k-fold scoring on a fold manifest, the metric lines SageMaker captures, and spot checkpoints."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import get_scorer

from .binning import share_binning
from .config import NUMBER_PATTERN, _plain, check_hyperparameters, training_config
from .data import encode_target, feature_frame, fold_splits
from .model import build_features, build_model


class FoldScorer:
    """Scores hyperparameter sets on the folds of one manifest, as ``cross_val_score`` would.

    A fold's ``features`` step (:func:`build_features`) does not depend on the hyperparameters,
    so it is fitted on the fold's training rows once, and the transformed training and test
    matrices are kept for every later hyperparameter set: a tuning job pays for feature
    preparation k times, not k times per trial. The ``model`` step is fitted on the kept
    matrices and scored on the fold's test rows with scikit-learn's scorer for the objective,
    which is exactly what a fitted ``Pipeline(features -> model)`` computes. A histogram gradient
    boosting model's own binning of a fold's rows is kept the same way (:mod:`.binning`: reused
    only when the rows and binning parameters are identical, so scores are bit-for-bit the same).

    Kept matrices cost about ``k * n_rows * n_encoded_columns * 8`` bytes; a scorer lives in
    one process (a tuning worker keeps one for its whole job).

    :param frame: the training rows, in the manifest's row order.
    :param folds: a fold manifest (``mlops.ml.folds``) or a list of fold ids.
    :param config: the data config (:func:`training_config` keys).
    :param share_binning: keep and reuse the model's binning per fold (False: bin at every fit).
    """

    def __init__(
        self, frame: pd.DataFrame, folds: Mapping[str, Any] | Sequence[int], config: Mapping[str, Any],
        share_binning: bool = True,
    ) -> None:
        self.config = training_config(config)
        self.X = feature_frame(frame, self.config)
        self.y, self.classes = encode_target(frame[self.config["target"]], self.config)
        self.splits = fold_splits(folds, len(frame))
        self.share_binning = share_binning
        self._prepared: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._binning: dict[int, dict] = {}

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
            if config["estimator"] == "gradient_boosting" and isinstance(X_test, np.ndarray):
                # Boosted trees are walked one tree over every row at a time: column-major test
                # rows score about twice as fast, with the same numbers (a linear model's sums
                # could round differently, so only trees get it).
                X_test = np.asfortranarray(X_test)
            self._prepared[position] = (X_train, self.y[train], X_test, self.y[test])
        return self._prepared[position]

    def score(self, position: int, hyperparameters: Mapping[str, Any]) -> float:
        """Fit ``hyperparameters`` on the fold at ``position``; its test score (greater is better)."""
        X_train, y_train, X_test, y_test = self.prepared(position)
        config = self.config
        model = build_model(config["estimator"], hyperparameters, config["problem_type"], config["seed"])
        if self.share_binning:
            share_binning(model, self._binning.setdefault(position, {}))
        model.fit(X_train, y_train)
        return float(get_scorer(config["objective"])(model, X_test, y_test))

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to a worker process without the kept matrices: it rebuilds what it needs.
        return {**self.__dict__, "_prepared": {}, "_binning": {}}


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
