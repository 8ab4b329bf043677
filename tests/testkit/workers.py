"""What the worker processes of the tests' pools run: deaths on demand.

Workers run functions and unpickle classes of importable modules only (``testkit`` is on their
``sys.path``, which they take from the parent).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def write_then_die(text: str, how: int) -> None:
    """Write ``text`` to stderr, then exit with code ``how`` (``how >= 0``) or take signal ``-how``."""
    print(text, file=sys.stderr, flush=True)
    if how < 0:
        os.kill(os.getpid(), -how)
    os._exit(how)


def write_unflushed(text: str) -> int:
    """Write ``text`` to stderr without a newline or a flush (it stays in Python's buffer); the pid."""
    sys.stderr.write(text)
    return os.getpid()


class DyingClassifier:
    """A binary classifier whose predictions kill the process predicting them with SIGKILL (as
    the kernel's OOM killer does), after a line to stderr."""

    classes_ = ["False.", "True."]

    def predict_proba(self, frame: Any) -> Any:
        write_then_die(f"DyingClassifier: asked for {len(frame)} predictions, dying", -signal.SIGKILL)


class ScorerThatDies:
    """A fold scorer (``train.FoldScorer``) whose fold at ``position`` writes to stderr and exits
    with code 137 instead of scoring."""

    def __init__(self, scorer: Any, position: int):
        self.scorer = scorer
        self.position = position

    @property
    def splits(self) -> Any:
        return self.scorer.splits

    def score(self, position: int, hyperparameters: dict[str, Any]) -> float:
        if position == self.position:
            write_then_die(f"ScorerThatDies: fold {position} exits with 137", 137)
        return self.scorer.score(position, hyperparameters)


class ScorerThatWaits:
    """A fold scorer whose folds never finish: each worker writes its pid to a file in ``pid_dir``
    (so a test knows the workers are busy), then waits for a signal."""

    def __init__(self, scorer: Any, pid_dir: str):
        self.scorer = scorer
        self.pid_dir = pid_dir

    @property
    def splits(self) -> Any:
        return self.scorer.splits

    def score(self, position: int, hyperparameters: dict[str, Any]) -> float:
        from pathlib import Path

        Path(self.pid_dir, str(os.getpid())).touch()
        while True:
            signal.pause()


def wait_forever(pid_file: str) -> None:
    """Write this worker's pid to ``pid_file``, then wait for a signal (a fold that never ends)."""
    from pathlib import Path

    Path(pid_file).write_text(str(os.getpid()))
    while True:
        signal.pause()
