"""Hyperparameter tuning over k-fold CV: the project's local tuner against the strongest fair peers.

    .venv/bin/python benchmarks/bench_tuning.py [--rows 50000] [--trials 12] [--folds 5] [--naive]

All sides tune the churn pipeline (``include/pipelines/churn.yaml``: its estimator, feature
columns, objective ``roc_auc`` and search space) on the same synthetic churn rows
(``include/data/generate.py``), with the same trial budget and the same stratified fold
manifest (``mlops.ml.folds``), in this one process, one after another:

* **project**: ``OptunaTuner(n_jobs=2)`` from ``mlops.backends.local.training`` -- TPE sampler,
  trials raced fold by fold, folds in two worker processes that keep each fold's prepared
  features and binning for every trial; reads the rows from Parquet like a tuning job does,
  and writes its history.
* **halving**: scikit-learn's ``HalvingRandomSearchCV(pipeline, n_candidates=trials,
  cv=PredefinedSplit(folds), n_jobs=2, refit=False, min_resources="exhaust")`` over the same
  ranges (log-uniform where the config says ``log``; rows as the resource, factor 3;
  ``"exhaust"`` so that the last rung fits every row -- the default, ``"smallest"``, would end
  on 180 rows and a best score that is not comparable). Its
  best score is the best mean CV of the last rung (the only one on all rows: ``best_index_``).
* **optuna**: Optuna's TPE sampler (same seed and start-up trials as the project) with
  ``MedianPruner()`` and ``study.optimize(n_jobs=2)``; each trial fits the pipeline fold by fold
  and reports its running mean after every fold, so the pruner acts per fold.
* **naive** (``--naive``, the old secondary baseline): the same TPE, no pruning, each trial a
  ``cross_val_score`` over the same folds, one after another.

Wall-clock times include everything each approach needs (worker start-up, reading the Parquet
file for the project). The machine may be shared: ``os.getloadavg()`` is printed before and
after every side, and so are the CPU seconds each side used (this process and its reaped
worker processes: the project's pool and joblib's loky workers are shut down after their side),
which a loaded machine distorts less than wall time. The last line is ``vs_best_peer=<t_fastest_peer / t_project>
vs_halving=... vs_optuna=... score_delta=<project best mean CV - best of the peers'>``.
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
    """An integer distribution for the scikit-learn searches: log-uniform on [low, high], rounded."""

    def __init__(self, low: int, high: int) -> None:
        from scipy.stats import loguniform

        self.low, self.high = low, high
        self.dist = loguniform(low, high + 1)

    def rvs(self, random_state=None):
        return int(min(self.high, max(self.low, int(self.dist.rvs(random_state=random_state)))))


def distributions(space: dict) -> dict:
    """The config's search space as ``HalvingRandomSearchCV`` distributions on the pipeline's model step."""
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
    parser.add_argument("--naive", action="store_true",
                        help="also time the old sequential baseline (TPE + cross_val_score, one after another)")
    args = parser.parse_args(argv)

    import numpy as np
    import optuna
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import HalvingRandomSearchCV, PredefinedSplit, cross_val_score

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

    def load() -> str:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())

    def cpu_seconds() -> float:
        import resource

        return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for field in ("ru_utime", "ru_stime"))

    # ---- project: the local tuner, as the train_model DAG runs it
    print(f"project: start, {load()}", flush=True)
    start, cpu = time.perf_counter(), cpu_seconds()
    result = OptunaTuner(n_jobs=2).tune("bench", data, space, args.trials, (work / "out").as_uri())
    t_project, cpu_project = time.perf_counter() - start, cpu_seconds() - cpu
    history = storage.read_json(result.history_uri)
    pruned = sum(t["state"] == "PRUNED" for t in history["trials"])
    print(f"project: {t_project:.1f} s, best mean {result.best.mean:.5f}, {pruned} of {args.trials} trials "
          f"pruned, {history['fold_fits']} of {args.trials * args.folds} fold fits used "
          f"({history['fold_fits_started']} started, {history['fold_fit_seconds']:.0f} s of fitting), "
          f"best {json.dumps(result.best.hyperparameters, sort_keys=True)}; {cpu_project:.0f} CPU s; {load()}",
          flush=True)

    if args.project_only:
        return
    train = training_entry_point()
    train_config = train.training_config(data.to_dict())
    X = train.feature_frame(frame, train_config)
    y, _ = train.encode_target(frame[config.target], train_config)
    folds = np.asarray(manifest["folds"])
    cv = PredefinedSplit(folds)
    splits = list(cv.split())

    def pipeline(hyperparameters):
        return train.build_pipeline(training["estimator"], hyperparameters, config.feature_columns,
                                    categorical, config.problem_type, SEED)

    from mlops.backends.base import validate_search_space
    from mlops.backends.local.training import _suggest

    checked = validate_search_space(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = max(2, min(10, args.trials // 2))  # the project's TPE start-up trials

    # ---- halving: HalvingRandomSearchCV, two processes
    print(f"halving: start, {load()}", flush=True)
    from joblib.externals.loky import get_reusable_executor

    start, cpu = time.perf_counter(), cpu_seconds()
    search = HalvingRandomSearchCV(pipeline({}), distributions(space), n_candidates=args.trials, cv=cv,
                                   scoring=training["objective"], n_jobs=2, refit=False, random_state=SEED,
                                   min_resources="exhaust")
    search.fit(X, y)
    t_halving = time.perf_counter() - start
    get_reusable_executor().shutdown(wait=True)  # reap the loky workers: their CPU time is counted
    cpu_halving = cpu_seconds() - cpu
    best_halving = float(search.cv_results_["mean_test_score"][search.best_index_])
    fits = int(sum(search.n_candidates_)) * args.folds
    print(f"halving: {t_halving:.1f} s, best mean {best_halving:.5f} (rungs: {search.n_candidates_} candidates "
          f"on {search.n_resources_} rows; {fits} fold fits); {cpu_halving:.0f} CPU s; {load()}", flush=True)

    # ---- optuna: TPE + MedianPruner per fold, two threads
    from optuna.trial import TrialState

    print(f"optuna: start, {load()}", flush=True)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
        seed=SEED, n_startup_trials=startup), pruner=optuna.pruners.MedianPruner())
    scorer = get_scorer(training["objective"])

    def pruned_objective(trial):
        params = {name: _suggest(trial, name, spec) for name, spec in checked.items()}
        scores = []
        for step, (fit_rows, test_rows) in enumerate(splits):
            model = pipeline(params).fit(X.iloc[fit_rows], y[fit_rows])
            scores.append(scorer(model, X.iloc[test_rows], y[test_rows]))
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    start, cpu = time.perf_counter(), cpu_seconds()
    study.optimize(pruned_objective, n_trials=args.trials, n_jobs=2)
    t_optuna, cpu_optuna = time.perf_counter() - start, cpu_seconds() - cpu
    optuna_pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    print(f"optuna: {t_optuna:.1f} s, best mean {study.best_value:.5f}, {optuna_pruned} of {args.trials} "
          f"trials pruned; {cpu_optuna:.0f} CPU s; {load()}", flush=True)

    peers = {"halving": (t_halving, best_halving), "optuna": (t_optuna, study.best_value)}
    if args.naive:
        # ---- naive: the old sequential baseline, TPE + cross_val_score per trial, one after another
        print(f"naive: start, {load()}", flush=True)
        naive = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
            seed=SEED, n_startup_trials=startup))

        def objective(trial):
            params = {name: _suggest(trial, name, spec) for name, spec in checked.items()}
            return float(np.mean(cross_val_score(pipeline(params), X, y, cv=cv, scoring=training["objective"])))

        start = time.perf_counter()
        naive.optimize(objective, n_trials=args.trials)
        t_naive = time.perf_counter() - start
        print(f"naive: {t_naive:.1f} s, best mean {naive.best_value:.5f}; {load()}", flush=True)
        print(f"vs_naive={t_naive / t_project:.2f}", flush=True)

    fastest = min(seconds for seconds, _ in peers.values())
    score_delta = result.best.mean - max(score for _, score in peers.values())
    print(f"vs_best_peer={fastest / t_project:.2f} vs_halving={t_halving / t_project:.2f} "
          f"vs_optuna={t_optuna / t_project:.2f} score_delta={score_delta:.4f} cpu_vs_halving="
          f"{cpu_halving / cpu_project:.2f} cpu_vs_optuna={cpu_optuna / cpu_project:.2f}", flush=True)


if __name__ == "__main__":
    main()
