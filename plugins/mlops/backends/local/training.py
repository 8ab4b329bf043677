"""Local twins of SageMaker training and hyperparameter tuning.

Both run ``include/training/train.py``, the entry point SageMaker's scikit-learn container runs,
loaded here by file path: there is one implementation of the training logic.

* :class:`LocalTrainer` is a training job: fit on every row, write ``model.tar.gz`` where
  SageMaker would (``<output_uri>/<job_name>/output/model.tar.gz``) and a job description;
  a completed job of the same name is reused, not retrained.
* :class:`OptunaTuner` is an HPO job: Optuna's seeded TPE sampler over the config's search space;
  each trial scores the k folds of the fold manifest, trials race fold by fold in a window with
  folds in parallel worker processes, and a trial is pruned after any fold where its running
  mean is not among the best of all trials' at that fold (:func:`fold_race_pruner`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops.backends.base import (
    CVResult,
    TrainedModel,
    Trainer,
    TrainingData,
    Tuner,
    TuningResult,
    validate_search_space,
)
from mlops.backends.local.fold_race import fold_pool, fold_race_pruner
from mlops.core import storage
from mlops.core.paths import INCLUDE_DIR

log = logging.getLogger(__name__)

ENTRY_POINT = INCLUDE_DIR / "training" / "train.py"
ENTRY_POINT_MODULE = "mlops_training_entry_point"
COMPLETED = "Completed"


@functools.cache
def training_entry_point() -> ModuleType:
    """``include/training/train.py`` as a module, loaded once per process."""
    spec = importlib.util.spec_from_file_location(ENTRY_POINT_MODULE, ENTRY_POINT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the training entry point {ENTRY_POINT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[ENTRY_POINT_MODULE] = module
    spec.loader.exec_module(module)
    # Worker processes cannot import a module loaded from a file path, so cloudpickle ships its
    # classes and functions by value instead of by reference (the fold workers' scorer).
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def _job_uri(output_uri: str, job_name: str) -> str:
    return f"{output_uri.rstrip('/')}/{job_name}"


def _json_normal(value: Any) -> Any:
    """``value`` as it reads back from JSON, so recorded and requested values compare."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _read_rows(data: TrainingData):
    """The training rows, read by ``train.py`` as the container reads its train channel.

    ``file://`` data is read in place; other stores are first copied to a scratch folder, as
    SageMaker's File input mode copies a channel to the instance.
    """
    train = training_entry_point()
    path = storage.to_path(data.train_uri)
    if path.protocol in ("", "file", "local"):
        return train.read_training_frame(Path(path.path))
    channel = storage.scratch_dir("channel")
    try:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            destination = channel / (file.name if file == path else storage.relative_name(file, path))
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(file.read_bytes())
        return train.read_training_frame(channel)
    finally:
        shutil.rmtree(channel, ignore_errors=True)


def _training_config(data: TrainingData) -> dict[str, Any]:
    return training_entry_point().training_config(data.to_dict())


class LocalTrainer(Trainer):
    """Training job on this machine: ``train.py``'s ``fit_full`` on every row of the data.

    Writes ``<output_uri>/<job_name>/output/model.tar.gz`` and, once the artifact is complete,
    ``<output_uri>/<job_name>/job.json`` (status, hyperparameters, input, sha256). A job
    name whose ``job.json`` says Completed is reused without retraining; reusing it with other
    hyperparameters or data is an error, as SageMaker refuses a duplicate job name.
    """

    def fit(
        self, job_name: str, data: TrainingData, hyperparameters: dict[str, Any], output_uri: str
    ) -> TrainedModel:
        job_uri = _job_uri(output_uri, job_name)
        model_uri = f"{job_uri}/output/model.tar.gz"
        description_uri = f"{job_uri}/job.json"
        reused = self._completed(job_name, description_uri, model_uri, data, hyperparameters)
        if reused is not None:
            return reused

        train = training_entry_point()
        started = time.monotonic()
        frame = _read_rows(data)
        estimator, meta = train.fit_full(frame, _training_config(data), hyperparameters)
        model_dir = storage.scratch_dir("model")
        try:
            train.save_model(estimator, meta, model_dir)
            _, sha256 = storage.pack_model(model_dir, model_uri)
        finally:
            shutil.rmtree(model_dir, ignore_errors=True)
        seconds = round(time.monotonic() - started, 3)
        storage.write_json(
            description_uri,
            {
                "TrainingJobName": job_name,
                "TrainingJobStatus": COMPLETED,
                "ModelArtifacts": {"S3ModelArtifacts": model_uri},
                "sha256": sha256,
                "HyperParameters": _json_normal(hyperparameters),
                "InputDataConfig": data.to_dict(),
                "TrainingTimeInSeconds": seconds,
                "rows": int(len(frame)),
            },
        )
        log.info("training job %s: %d rows in %.1f s -> %s", job_name, len(frame), seconds, model_uri)
        return TrainedModel(job_name, model_uri, sha256, dict(hyperparameters))

    @staticmethod
    def _completed(
        job_name: str, description_uri: str, model_uri: str, data: TrainingData,
        hyperparameters: dict[str, Any],
    ) -> TrainedModel | None:
        if not storage.to_path(description_uri).exists():
            return None
        job = storage.read_json(description_uri)
        if job.get("TrainingJobStatus") != COMPLETED or not storage.to_path(model_uri).exists():
            return None
        same_request = job["HyperParameters"] == _json_normal(hyperparameters)
        if not same_request or job["InputDataConfig"] != data.to_dict():
            raise ValueError(
                f"training job {job_name!r} already completed with other hyperparameters or data "
                f"({description_uri}); use a new job name"
            )
        actual = storage.sha256_of(model_uri)
        if actual != job["sha256"]:
            raise storage.DigestMismatch(
                f"{model_uri}: sha256 {actual} differs from the {job['sha256']} recorded when "
                f"training job {job_name!r} completed"
            )
        log.info("training job %s already completed: reusing %s", job_name, model_uri)
        return TrainedModel(job_name, model_uri, actual, dict(hyperparameters))


