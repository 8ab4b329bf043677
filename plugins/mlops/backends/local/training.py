"""Local twins of SageMaker training and hyperparameter tuning.

Both run ``include/training/train.py``, the entry point SageMaker's scikit-learn container runs,
loaded here by file path: there is one implementation of the training logic.

* :class:`LocalTrainer` is a training job: fit on every row, write ``model.tar.gz`` where
  SageMaker would (``<output_uri>/<job_name>/output/model.tar.gz``) and a job description;
  a completed job of the same name is reused, not retrained.
* :class:`OptunaTuner` is an HPO job: Optuna's seeded TPE sampler over the config's search space;
  each trial scores the k folds of the fold manifest, folds in parallel worker processes, and
  is pruned (MedianPruner) as soon as its fold scores are clearly below the other trials'.
"""

from __future__ import annotations

import contextlib
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

from mlops import storage
from mlops.backends.base import CVResult, TrainedModel, Trainer, TrainingData, Tuner, TuningResult
from mlops.settings import INCLUDE_DIR

log = logging.getLogger(__name__)

ENTRY_POINT = INCLUDE_DIR / "training" / "train.py"
ENTRY_POINT_MODULE = "mlops_training_entry_point"
COMPLETED = "Completed"
SEARCH_TYPES = ("float", "int", "categorical")


