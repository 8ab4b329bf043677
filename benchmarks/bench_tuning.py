"""Hyperparameter tuning over k-fold CV: the project's local tuner against two plain baselines.

    .venv/bin/python benchmarks/bench_tuning.py [--rows 50000] [--trials 12] [--folds 5]

All three tune the churn pipeline (``include/pipelines/churn.yaml``: its estimator, feature
columns, objective ``roc_auc`` and search space) on the same synthetic churn rows
(``include/data/generate.py``), with the same trial budget and the same stratified fold
manifest (``mlops.ml.folds``), so they score the same model on the same folds:

* **project**: ``OptunaTuner(n_jobs=2)`` from ``mlops.backends.local.training`` — TPE sampler,
  trials raced fold by fold (a trial stops after its first fold unless its running mean is
  among the best quarter there, and after a later fold if it falls below the median of the
  trials that reached it), folds in two worker processes that fit each fold's feature
  preparation once; reads the rows from Parquet like a
  tuning job does, and writes its history.
* **naive**: the textbook loop — Optuna's TPE sampler (same seed, no pruning), each trial
  ``cross_val_score(pipeline, X, y, cv=PredefinedSplit(folds))`` run one after another with
  scikit-learn's default threading.
* **randomized**: ``RandomizedSearchCV(pipeline, n_iter=trials, cv=PredefinedSplit(folds),
  n_jobs=2, refit=False)`` over the same ranges (log-uniform where the config says ``log``).
  ``refit=False`` because none of the three refits here: the refit is a step of its own.

Budget: 50,000 rows, 5 folds (the config's k), 12 trials — chosen to finish in under five
minutes on a 2-core machine; the naive loop takes most of it. Wall-clock times include
everything each approach needs (worker start-up, reading the Parquet file for the project).

The last line is ``vs_naive=<t_naive/t_project> vs_randomized=<t_randomized/t_project>
score_delta=<project best mean CV - best mean CV of the other two>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp(prefix="bench-tuning-"))
os.environ["MLOPS_BACKEND"] = "local"
os.environ.pop("MLOPS_DATA_URI", None)

SEED = 42


class LogUniformInt:
    """An integer distribution for ``RandomizedSearchCV``: log-uniform on [low, high], rounded."""

    def __init__(self, low: int, high: int) -> None:
        from scipy.stats import loguniform

        self.low, self.high = low, high
        self.dist = loguniform(low, high + 1)

    def rvs(self, random_state=None):
        return int(min(self.high, max(self.low, int(self.dist.rvs(random_state=random_state)))))


def distributions(space: dict) -> dict:
    """The config's search space as ``RandomizedSearchCV`` distributions on the pipeline's model step."""
    from scipy.stats import loguniform, randint, uniform

    result = {}
    for name, spec in space.items():
        key = f"model__{name}"
        if spec["type"] == "categorical":
            result[key] = list(spec["choices"])
        elif spec["type"] == "int":
            result[key] = LogUniformInt(spec["low"], spec["high"]) if spec.get("log") else randint(
                spec["low"], spec["high"] + 1)
        else:
            result[key] = loguniform(spec["low"], spec["high"]) if spec.get("log") else uniform(
                spec["low"], spec["high"] - spec["low"])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--project-only", action="store_true",
                        help="time only the project's tuner (no ratio line)")
    args = parser.parse_args(argv)

    import numpy as np
    import optuna
    from sklearn.model_selection import PredefinedSplit, RandomizedSearchCV, cross_val_score

    from include.data.generate import churn
    from mlops.backends.base import TrainingData
    from mlops.backends.local.training import OptunaTuner, training_entry_point
    from mlops.core import storage
    from mlops.core.config import load_pipeline
    from mlops.ml.folds import fold_manifest

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = load_pipeline("churn")
    training = config.section("training")
    space = training["search_space"]
    categorical = list(config.schema.get("categorical", []))
    frame = churn(args.rows, seed=7)[[*config.feature_columns, config.target]]
    manifest = fold_manifest(frame, config.target, args.folds, SEED)
    print(f"rows={len(frame)} folds={args.folds} trials={args.trials} estimator={training['estimator']} "
          f"objective={training['objective']} cpus={os.cpu_count()} search_space={json.dumps(space)}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-tuning-data-"))
    frame.to_parquet(work / "train.parquet", index=False)
    storage.write_json((work / "folds.json").as_uri(), manifest)
    data = TrainingData(
        train_uri=(work / "train.parquet").as_uri(), folds_uri=(work / "folds.json").as_uri(),
        target=config.target, feature_columns=config.feature_columns, categorical=categorical,
        problem_type=config.problem_type, estimator=training["estimator"], objective=training["objective"],
        positive_label=config.schema.get("positive_label"), seed=SEED,
    )

    # ---- project: the local tuner, as the train_model DAG runs it
    start = time.perf_counter()
    result = OptunaTuner(n_jobs=2).tune("bench", data, space, args.trials, (work / "out").as_uri())
    t_project = time.perf_counter() - start
    history = storage.read_json(result.history_uri)
    pruned = sum(t["state"] == "PRUNED" for t in history["trials"])
    print(f"project: {t_project:.1f} s, best mean {result.best.mean:.5f}, {pruned} of {args.trials} trials "
          f"pruned, {history['fold_fits']} of {args.trials * args.folds} fold fits used "
          f"({history['fold_fits_started']} started, {history['fold_fit_seconds']:.0f} s of fitting), "
          f"best {json.dumps(result.best.hyperparameters, sort_keys=True)}", flush=True)

    if args.project_only:
        return
    train = training_entry_point()
    train_config = train.training_config(data.to_dict())
    X = train.feature_frame(frame, train_config)
    y, _ = train.encode_target(frame[config.target], train_config)
    cv = PredefinedSplit(np.asarray(manifest["folds"]))

    def pipeline(hyperparameters):
        return train.build_pipeline(training["estimator"], hyperparameters, config.feature_columns,
                                    categorical, config.problem_type, SEED)

    # ---- (b) RandomizedSearchCV, two processes
    start = time.perf_counter()
    search = RandomizedSearchCV(pipeline({}), distributions(space), n_iter=args.trials, cv=cv,
                                scoring=training["objective"], n_jobs=2, refit=False, random_state=SEED)
    search.fit(X, y)
    t_randomized = time.perf_counter() - start
    best_randomized = float(np.max(search.cv_results_["mean_test_score"]))
    print(f"randomized: {t_randomized:.1f} s, best mean {best_randomized:.5f}", flush=True)

    # ---- (a) the naive loop: TPE, cross_val_score per trial, sequential
    from mlops.backends.base import validate_search_space
    from mlops.backends.local.training import _suggest

    checked = validate_search_space(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
        seed=SEED, n_startup_trials=max(2, min(10, args.trials // 2))))

    def objective(trial):
        params = {name: _suggest(trial, name, spec) for name, spec in checked.items()}
        return float(np.mean(cross_val_score(pipeline(params), X, y, cv=cv, scoring=training["objective"])))

    start = time.perf_counter()
    study.optimize(objective, n_trials=args.trials)
    t_naive = time.perf_counter() - start
    print(f"naive: {t_naive:.1f} s, best mean {study.best_value:.5f}", flush=True)

    score_delta = result.best.mean - max(best_randomized, study.best_value)
    print(f"vs_naive={t_naive / t_project:.2f} vs_randomized={t_randomized / t_project:.2f} "
          f"score_delta={score_delta:.4f}", flush=True)


if __name__ == "__main__":
    main()