class OptunaTuner(Tuner):
    """Hyperparameter tuning job on this machine: Optuna over the same search space.

    Every trial is scored by k-fold CV on the fold manifest, with ``train.py``'s
    :class:`FoldScorer` (each fold's feature preparation is fitted once per worker and reused
    by every trial). Trials are raced fold by fold in a window of ``window`` trials asked from
    Optuna's seeded TPE sampler: each round, every trial in the window scores its next fold and
    reports the running mean of its fold scores as the intermediate value of that step; the
    fold-race pruner (:func:`fold_race_pruner`) stops a trial unless that mean is in the best
    ``keep`` fraction of every other trial's mean over the same folds (``keep_later`` after the
    first fold, where the others are already survivors); a trial that scored every
    fold completes (it is never pruned on its last fold); and freed places are filled with new
    trials. Every trial scores the same folds in the same order, and scores of different
    hyperparameters on one fold are strongly correlated (the fold's rows set most of a fold
    score), so the running mean after one fold already ranks trials well; comparing bare fold
    scores of different folds would not.

    The folds run in ``n_jobs`` worker processes (a :class:`~mlops.backends.local.workers.WorkerPool`:
    they start cleanly inside an Airflow task, and one that dies fails the job with its exit code
    or signal and the end of its stderr) that hold the rows for the whole job; a
    round's ``window`` folds keep them busy, and while a round waits for its last fold an idle
    worker starts the next fold of the trial deepest in the race. Every decision (ask, report, prune, tell)
    is taken at a fixed point of the race from the scores alone, and a fold's score does not
    depend on the process that computed it, so a seed gives the same trials, the same pruning
    and the same best for any ``n_jobs``; ``window`` is part of the algorithm and changes them.

    The history of every trial is written to ``<output_uri>/<job_name>/tuning_history.json``;
    a completed job of the same name and request is reused.

    :param n_jobs: worker processes scoring folds in parallel (1: in this process).
    :param window: trials racing at a time (a multiple of ``n_jobs`` keeps every worker busy).
    :param keep: fraction of trials a trial must be among (by running mean on the first fold)
        to go on; 1.0 never prunes.
    :param keep_later: the same after later folds, among the trials that reached them.
    :param min_peers: other trials that must have reached the first fold before anyone is pruned there.
    :param min_peers_later: the same at later folds (1: two trials past the first fold race each
        other, and the one behind the other's running mean stops).
    :param warmup_folds: folds every trial scores before it can be pruned (0: a trial can stop
        after its first fold).
    """

    def __init__(
        self,
        n_jobs: int = 2,
        window: int = 4,
        keep: float = 0.25,
        keep_later: float = 0.5,
        min_peers: int = 3,
        warmup_folds: int = 0,
        min_peers_later: int = 1,
    ):
        if n_jobs < 1 or window < 1 or min_peers < 1 or min_peers_later < 1 or warmup_folds < 0 or not (
                0 < keep <= 1 and 0 < keep_later <= 1):
            raise ValueError("n_jobs, window, min_peers and min_peers_later must be at least 1, "
                             "warmup_folds at least 0, "
                             "keep and keep_later in (0, 1]")
        self.n_jobs = n_jobs
        self.window = window
        self.keep = keep
        self.keep_later = keep_later
        self.min_peers = min_peers
        self.min_peers_later = min_peers_later
        self.warmup_folds = warmup_folds

    def tune(
        self,
        job_name: str,
        data: TrainingData,
        search_space: dict[str, dict[str, Any]],
        n_trials: int,
        output_uri: str,
    ) -> TuningResult:
        import optuna

        from mlops.backends.limits import check_name, check_tuning

        space = validate_search_space(search_space)
        check_name("job_name", job_name, "TrainingJobName")
        check_tuning(n_trials, self.n_jobs, space)  # as SageMaker's tuning job would, before any work
        history_uri = f"{_job_uri(output_uri, job_name)}/tuning_history.json"
        request = _json_normal({"data": data.to_dict(), "search_space": space, "n_trials": n_trials})
        reused = self._completed(job_name, history_uri, request)
        if reused is not None:
            return reused

        from mlops.ml.folds import manifest_sha256

        train = training_entry_point()
        config = _training_config(data)
        train.check_hyperparameters(config["estimator"], config["problem_type"], space)
        frame = _read_rows(data)  # read once: every trial reuses the rows and the manifest
        manifest = storage.read_json(data.folds_uri)
        _check_digest(frame, manifest, data)
        scorer = train.FoldScorer(frame, manifest, config)  # a bad manifest fails here
        n_folds = len(scorer.splits)

        # This job logs one line per trial itself; Optuna's own INFO lines would repeat them.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=job_name,
            direction="maximize",  # scikit-learn scorers are greater-is-better
            sampler=optuna.samplers.TPESampler(
                seed=data.seed, n_startup_trials=max(2, min(10, n_trials // 2)), constant_liar=True,
            ),
            pruner=fold_race_pruner(self.keep, self.keep_later, self.min_peers, self.warmup_folds,
                                    self.min_peers_later),
        )
        started = time.monotonic()
        log.info(
            "tuning job %s: %d trials of %d-fold CV on %d rows, %d worker(s), %d trials racing at a time",
            job_name, n_trials, n_folds, len(frame), self.n_jobs, self.window,
        )
        with fold_pool(scorer, self.n_jobs, job_name) as pool:
            self._race(study, space, pool, n_folds, n_trials, config["objective"])
        fits_started, fit_seconds = pool.started, pool.busy

        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise RuntimeError(f"tuning job {job_name!r}: no trial completed all folds")
        trials = [_trial_record(trial) for trial in study.trials]
        best_record = trials[study.best_trial.number]
        best = CVResult(
            hyperparameters=best_record["params"],
            fold_scores=best_record["fold_scores"],
            mean=best_record["mean"],
            std=best_record["std"],
        )
        fold_work = sum(len(t["fold_scores"]) for t in trials)
        storage.write_json(
            history_uri,
            {
                **request,
                "job_name": job_name,
                "status": COMPLETED,
                "backend": "local",
                "objective": config["objective"],
                "direction": "maximize",
                "folds": {**{key: manifest.get(key) for key in ("k", "seed", "strategy", "dataset_digest")},
                          "manifest_sha256": manifest_sha256(manifest)},
                "tuner": {
                    "sampler": "TPE", "pruner": "fold_race", "n_jobs": self.n_jobs, "window": self.window,
                    "keep": self.keep, "keep_later": self.keep_later, "min_peers": self.min_peers,
                    "min_peers_later": self.min_peers_later, "warmup_folds": self.warmup_folds,
                },
                "best_trial": study.best_trial.number,
                "best": best.to_dict(),
                "trials": trials,
                "fold_fits": fold_work,
                "fold_fits_started": fits_started,  # with the ones a pruning made useless
                "fold_fit_seconds": round(fit_seconds, 3),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        log.info(
            "tuning job %s: best %s=%.6f (+/- %.6f) after %d trials, %d pruned; %d of %d fold fits "
            "used (%d started) in %.1f s",
            job_name, config["objective"], best.mean, best.std, len(trials),
            sum(t["state"] == "PRUNED" for t in trials), fold_work, len(trials) * n_folds, fits_started,
            time.monotonic() - started,
        )
        return TuningResult(job_name, config["objective"], best, len(trials), history_uri)

    def _race(self, study, space, pool, n_folds: int, n_trials: int, objective: str) -> None:
        """Race the trials fold by fold in a window of ``self.window``; tell Optuna every outcome.

        Each round, every trial in the window scores its next fold; then, in window order, a trial
        that has scored every fold completes, and one whose running mean is behind is pruned;
        freed places are filled with newly asked trials. Reports, prunes, tells and asks happen
        only at these points, so the race is a function of the scores alone.
        """
        import numpy as np
        import optuna

        window: list[Any] = []  # live optuna trials, oldest first
        params: dict[int, dict[str, Any]] = {}
        scores: dict[int, list[float]] = {}
        asked = 0

        def wanted(depth: dict[int, int]) -> list[tuple[int, int]]:
            # The round's folds first, in window order. Then, for a worker that would idle while
            # the round's last fold finishes, the next folds of trials that already survived a
            # pruning step, deepest first: they are the likeliest to be needed. A dropped task
            # holds its worker into the next round, so trials still on their first fold (most
            # of which stop there) are not worth a guess. ``depth``: folds scored before the round.
            current = list(depth.items())
            ahead = [(number, step) for number, folds in depth.items() if folds
                     for step in range(folds + 1, n_folds)]
            ahead.sort(key=lambda key: (key[1] - depth[key[0]], -depth[key[0]],
                                        -float(np.mean(scores[key[0]][: depth[key[0]]])), key))
            return current + ahead

        while window or asked < n_trials:
            while len(window) < self.window and asked < n_trials:
                trial = study.ask()
                params[trial.number] = {name: _suggest(trial, name, spec) for name, spec in space.items()}
                scores[trial.number] = []
                window.append(trial)
                asked += 1
            depth = {trial.number: len(scores[trial.number]) for trial in window}
            for trial in window:
                key = (trial.number, depth[trial.number])
                scores[trial.number].append(pool.result(key, params, wanted(depth)))
            for trial in window:
                trial.set_user_attr("fold_scores", list(scores[trial.number]))
                trial.report(float(np.mean(scores[trial.number])), step=len(scores[trial.number]) - 1)
            for trial in list(window):
                mine = scores[trial.number]
                if len(mine) == n_folds:
                    state = "complete"
                    study.tell(trial, float(np.mean(mine)))
                elif trial.should_prune():
                    state = "pruned"
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    continue
                window.remove(trial)
                pool.forget(trial.number)
                self._log_trial(study, trial, mine, n_trials, n_folds, state, objective)

    @staticmethod
    def _log_trial(study, trial, scores: list[float], n_trials: int, n_folds: int, state: str,
                   objective: str) -> None:
        import numpy as np

        log.info(
            "trial %d of %d: %s %s=%.6f after %d of %d folds; best so far %s %s",
            trial.number + 1, n_trials, state, objective, float(np.mean(scores)), len(scores), n_folds,
            _fmt(_best_value(study)), json.dumps(trial.params, sort_keys=True),
        )

    @staticmethod
    def _completed(job_name: str, history_uri: str, request: dict[str, Any]) -> TuningResult | None:
        if not storage.to_path(history_uri).exists():
            return None
        history = storage.read_json(history_uri)
        if history.get("status") != COMPLETED:
            return None
        if {key: history.get(key) for key in request} != request:
            raise ValueError(
                f"tuning job {job_name!r} already completed with another search space, trial "
                f"count or data ({history_uri}); use a new job name"
            )
        log.info("tuning job %s already completed: reusing %s", job_name, history_uri)
        return TuningResult(
            job_name, history["objective"], CVResult.from_dict(history["best"]),
            len(history["trials"]), history_uri,
        )


def _suggest(trial, name: str, spec: Mapping[str, Any]) -> Any:
    kind = spec["type"]
    if kind == "categorical":
        return trial.suggest_categorical(name, spec["choices"])
    log_scale = bool(spec.get("log", False))
    if kind == "int":
        return trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1), log=log_scale)
    return trial.suggest_float(name, spec["low"], spec["high"], step=spec.get("step"), log=log_scale)


def _check_digest(frame, manifest: Mapping[str, Any], data: TrainingData) -> None:
    """Warn when the manifest was made for other rows than ``data.train_uri`` now holds.

    A warning, not an error: a file format's dtypes (CSV vs Parquet) can change the digest of
    the same values; a different row count already fails in ``fold_splits``.
    """
    from mlops.ml.folds import dataset_digest

    expected = manifest.get("dataset_digest")
    if expected and dataset_digest(frame) != expected:
        log.warning(
            "fold manifest %s was made for rows with digest %s; %s now digests to %s",
            data.folds_uri, expected, data.train_uri, dataset_digest(frame),
        )


def _trial_record(trial) -> dict[str, Any]:
    import numpy as np

    scores = [float(s) for s in trial.user_attrs.get("fold_scores", [])]
    return {
        "number": trial.number,
        "params": dict(trial.params),
        "fold_scores": scores,
        "mean": float(np.mean(scores)) if scores else None,
        "std": float(np.std(scores)) if scores else None,
        "state": trial.state.name,
        "seconds": trial.duration.total_seconds() if trial.duration else None,
    }


def _best_value(study) -> float | None:
    try:
        return study.best_value
    except ValueError:  # no completed trial yet
        return None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6f}"