@functools.cache
def training_entry_point() -> ModuleType:
    """``include/training/train.py`` as a module, loaded once per process."""
    spec = importlib.util.spec_from_file_location(ENTRY_POINT_MODULE, ENTRY_POINT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the training entry point {ENTRY_POINT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[ENTRY_POINT_MODULE] = module
    spec.loader.exec_module(module)
    # Worker processes cannot import a module loaded from a file path, so joblib ships its
    # functions by value instead of by reference.
    import cloudpickle  # joblib's own pickler for worker processes

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
            destination = channel / (file.name if file == path else str(file.relative_to(path)))
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
    by every trial). Trials are asked from Optuna's seeded TPE sampler in batches of
    ``batch_size`` and raced fold by fold: all trials of a batch score fold 0, then the ones
    still alive score fold 1, and so on. After each fold a trial reports the running mean of
    its fold scores as the intermediate value of step ``fold``, and Optuna's ``MedianPruner``
    stops it when that is below the median of the completed trials' means over the same folds
    (never before ``pruner_warmup_folds`` folds, nor on the last fold). Reporting the running
    mean, not the bare fold score, compares every trial on the same rows.

    The folds of a batch run in ``n_jobs`` worker processes that hold the rows for the whole
    job; while a fold's pruning decision waits for a straggler, idle workers start the next
    folds of the surviving trials. Every decision (ask, report, prune, tell) is taken in a
    fixed order from the scores alone, and a fold's score does not depend on the process that
    computed it, so a seed gives the same trials, the same pruning and the same best for any
    ``n_jobs``; ``batch_size`` is part of the algorithm and changes the trials.

    The history of every trial is written to ``<output_uri>/<job_name>/tuning_history.json``;
    a completed job of the same name and request is reused.

    :param n_jobs: worker processes scoring folds in parallel (1: in this process).
    :param batch_size: trials asked together and raced fold by fold.
    :param pruner_startup_trials: trials that must complete before any trial is pruned.
    :param pruner_warmup_folds: folds every trial scores before it can be pruned (0: a trial
        can stop after its first fold).
    """

    def __init__(
        self,
        n_jobs: int = 2,
        batch_size: int = 4,
        pruner_startup_trials: int = 3,
        pruner_warmup_folds: int = 0,
    ):
        if n_jobs < 1 or batch_size < 1 or pruner_startup_trials < 0 or pruner_warmup_folds < 0:
            raise ValueError("n_jobs and batch_size must be at least 1, the pruner settings at least 0")
        self.n_jobs = n_jobs
        self.batch_size = batch_size
        self.pruner_startup_trials = pruner_startup_trials
        self.pruner_warmup_folds = pruner_warmup_folds

    def tune(
        self,
        job_name: str,
        data: TrainingData,
        search_space: dict[str, dict[str, Any]],
        n_trials: int,
        output_uri: str,
    ) -> TuningResult:
        import optuna

        space = validate_search_space(search_space)
        if n_trials < 1:
            raise ValueError(f"n_trials must be at least 1; got {n_trials}")
        history_uri = f"{_job_uri(output_uri, job_name)}/tuning_history.json"
        request = _json_normal({"data": data.to_dict(), "search_space": space, "n_trials": n_trials})
        reused = self._completed(job_name, history_uri, request)
        if reused is not None:
            return reused

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
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=self.pruner_startup_trials,
                n_warmup_steps=self.pruner_warmup_folds,
            ),
        )
        started = time.monotonic()
        log.info(
            "tuning job %s: %d trials of %d-fold CV on %d rows, %d worker(s), batches of %d",
            job_name, n_trials, n_folds, len(frame), self.n_jobs, self.batch_size,
        )
        with _fold_pool(scorer, self.n_jobs) as pool:
            while len(study.trials) < n_trials:
                size = min(self.batch_size, n_trials - len(study.trials))
                batch = [study.ask() for _ in range(size)]
                params = [{name: _suggest(trial, name, spec) for name, spec in space.items()} for trial in batch]
                self._race(study, batch, params, pool, n_folds, n_trials, config["objective"])

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
                "folds": {key: manifest.get(key) for key in ("k", "seed", "strategy", "dataset_digest")},
                "tuner": {
                    "sampler": "TPE", "pruner": "median", "n_jobs": self.n_jobs, "batch_size": self.batch_size,
                    "pruner_startup_trials": self.pruner_startup_trials,
                    "pruner_warmup_folds": self.pruner_warmup_folds,
                },
                "best_trial": study.best_trial.number,
                "best": best.to_dict(),
                "trials": trials,
                "fold_fits": fold_work,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        log.info(
            "tuning job %s: best %s=%.6f (+/- %.6f) after %d trials, %d pruned; %d of %d fold fits "
            "in %.1f s",
            job_name, config["objective"], best.mean, best.std, len(trials),
            sum(t["state"] == "PRUNED" for t in trials), fold_work, len(trials) * n_folds,
            time.monotonic() - started,
        )
        return TuningResult(job_name, config["objective"], best, len(trials), history_uri)

    def _race(self, study, batch, params, pool, n_folds: int, n_trials: int, objective: str) -> None:
        """Score one batch fold by fold; prune after each fold; tell Optuna every outcome in order."""
        import numpy as np
        import optuna

        alive = list(range(len(batch)))
        scores: list[list[float]] = [[] for _ in batch]
        for position in range(n_folds):
            for index in alive:
                pool.need(index, position, params, alive, n_folds)
            for index in list(alive):
                score = pool.result(index, position, params, alive, n_folds)
                scores[index].append(score)
                trial = batch[index]
                trial.set_user_attr("fold_scores", list(scores[index]))
                trial.report(float(np.mean(scores[index])), step=position)
            for index in list(alive):
                if position < n_folds - 1 and batch[index].should_prune():
                    alive.remove(index)
                    pool.forget(index)
                    study.tell(batch[index], state=optuna.trial.TrialState.PRUNED)
                    self._log_trial(study, batch[index], scores[index], n_trials, n_folds, "pruned", objective)
        for index in alive:
            study.tell(batch[index], float(np.mean(scores[index])))
            self._log_trial(study, batch[index], scores[index], n_trials, n_folds, "complete", objective)
        pool.end_batch()

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


# ---------------------------------------------------------------- fold workers
_WORKER_SCORER = None  # the FoldScorer of this worker process (set by _init_worker)


def _init_worker(scorer) -> None:
    global _WORKER_SCORER
    _WORKER_SCORER = scorer


def _worker_score(position: int, hyperparameters: dict[str, Any]) -> float:
    return _WORKER_SCORER.score(position, hyperparameters)


class _FoldPool:
    """Scores ``(trial, fold)`` tasks of one batch, in this process or in worker processes.

    ``need`` and ``result`` name the task the race waits for next; the pool keeps up to
    ``n_jobs`` tasks running, taken in race order: the folds the race is waiting for first,
    then, so no worker idles while a straggler decides a pruning step, the next folds of the
    trials still alive. A pruned trial's tasks that have not started are cancelled; a running
    one finishes and its score is dropped.
    """

    def __init__(self, scorer, n_jobs: int) -> None:
        self.scorer = scorer
        self.n_jobs = n_jobs
        self.executor = None
        if n_jobs > 1:
            import os

            from joblib.externals.loky import ProcessPoolExecutor

            threads = str(max(1, (os.cpu_count() or 1) // n_jobs))
            env = {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            self.executor = ProcessPoolExecutor(n_jobs, initializer=_init_worker, initargs=(scorer,), env=env)
        self.futures: dict[tuple[int, int], Any] = {}
        self.done: dict[tuple[int, int], float] = {}
        self.stale: list[Any] = []

    def _running(self) -> int:
        self.stale = [future for future in self.stale if not future.done()]
        return len(self.stale) + sum(not future.done() for future in self.futures.values())

    def _fill(self, params, alive: list[int], n_folds: int, position: int) -> None:
        if self.executor is None:
            return
        order = [(index, step) for step in range(position, n_folds) for index in alive]
        for key in order:
            if self._running() >= self.n_jobs:
                return
            if key not in self.futures and key not in self.done:
                index, step = key
                self.futures[key] = self.executor.submit(_worker_score, step, params[index])

    def need(self, index: int, position: int, params, alive: list[int], n_folds: int) -> None:
        self._fill(params, alive, n_folds, position)

    def result(self, index: int, position: int, params, alive: list[int], n_folds: int) -> float:
        key = (index, position)
        if key in self.done:
            return self.done[key]
        if self.executor is None:
            self.done[key] = self.scorer.score(position, params[index])
            return self.done[key]
        from concurrent.futures import FIRST_COMPLETED, wait

        while True:
            self._fill(params, alive, n_folds, position)
            future = self.futures.get(key)
            if future is not None and future.done():
                self.done[key] = future.result()
                return self.done[key]
            running = [f for f in (*self.futures.values(), *self.stale) if not f.done()]
            wait(running, return_when=FIRST_COMPLETED)

    def forget(self, index: int) -> None:
        for key in [key for key in self.futures if key[0] == index]:
            future = self.futures.pop(key)
            if not future.cancel() and not future.done():
                self.stale.append(future)

    def end_batch(self) -> None:
        for future in self.futures.values():
            if not future.done():
                self.stale.append(future)
        self.futures.clear()
        self.done.clear()

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, kill_workers=True)


@contextlib.contextmanager
def _fold_pool(scorer, n_jobs: int):
    pool = _FoldPool(scorer, min(n_jobs, max(1, len(scorer.splits))))
    try:
        yield pool
    finally:
        pool.close()


def validate_search_space(search_space: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check a config search space; raise ``ValueError`` naming the first bad parameter.

    ``{name: {"type": "float"|"int", "low", "high", "log"?, "step"?}}`` or
    ``{name: {"type": "categorical", "choices": [...]}}``.
    """
    if not isinstance(search_space, Mapping) or not search_space:
        raise ValueError("the search space is empty: give at least one hyperparameter to tune")
    checked: dict[str, dict[str, Any]] = {}
    for name, spec in search_space.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"search space parameter {name!r}: expected a mapping, got {spec!r}")
        kind = spec.get("type")
        if kind not in SEARCH_TYPES:
            raise ValueError(
                f"search space parameter {name!r}: unknown type {kind!r}; use {', '.join(SEARCH_TYPES)}"
            )
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, (list, tuple)) or not choices:
                raise ValueError(f"search space parameter {name!r}: categorical needs a list of choices")
            if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                raise ValueError(
                    f"search space parameter {name!r}: choices must be numbers, text, booleans or null"
                )
            checked[name] = {"type": kind, "choices": list(choices)}
            continue
        number = int if kind == "int" else (int, float)
        low, high = spec.get("low"), spec.get("high")
        for bound, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, number):
                raise ValueError(f"search space parameter {name!r}: {bound} must be a {kind}; got {value!r}")
        if low > high:
            raise ValueError(f"search space parameter {name!r}: low {low} is above high {high}")
        if spec.get("log") and low <= 0:
            raise ValueError(f"search space parameter {name!r}: a log scale needs low > 0; got {low}")
        checked[name] = {key: spec[key] for key in ("type", "low", "high", "log", "step") if key in spec}
    return checked


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
