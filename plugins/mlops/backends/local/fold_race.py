"""How the local tuner's trials race: folds scored in parallel worker processes (one pickled
:class:`FoldScorer` per worker, sent once), and the pruner that stops a trial after any fold where
its running mean is not among the leaders' at that fold (:func:`fold_race_pruner`)."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

# ---------------------------------------------------------------- fold workers
_WORKER_SCORER = None  # the FoldScorer of this worker process (set by _init_worker)


def _init_worker(pickled_scorer: bytes) -> None:
    global _WORKER_SCORER
    import cloudpickle

    _WORKER_SCORER = cloudpickle.loads(pickled_scorer)


def _timed_score(scorer: Any, position: int, hyperparameters: dict[str, Any]) -> tuple[float, float]:
    """``(score, seconds)`` of one fold by ``scorer`` (include/training/train.py's FoldScorer)."""
    started = time.perf_counter()
    score = scorer.score(position, hyperparameters)
    return score, time.perf_counter() - started


def _worker_score(position: int, hyperparameters: dict[str, Any]) -> tuple[float, float]:
    """``(score, seconds)`` of one fold in this worker."""
    return _timed_score(_WORKER_SCORER, position, hyperparameters)


class _FoldPool:
    """Scores ``(trial number, fold position)`` tasks, in this process or in worker processes.

    :meth:`result` waits for one task while keeping up to ``n_jobs`` tasks running, taken from
    the race's ``wanted`` list in order. A pruned trial's running task finishes and its score
    is dropped; ``started`` counts every task handed to a worker, wasted ones included.
    """

    def __init__(self, scorer, n_jobs: int, executor=None) -> None:
        self.scorer = scorer
        self.n_jobs = n_jobs
        self.executor = executor  # None: score in this process
        self.futures: dict[tuple[int, int], Any] = {}
        self.done: dict[tuple[int, int], float] = {}
        self.stale: list[Any] = []
        self.started = 0
        self.busy = 0.0  # seconds workers spent on folds whose score was used

    def _running(self) -> list[Any]:
        self.stale = [future for future in self.stale if not future.done()]
        return self.stale + [future for future in self.futures.values() if not future.done()]

    def _fill(self, params, wanted: list[tuple[int, int]]) -> None:
        running = len(self._running())
        for key in wanted:
            if running >= self.n_jobs:
                return
            if key not in self.futures and key not in self.done:
                number, position = key
                self.futures[key] = self.executor.submit(_worker_score, position, params[number])
                self.started += 1
                running += 1

    def result(self, key: tuple[int, int], params, wanted: list[tuple[int, int]]) -> float:
        if key in self.done:
            return self.done[key]
        if self.executor is None:
            number, position = key
            self.done[key], seconds = _timed_score(self.scorer, position, params[number])
            self.busy += seconds
            self.started += 1
            return self.done[key]
        from concurrent.futures import FIRST_COMPLETED, wait

        while True:
            # The score first: when it is in, a free worker waits for the caller's next call. After
            # the round's last score that call comes once the round is decided, so no worker starts
            # a guess on a trial the round is about to prune (it would hold the worker for a fit).
            future = self.futures.get(key)  # None while every worker finishes a dropped task
            if future is not None and future.done():
                self.done[key], seconds = future.result()
                self.busy += seconds
                return self.done[key]
            self._fill(params, wanted)
            wait(self._running(), return_when=FIRST_COMPLETED)  # at once when nothing else runs

    def forget(self, number: int) -> None:
        """Drop a finished trial's tasks and scores; a task still running becomes stale."""
        # No Future.cancel(): at most n_jobs tasks are submitted, so they have all been handed
        # to a worker already.
        for key in [key for key in self.futures if key[0] == number]:
            future = self.futures.pop(key)
            if not future.done():
                self.stale.append(future)
        for key in [key for key in self.done if key[0] == number]:
            del self.done[key]


@contextlib.contextmanager
def fold_pool(scorer, n_jobs: int, job_name: str):
    """A :class:`_FoldPool` of ``n_jobs`` worker processes (at most one per fold), or of this one."""
    n_jobs = min(n_jobs, max(1, len(scorer.splits)))
    if n_jobs == 1:
        yield _FoldPool(scorer, 1)
        return
    import cloudpickle

    from mlops.backends.local.workers import WorkerPool

    threads = str(max(1, (os.cpu_count() or 1) // n_jobs))
    env = {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    # The scorer's class is train.py's, loaded by file path: cloudpickle ships it by value.
    with WorkerPool(f"tuning job {job_name}", n_jobs, initializer=_init_worker,
                    initargs=(cloudpickle.dumps(scorer),), env=env) as executor:
        yield _FoldPool(scorer, n_jobs, executor)


def fold_race_pruner(keep: float = 0.25, keep_later: float = 0.5, min_peers: int = 3, warmup_folds: int = 0,
                     min_peers_later: int | None = None):
    """An Optuna pruner for trials that report the running mean of their fold scores per fold.

    At fold ``f`` a trial goes on only if its running mean is at least the ``1 - keep``
    quantile (``1 - keep_later`` after the first fold) of the running means at fold ``f`` of
    every other trial that reached it (completed, pruned or still racing; failed ones
    excepted), once at least ``min_peers`` of them did (``min_peers_later`` at later folds; by
    default ``min_peers`` too). Counting pruned trials keeps the first
    fold's bar at the population's; counting racing trials lets the first trials race each
    other. The trials that reach a later fold all passed the first one, so there only a clear
    straggler among them stops: most of the saving is on the first fold, and a trial that went
    on is then likely to need its remaining folds.
    """
    import numpy as np
    import optuna

    class FoldRacePruner(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            step = trial.last_step
            fraction = keep if step == 0 else keep_later
            if step is None or step < warmup_folds or fraction >= 1:
                return False
            peers = [
                other.intermediate_values[step]
                for other in study.get_trials(deepcopy=False)
                if other.number != trial.number and other.state != optuna.trial.TrialState.FAIL
                and step in other.intermediate_values
            ]
            if len(peers) < (min_peers if step == 0 or min_peers_later is None else min_peers_later):
                return False
            return trial.intermediate_values[step] < float(np.quantile(peers, 1 - fraction))

    return FoldRacePruner()
